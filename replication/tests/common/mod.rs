//! Shared by the replication tests: Kafka RecordBatch v2 bytes to propose.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One batch of `records` records (not idempotent) whose values name `tag`; every batch
/// with the same record count has the same length.
pub fn batch(tag: u64, records: usize) -> Bytes {
    let recs: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch unless offset - sequence is constant; this
            // keeps one batch with base sequence -1 (not idempotent).
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + tag as i64,
            key: None,
            value: Some(Bytes::from(format!("value {tag:010}.{i:04}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        recs.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encoding small uncompressed records cannot fail");
    buf.freeze()
}
