//! # strata-testkit — Kafka RecordBatch v2 bytes for tests and benchmarks
//!
//! Every test and benchmark that needs real batches builds them here, with the
//! `kafka-protocol` encoder (never by hand), so one place knows the encoder's rules.
//! Not for production code: encoding failures panic, which only a mistake in a test can
//! cause for the inputs here.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

pub use kafka_protocol::records::Compression;

/// Every codec a RecordBatch v2 may use, uncompressed first.
pub const ALL_COMPRESSIONS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// One record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub timestamp_ms: i64,
}

/// Who produced the batch. Idempotent producers number records from `first_sequence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Producer {
    pub id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
}

/// A producer without idempotence (producer id, epoch and base sequence -1).
pub const NO_PRODUCER: Producer = Producer {
    id: -1,
    epoch: -1,
    first_sequence: -1,
};

/// Encodes `records` as one RecordBatch v2 (offsets from 0, so a log assigns them).
///
/// The encoder starts a new batch whenever `offset - sequence` changes, so sequences
/// follow offsets: `first_sequence + i`, or `i - 1` without a producer (base sequence
/// -1, what Kafka clients send when not idempotent).
pub fn encode_batch(
    records: impl IntoIterator<Item = RecordSpec>,
    producer: Producer,
    compression: Compression,
) -> BytesMut {
    let recs: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.id,
            producer_epoch: producer.epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: producer.first_sequence.wrapping_add(i as i32),
            timestamp: r.timestamp_ms,
            key: r.key,
            value: r.value,
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        recs.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("the encoder cannot fail on records built here (a test mistake if it does)");
    buf
}

/// `records` records of producer 7 (epoch 0, sequences from 0): record `i` has key
/// `key-{seed}-{i}`, a `value_bytes`-byte value of byte `seed % 251`, and timestamp
/// `timestamp_ms + i`. The shape the log-store and CLI tests use.
pub fn keyed_batch(seed: u64, records: usize, value_bytes: usize, timestamp_ms: i64) -> Vec<u8> {
    let specs = (0..records).map(|i| RecordSpec {
        key: Some(Bytes::from(format!("key-{seed}-{i}"))),
        value: Some(Bytes::from(vec![(seed % 251) as u8; value_bytes])),
        timestamp_ms: timestamp_ms + i as i64,
    });
    let producer = Producer {
        id: 7,
        epoch: 0,
        first_sequence: 0,
    };
    encode_batch(specs, producer, Compression::None).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn one_batch_whatever_the_producer() {
        for producer in [
            NO_PRODUCER,
            Producer {
                id: 3,
                epoch: 1,
                first_sequence: 40,
            },
        ] {
            let specs = (0..5).map(|i| RecordSpec {
                key: None,
                value: Some(Bytes::from(vec![b'x'; i])),
                timestamp_ms: 1000 + i as i64,
            });
            let mut buf = encode_batch(specs, producer, Compression::None).freeze();
            let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
            assert_eq!(sets.len(), 1, "{producer:?}");
            assert_eq!(sets[0].records.len(), 5);
        }
        let b = keyed_batch(3, 4, 10, 5);
        let sets = RecordBatchDecoder::decode_all(&mut Bytes::from(b)).unwrap();
        assert_eq!(sets[0].records[3].key.as_deref(), Some(&b"key-3-3"[..]));
    }
}
