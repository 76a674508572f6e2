//! Shared by the replication tests: Kafka RecordBatch v2 bytes to propose, the Raft
//! tick of the in-process clusters, and polling for a condition.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use strata_testkit::{encode_batch, Compression, RecordSpec, NO_PRODUCER};

/// The Raft tick of the `LocalCluster` tests. Elections then wait 0.5-1 s without a
/// heartbeat: the tests read the leader once and use it for several steps, and a
/// shorter timeout let a loaded machine's scheduling stall start an election in between.
pub const TICK: Duration = Duration::from_millis(50);

/// One batch of `records` records (not idempotent) whose values name `tag`; every batch
/// with the same record count has the same length.
pub fn batch(tag: u64, records: usize) -> Bytes {
    let specs = (0..records).map(|i| RecordSpec {
        key: None,
        value: Some(Bytes::from(format!("value {tag:010}.{i:04}"))),
        timestamp_ms: 1_700_000_000_000 + tag as i64,
    });
    encode_batch(specs, NO_PRODUCER, Compression::None).freeze()
}

/// Waits until `condition` holds, polling every 5 ms; panics naming `what` after 20 s.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
