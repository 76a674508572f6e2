//! The records users hand to the producer and get from the consumer.

use std::sync::Arc;

use bytes::Bytes;

pub use kafka_protocol::records::{Compression, TimestampType};

/// One record header. Kafka allows repeated keys; the `kafka-protocol` record codec
/// keeps one value per key, so a later header with the same key replaces an earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The key; `None` is a null key.
    pub key: String,
    /// The value; `None` is a null value (a tombstone on compacted topics).
    pub value: Option<Bytes>,
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerRecord {
    /// The topic. Shared: records of one topic can hold one allocation (clone an
    /// `Arc<str>`) instead of a `String` each.
    pub topic: Arc<str>,
    /// An explicit partition; `None` lets the partitioner choose (murmur2 of the key,
    /// or sticky/round-robin without a key).
    pub partition: Option<i32>,
    /// The key; `None` is a null key.
    pub key: Option<Bytes>,
    /// The value; `None` is a null value (a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// The headers, in order.
    pub headers: Vec<Header>,
    /// Creation time in ms since the epoch; `None` stamps the time of `send`.
    pub timestamp_ms: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and nothing else.
    pub fn new(topic: impl Into<Arc<str>>, value: impl Into<Bytes>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..ProducerRecord::default()
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> ProducerRecord {
        self.key = Some(key.into());
        self
    }

    /// Sets an explicit partition.
    pub fn with_partition(mut self, partition: i32) -> ProducerRecord {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Sets the creation timestamp (ms since the epoch).
    pub fn with_timestamp_ms(mut self, timestamp_ms: i64) -> ProducerRecord {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// An upper bound on the bytes this record adds to a batch (varint fields at their
    /// widest), used for batch sizing and buffer limits.
    pub fn size_estimate_bytes(&self) -> usize {
        const RECORD_OVERHEAD_BYTES: usize = 1 + 10 + 5 + 5 + 5 + 5 + 5;
        const HEADER_OVERHEAD_BYTES: usize = 10;
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        RECORD_OVERHEAD_BYTES
            + len(&self.key)
            + len(&self.value)
            + self
                .headers
                .iter()
                .map(|h| HEADER_OVERHEAD_BYTES + h.key.len() + len(&h.value))
                .sum::<usize>()
    }
}

/// Where an acknowledged record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic (one allocation shared by all records of the producer's topic).
    pub topic: Arc<str>,
    /// The partition index.
    pub partition: i32,
    /// The record's offset; `None` with acks=0 (the broker does not answer) or when the
    /// broker reported a duplicate without the original offset.
    pub offset: Option<i64>,
    /// The record's timestamp as sent.
    pub timestamp_ms: i64,
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic, shared by the records of one fetch (a reference count, not a copy
    /// per record).
    pub topic: Arc<str>,
    /// The partition index.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// Timestamp in ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// Whether the timestamp is the creation time or the log append time.
    pub timestamp_type: TimestampType,
    /// The key; `None` is a null key.
    pub key: Option<Bytes>,
    /// The value; `None` is a null value (a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// The headers, in order.
    pub headers: Vec<Header>,
}
