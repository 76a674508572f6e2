//! A partition consumer: reads one partition in offset order from a chosen start, by
//! long-poll Fetch requests on a connection of its own to the partition's leader.
//!
//! Guarantees: records come in strictly increasing offset order, none below the start
//! offset, none twice (the position only moves past records already returned), control
//! batches never; offset gaps (compaction) are skipped. Leader changes and broken
//! connections are retried with backoff within the request timeout; OFFSET_OUT_OF_RANGE
//! and other fatal errors are returned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use crate::batch::{decode_records, AbortedTxn};
use crate::cluster::Cluster;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::offsets::{list_offset, refreshable, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use crate::record::ConsumerRecord;

/// Largest per-partition fetch size the consumer grows to when a single batch does not
/// fit (brokers that do not follow KIP-74 cut it short instead of sending it whole).
pub const MAX_PARTITION_FETCH_BYTES: i32 = 64 * 1024 * 1024;
/// First wait after a retriable fetch failure; doubles up to [`RETRY_BACKOFF_MAX`].
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Where a consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// The log start offset.
    Earliest,
    /// The high watermark: only records produced from now on.
    Latest,
    /// This offset.
    Offset(i64),
    /// The first record with a timestamp at or after this time (ms since the epoch);
    /// the high watermark if there is none.
    Timestamp(i64),
}

/// Fetch sizes and waits.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// How long the broker may hold a fetch waiting for `min_bytes`.
    pub max_wait: Duration,
    /// Bytes the broker waits for before answering early.
    pub min_bytes: i32,
    /// Bound on one response's record bytes (the first batch is sent whole anyway).
    pub max_bytes: i32,
    /// Bound on record bytes per partition per fetch.
    pub partition_max_bytes: i32,
    /// `isolation.level`: what of transactions the consumer sees.
    pub isolation: Isolation,
}

/// Kafka's `isolation.level`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Every record up to the high watermark, transactional ones whatever their outcome.
    #[default]
    ReadUncommitted,
    /// Records up to the last stable offset, without those of aborted transactions.
    ReadCommitted,
}

impl Isolation {
    /// The wire value of a Fetch's `isolation_level`.
    pub fn wire(self) -> i8 {
        match self {
            Isolation::ReadUncommitted => 0,
            Isolation::ReadCommitted => 1,
        }
    }
}

/// The aborted transactions a Fetch answered for a partition, as
/// [`decode_records`] takes them.
pub(crate) fn aborted_of(data: &PartitionData) -> Vec<AbortedTxn> {
    data.aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect()
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            isolation: Isolation::ReadUncommitted,
        }
    }
}

/// Reads one partition. See the module documentation for its guarantees.
#[derive(Debug)]
pub struct PartitionConsumer {
    cluster: Arc<Cluster>,
    topic: String,
    partition: i32,
    config: FetchConfig,
    partition_max_bytes: i32,
    position: i64,
    high_watermark: Option<i64>,
    connection: Option<(i32, Connection)>,
}

impl PartitionConsumer {
    /// A consumer of `topic`-`partition` positioned at `start` (resolved now with
    /// ListOffsets where needed). Fails if the topic or partition does not exist.
    pub async fn new(
        cluster: Arc<Cluster>,
        topic: &str,
        partition: i32,
        start: StartOffset,
        config: FetchConfig,
    ) -> Result<PartitionConsumer> {
        if cluster.metadata().topic(topic).is_err() {
            cluster
                .refresh_metadata(Some(&[topic.to_string()]), false)
                .await?;
        }
        cluster.metadata().leader(topic, partition).or_else(|e| {
            // A partition without a leader right now may get one; other errors stand.
            if matches!(e, Error::NoLeader { .. }) {
                Ok((-1, String::new()))
            } else {
                Err(e)
            }
        })?;
        let mut consumer = PartitionConsumer {
            cluster,
            topic: topic.to_string(),
            partition,
            partition_max_bytes: config.partition_max_bytes.max(1),
            config,
            position: 0,
            high_watermark: None,
            connection: None,
        };
        consumer.seek(start).await?;
        Ok(consumer)
    }

    /// Moves the position to `start`; the next poll reads from there.
    pub async fn seek(&mut self, start: StartOffset) -> Result<()> {
        self.position = match start {
            StartOffset::Offset(offset) => offset,
            StartOffset::Earliest => self.list(EARLIEST_TIMESTAMP).await?,
            StartOffset::Latest => self.list(LATEST_TIMESTAMP).await?,
            StartOffset::Timestamp(ms) => match self.list(ms).await? {
                -1 => self.list(LATEST_TIMESTAMP).await?,
                offset => offset,
            },
        };
        Ok(())
    }

    async fn list(&self, timestamp: i64) -> Result<i64> {
        Ok(
            list_offset(&self.cluster, &self.topic, self.partition, timestamp)
                .await?
                .offset,
        )
    }

    /// The topic read.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition read.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The offset the next fetch starts at.
    pub fn position(&self) -> i64 {
        self.position
    }

    /// The high watermark the last fetch reported.
    pub fn high_watermark(&self) -> Option<i64> {
        self.high_watermark
    }

