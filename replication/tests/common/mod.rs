//! Shared by the replication tests: Kafka RecordBatch v2 bytes to propose.
#![allow(dead_code)]

use bytes::Bytes;
use strata_testkit::{encode_batch, Compression, RecordSpec, NO_PRODUCER};

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
