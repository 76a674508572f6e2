//! # client — an async Kafka client for Strata (and any Kafka-protocol broker)
//!
//! Speaks only the Kafka wire protocol, through the `kafka-protocol` crate's generated
//! codecs, and depends on no other Strata crate.
//!
//! - [`Connection`]: one TCP connection, frames, correlation ids, API version
//!   negotiation, per-request timeouts, bounded frames.
//! - [`Cluster`]: bootstrap, metadata (partition → leader by node id) and a connection
//!   per broker.
//! - [`Admin`]: create, delete, list and describe topics; describe and alter configs;
//!   add partitions.
//! - [`Producer`]: batching by linger and size, the Java client's murmur2 partitioner,
//!   acks 0/1/all, idempotence, retries with backoff, compression.
//! - [`PartitionConsumer`]: reads one partition from earliest, latest, an offset or a
//!   time.
//!
//! Errors are one enum, [`Error`]; nothing here panics on what the network sends.
//! One caveat, from the codec: `kafka-protocol` 0.18 pre-allocates each decoded array
//! by the length on the wire, so a hostile broker's forged length can make the
//! allocator fail and abort the process. Binaries that talk to untrusted brokers should
//! install a lazily-mapping allocator for huge requests, as the `strata` binary does
//! (`broker::alloc::LazyHugeAlloc`). Record batches are bounded here: a batch's record
//! count must fit its bytes ([`batch::MAX_RECORDS_PER_COMPRESSED_BATCH`] when
//! compressed).

#![warn(missing_docs)]

pub mod admin;
pub mod batch;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod metadata;
pub mod offsets;
pub mod partitioner;
pub mod producer;
pub mod record;

pub use admin::Admin;
pub use cluster::{ClientConfig, Cluster};
pub use connection::{Connection, ConnectionConfig};
pub use consumer::{FetchConfig, PartitionConsumer, StartOffset};
pub use error::{Error, KafkaCode, Result};
pub use producer::{Acks, Delivery, Producer, ProducerConfig};
pub use record::{Compression, ConsumerRecord, Header, ProducerRecord, RecordMetadata};