    /// One fetch: the records after the position (possibly none, after `max_wait`),
    /// and the position moved past them. Retriable failures are retried with backoff
    /// for up to the request timeout before being returned.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        match self.fetch_retrying().await? {
            Some((bytes, aborted)) => self.take(bytes, &aborted),
            None => Ok(Vec::new()),
        }
    }

    /// [`PartitionConsumer::poll`] on an audit topic, with every batch of the fetch
    /// proven by `check` (see [`crate::audit`]) before any record is returned. A batch
    /// that fails is an [`Error::AuditRefused`], and the position stays before it.
    pub async fn poll_checked<S: crate::audit::ProofSource>(
        &mut self,
        check: &mut crate::audit::AuditCheck<S>,
    ) -> Result<Vec<ConsumerRecord>> {
        let Some((bytes, aborted)) = self.fetch_retrying().await? else {
            return Ok(Vec::new());
        };
        check.check(&bytes).await.map_err(|r| Error::AuditRefused {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: r.offset,
            reason: r.reason,
        })?;
        self.take(bytes, &aborted)
    }

    /// One fetch as the broker stores it: the whole record batches after the position,
    /// each as its bytes (control batches and aborted transactions' batches included,
    /// as read_uncommitted serves them), and the position moved past them. An archiver
    /// or an audit exporter keeps these bytes as they are.
    pub async fn poll_batches(&mut self) -> Result<Vec<Bytes>> {
        let Some((bytes, _)) = self.fetch_retrying().await? else {
            return Ok(Vec::new());
        };
        let batches: Vec<Bytes> = crate::audit::frames(&bytes)
            .filter(|&(_, last, _)| last >= self.position)
            .map(|(_, _, batch)| bytes.slice_ref(batch))
            .collect();
        // Moves the position (and the fetch size, when no whole batch fit) as a poll does.
        self.take(bytes, &[])?;
        Ok(batches)
    }

    /// One fetch's record bytes and aborted transactions, retried as `poll` says.
    async fn fetch_retrying(&mut self) -> Result<Option<(Bytes, Vec<AbortedTxn>)>> {
        let deadline = Instant::now() + self.cluster.request_timeout();
        let mut backoff = RETRY_BACKOFF;
        loop {
            match self.fetch_once().await {
                Ok(fetched) => return Ok(fetched),
                Err(e) if refreshable(&e) && Instant::now() < deadline => {
                    debug!(topic = %self.topic, partition = self.partition, error = %e, "fetch failed; retrying");
                    self.connection = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                    let _ = self
                        .cluster
                        .refresh_metadata(Some(std::slice::from_ref(&self.topic)), false)
                        .await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn fetch_once(&mut self) -> Result<Option<(Bytes, Vec<AbortedTxn>)>> {
        let (leader, _) = self
            .cluster
            .metadata()
            .leader(&self.topic, self.partition)?;
        let conn = match &mut self.connection {
            Some((node, conn)) if *node == leader && !conn.is_broken() => conn,
            slot => {
                let conn = self.cluster.connect_node(leader).await?;
                &mut slot.insert((leader, conn)).1
            }
        };
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(duration_ms(self.config.max_wait))
            .with_min_bytes(self.config.min_bytes)
            .with_max_bytes(self.config.max_bytes)
            .with_isolation_level(self.config.isolation.wire())
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(self.partition)
                    .with_fetch_offset(self.position)
                    .with_partition_max_bytes(self.partition_max_bytes)])]);
        let timeout = self.cluster.request_timeout() + self.config.max_wait;
        let response = conn.send_with_timeout(&request, timeout).await?;
        let context = || {
            format!(
                "fetch {}-{} at {}",
                self.topic, self.partition, self.position
            )
        };
        Error::check(response.error_code, context, None)?;
        let Some(data) = response
            .responses
            .iter()
            .filter(|t| t.topic.0.as_str() == self.topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == self.partition)
        else {
            return Ok(None);
        };
        Error::check(data.error_code, context, None)?;
        self.high_watermark = Some(data.high_watermark);
        Ok(Some((
            data.records.clone().unwrap_or_default(),
            aborted_of(data),
        )))
    }

    /// The records of a fetch's bytes; moves the position past them.
    fn take(&mut self, bytes: Bytes, aborted: &[AbortedTxn]) -> Result<Vec<ConsumerRecord>> {
        let decoded = decode_records(&self.topic, self.partition, self.position, bytes, aborted)?;
        match decoded.next_offset {
            Some(next) => {
                self.position = self.position.max(next);
                self.partition_max_bytes = self.config.partition_max_bytes.max(1);
            }
            None if decoded.partial_tail_bytes > 0 => {
                // Not even one whole batch fit: ask for more next time.
                if self.partition_max_bytes >= MAX_PARTITION_FETCH_BYTES {
                    return Err(Error::CorruptBatch {
                        topic: self.topic.clone(),
                        partition: self.partition,
                        offset: self.position,
                        reason: format!(
                            "no complete batch within {MAX_PARTITION_FETCH_BYTES} bytes"
                        ),
                    });
                }
                self.partition_max_bytes = self
                    .partition_max_bytes
                    .saturating_mul(2)
                    .min(MAX_PARTITION_FETCH_BYTES);
            }
            None => {}
        }
        Ok(decoded.records)
    }
}

fn duration_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}
