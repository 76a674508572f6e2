//! # client — an async Kafka client for Strata (and any Kafka-protocol broker)
//!
//! Speaks only the Kafka wire protocol, through the `kafka-protocol` crate's generated
//! codecs. Of Strata's crates it uses only `strata-sasl` (the SASL exchanges, shared
//! with the broker), never the broker or its storage.
//!
//! - [`Connection`]: one connection, frames, correlation ids, API version
//!   negotiation, per-request timeouts, bounded frames; over TCP or TLS, authenticated
//!   with SASL PLAIN or SCRAM when [`security`] says so (Kafka's `security.protocol`
//!   and `ssl.*` / `sasl.*` settings). [`Connection::into_pipeline`] turns one into a
//!   pipelined connection (a writer and a reader, several requests on the wire at once).
//! - [`Cluster`]: bootstrap, metadata (partition → leader by node id) and a connection
//!   per broker.
//! - [`Admin`]: create, delete, list and describe topics; describe and alter configs;
//!   add partitions; describe, set and delete users' SCRAM credentials; create,
//!   describe and delete ACLs ([`acls`]); describe and alter client quotas
//!   ([`quotas`]).
//! - [`Producer`]: batching by linger and size, the Java client's murmur2 partitioner,
//!   acks 0/1/all, idempotence, retries with backoff, compression; up to 5 batches per
//!   partition in flight on one pipelined connection per broker, in order across
//!   retries.
//! - [`PartitionConsumer`]: reads one partition from earliest, latest, an offset or a
//!   time.
//! - [`GroupConsumer`]: a consumer group member (Kafka's classic group protocol):
//!   subscribe to topics, share their partitions with the group's other members,
//!   commit progress; [`GroupAdmin`] lists, describes, resets and deletes groups.
//!
//! ## Consumer groups: what is guaranteed
//!
//! Delivery is **at least once** when the application finishes processing the records
//! of one [`GroupConsumer::poll`] before the next poll (auto commit, the default, commits
//! the positions after returned records every `auto_commit_interval`, before every
//! rebalance and on close) or before calling [`GroupConsumer::commit`] (manual commit).
//! Committed offsets never run ahead of what `poll` returned.
//!
//! On a rebalance (a member joins or leaves, a session times out, partitions are added)
//! each member, inside `poll`, stops reading, commits (auto commit), and reports the
//! partitions it loses to [`group::RebalanceListener::on_partitions_revoked`]; the group
//! then assigns partitions afresh (eager protocol; the leader runs the `range`,
//! `roundrobin` or `sticky` assignor) and each member resumes its new partitions at the
//! group's committed offsets, or at `auto_offset_reset` where there are none. Records
//! returned after the last successful commit are read again by the partition's next
//! owner: that is the "at least" in at least once. A member whose generation is over
//! (it missed a rebalance) cannot commit: [`Error::CommitFailed`].
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

pub mod acls;
pub mod admin;
pub mod audit;
pub mod batch;
pub mod cluster;
pub mod connection;
pub mod consumer;
mod delivery;
pub mod error;
pub mod group;
pub mod metadata;
pub mod offsets;
pub mod partitioner;
pub mod producer;
pub mod quotas;
pub mod record;
pub mod security;
pub mod topic_partition;
pub mod transaction;
pub mod users;

pub use acls::{AclBinding, AclFilter, AclOperation, PatternType, Permission, ResourceType};
pub use admin::Admin;
pub use cluster::{ClientConfig, Cluster};
pub use connection::{Connection, ConnectionConfig};
pub use consumer::{FetchConfig, Isolation, PartitionConsumer, StartOffset};
pub use error::{Error, KafkaCode, Result};
pub use group::{GroupAdmin, GroupConfig, GroupConsumer, OffsetReset};
pub use producer::{Acks, Delivery, Producer, ProducerConfig, TryEnqueueError};
pub use quotas::{EntityName, QuotaEntity, QuotaFilterComponent, QuotaKey};
pub use record::{Compression, ConsumerRecord, Header, ProducerRecord, RecordMetadata};
pub use security::{Mechanism as SaslMechanism, Security, SecurityConfig, SecurityProtocol};
pub use topic_partition::TopicPartition;
pub use transaction::{GroupMetadata, TransactionConfig, TransactionalProducer};
