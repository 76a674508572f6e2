//! Fetching many partitions at once: one Fetch request per leader broker, sent to all
//! leaders concurrently, each on a connection the fetcher keeps for that broker.
//!
//! Per partition the answer is the decoded records at or after the requested offset
//! (control batches skipped, gaps tolerated, a trailing partial batch dropped) or the
//! error for that partition; one partition's error never hides another's records.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinSet;
use tracing::debug;

use crate::batch::decode_records;
use crate::cluster::Cluster;
use crate::connection::Connection;
use crate::consumer::{aborted_of, FetchConfig, MAX_PARTITION_FETCH_BYTES};
use crate::error::{Error, Result};
use crate::record::ConsumerRecord;
use crate::topic_partition::TopicPartition;

/// What one partition's fetch produced.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// Records at or after the fetch offset, in offset order.
    pub records: Vec<ConsumerRecord>,
    /// Where to fetch next (past control batches too); `None` if no whole batch came.
    pub next_offset: Option<i64>,
    /// The partition's high watermark.
    pub high_watermark: i64,
}

/// One partition's outcome.
#[derive(Debug)]
pub(crate) struct PartitionFetch {
    pub tp: TopicPartition,
    pub fetch_offset: i64,
    pub outcome: Result<Fetched>,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Fetcher {
    cluster: Arc<Cluster>,
    config: FetchConfig,
    connections: HashMap<i32, Connection>,
    /// Partitions whose last fetch held only part of one batch ask for more.
    partition_max_bytes: HashMap<TopicPartition, i32>,
}

type LeaderResult = (
    i32,
    Option<Connection>,
    Vec<(TopicPartition, i64)>,
    Result<FetchResponse>,
);

impl Fetcher {
    pub(crate) fn new(cluster: Arc<Cluster>, config: FetchConfig) -> Fetcher {
        Fetcher {
            cluster,
            config,
            connections: HashMap::new(),
            partition_max_bytes: HashMap::new(),
        }
    }

    /// Fetches every `(partition, offset)` of `positions`, letting brokers wait up to
    /// `max_wait` for data. Every partition of `positions` gets an outcome unless its
    /// leader's task died.
    pub(crate) async fn fetch(
        &mut self,
        positions: &[(TopicPartition, i64)],
        max_wait: Duration,
    ) -> Vec<PartitionFetch> {
        let metadata = self.cluster.metadata();
        let mut out = Vec::with_capacity(positions.len());
        let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, i64)>> = BTreeMap::new();
        for (tp, offset) in positions {
            match metadata.leader(&tp.topic, tp.partition) {
                Ok((node, _)) => by_leader
                    .entry(node)
                    .or_default()
                    .push((tp.clone(), *offset)),
                Err(e) => out.push(PartitionFetch {
                    tp: tp.clone(),
                    fetch_offset: *offset,
                    outcome: Err(e),
                }),
            }
        }
        let timeout = self.cluster.request_timeout() + max_wait;
        let mut tasks: JoinSet<LeaderResult> = JoinSet::new();
        for (node, parts) in by_leader {
            let request = self.request(&parts, max_wait);
            let conn = self.connections.remove(&node);
            let cluster = Arc::clone(&self.cluster);
            tasks.spawn(async move {
                let mut conn = match conn {
                    Some(c) if !c.is_broken() => c,
                    _ => match cluster.connect_node(node).await {
                        Ok(c) => c,
                        Err(e) => return (node, None, parts, Err(e)),
                    },
                };
                let result = conn.send_with_timeout(&request, timeout).await;
                (node, Some(conn), parts, result)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let Ok((node, conn, parts, result)) = joined else {
                continue;
            };
            if let Some(conn) = conn.filter(|c| !c.is_broken()) {
                self.connections.insert(node, conn);
            }
            match result {
                Ok(response) => out.extend(self.read_response(&parts, &response)),
                Err(e) => {
                    debug!(node, error = %e, "fetch failed");
                    out.extend(parts.into_iter().map(|(tp, fetch_offset)| PartitionFetch {
                        tp,
                        fetch_offset,
                        outcome: Err(e.clone()),
                    }));
                }
            }
        }
        out
    }

    /// Forgets the size boost of partitions no longer read.
    pub(crate) fn retain(&mut self, keep: impl Fn(&TopicPartition) -> bool) {
        self.partition_max_bytes.retain(|tp, _| keep(tp));
    }

    fn request(&self, parts: &[(TopicPartition, i64)], max_wait: Duration) -> FetchRequest {
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for (tp, offset) in parts {
            let max_bytes = self
                .partition_max_bytes
                .get(tp)
                .copied()
                .unwrap_or(self.config.partition_max_bytes)
                .max(1);
            topics.entry(&tp.topic).or_default().push(
                FetchPartition::default()
                    .with_partition(tp.partition)
                    .with_fetch_offset(*offset)
                    .with_partition_max_bytes(max_bytes),
            );
        }
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(i32::try_from(max_wait.as_millis()).unwrap_or(i32::MAX))
            .with_min_bytes(self.config.min_bytes)
            .with_max_bytes(self.config.max_bytes)
            .with_isolation_level(self.config.isolation.wire())
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        FetchTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
    }

    fn read_response(
        &mut self,
        parts: &[(TopicPartition, i64)],
        response: &FetchResponse,
    ) -> Vec<PartitionFetch> {
        parts
            .iter()
            .map(|(tp, offset)| PartitionFetch {
                tp: tp.clone(),
                fetch_offset: *offset,
                outcome: self.read_partition(tp, *offset, response),
            })
            .collect()
    }

    fn read_partition(
        &mut self,
        tp: &TopicPartition,
        offset: i64,
        response: &FetchResponse,
    ) -> Result<Fetched> {
        let context = || format!("fetch {tp} at {offset}");
        Error::check(response.error_code, context, None)?;
        let Some(data) = response
            .responses
            .iter()
            .filter(|t| t.topic.0.as_str() == tp.topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == tp.partition)
        else {
            return Ok(Fetched {
                records: Vec::new(),
                next_offset: None,
                high_watermark: -1,
            });
        };
        Error::check(data.error_code, context, None)?;
        let bytes = data.records.clone().unwrap_or_default();
        let aborted = aborted_of(data);
        let decoded = decode_records(&tp.topic, tp.partition, offset, bytes, &aborted)?;
        if decoded.next_offset.is_some() {
            self.partition_max_bytes.remove(tp);
        } else if decoded.partial_tail_bytes > 0 {
            // Not even one whole batch fit: ask for more next time, up to the limit.
            let current = self
                .partition_max_bytes
                .get(tp)
                .copied()
                .unwrap_or(self.config.partition_max_bytes)
                .max(1);
            if current >= MAX_PARTITION_FETCH_BYTES {
                return Err(Error::CorruptBatch {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset,
                    reason: format!("no complete batch within {MAX_PARTITION_FETCH_BYTES} bytes"),
                });
            }
            self.partition_max_bytes.insert(
                tp.clone(),
                current.saturating_mul(2).min(MAX_PARTITION_FETCH_BYTES),
            );
        }
        Ok(Fetched {
            records: decoded.records,
            next_offset: decoded.next_offset,
            high_watermark: data.high_watermark,
        })
    }
}
