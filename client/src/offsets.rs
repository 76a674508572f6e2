//! ListOffsets: a partition's earliest and latest offsets, and the first offset at or
//! after a time.

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Cluster;
use crate::error::{Error, Result};

/// ListOffsets' timestamp for "the log start offset".
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets' timestamp for "the log end offset" (the high watermark).
pub const LATEST_TIMESTAMP: i64 = -1;

/// First and longest wait between ListOffsets attempts (Kafka's retry.backoff.ms and
/// retry.backoff.max.ms).
const RETRY_BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(100);
const RETRY_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// What ListOffsets answered for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    /// The offset; -1 when a time query found no record at or after the time.
    pub offset: i64,
    /// The found record's timestamp (time queries), else -1.
    pub timestamp_ms: i64,
}

/// Asks the leader of `topic`-`partition` for the offset matching `timestamp`
/// ([`EARLIEST_TIMESTAMP`], [`LATEST_TIMESTAMP`], or ms since the epoch: the first
/// offset whose timestamp is at or after it). While the leader moved or is unknown (an
/// election under way), refreshes metadata and retries with a growing backoff, for up
/// to the cluster's request timeout, as Kafka clients do.
pub async fn list_offset(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> Result<OffsetAndTimestamp> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(0)
        .with_timeout_ms(i32::try_from(cluster.request_timeout().as_millis()).unwrap_or(i32::MAX))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])]);
    let deadline = tokio::time::Instant::now() + cluster.request_timeout();
    let mut backoff = RETRY_BACKOFF_MIN;
    loop {
        let attempt = async {
            let (node, _) = cluster.metadata().leader(topic, partition)?;
            let response = cluster.send_node(node, &request).await?;
            let p = response
                .topics
                .iter()
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == partition)
                .ok_or_else(|| Error::Kafka {
                    context: format!("list offsets of {topic}-{partition}"),
                    code: crate::error::KafkaCode(crate::error::UNKNOWN_TOPIC_OR_PARTITION),
                    message: Some("the response does not mention the partition".into()),
                })?;
            Error::check(
                p.error_code,
                || format!("list offsets of {topic}-{partition}"),
                None,
            )?;
            Ok(OffsetAndTimestamp {
                offset: p.offset,
                timestamp_ms: p.timestamp,
            })
        };
        match attempt.await {
            Err(e) if refreshable(&e) && tokio::time::Instant::now() + backoff < deadline => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                cluster
                    .refresh_metadata(Some(&[topic.to_string()]), false)
                    .await?;
            }
            other => return other,
        }
    }
}

/// Errors a metadata refresh may cure: stale leaders, unknown topics, broken links.
pub(crate) fn refreshable(e: &Error) -> bool {
    matches!(
        e,
        Error::UnknownTopic { .. } | Error::UnknownPartition { .. } | Error::NoLeader { .. }
    ) || e.is_retriable()
}
