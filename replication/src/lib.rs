//! # replication — one Raft group per partition
//!
//! Partition replication, with the partition log as the Raft log. Built so far:
//!
//! - [`storage::LogStorage`]: raft-rs (tikv `raft` 0.7) `Storage` over `log-store`'s dense
//!   Raft entry table, so the partition log *is* the Raft log (no second write-ahead log);
//! - [`state`]: the hard state and configuration, persisted crash-safely beside the log;
//! - [`group::Group`]: one replica of a partition's group, a `RawNode` with the Ready
//!   handling (appends flushed off the driver's task, acknowledgements held until then;
//!   snapshots, votes and truncations persisted in place; then apply and move the commit
//!   watermark), driven by the caller's ticks and messages (the deterministic simulation
//!   in `tests/sim.rs`); opt-in write caching ([`group::WriteCaching`]: appends count
//!   once written, the flush follows in the background); a leader's own proposals are
//!   written without checking their CRC again (checked when proposed);
//! - [`transport`]: one checksummed, batched TCP connection per peer carrying every
//!   group's messages, with bounded queues and reconnection; each connection starts
//!   with a cluster-id/node-id handshake, optionally inside mutual TLS that binds node
//!   ids to certificates;
//! - [`node`]: the task that drives every group of a broker (ticks, peers' messages,
//!   proposals; a group's flush runs on the blocking pool while the task goes on);
//!   proposals resolve when the leader accepts them (acks=1) or on commit (acks=all);
//!   membership changes, leader transfers, groups added and removed, status;
//! - [`local_cluster::LocalCluster`]: N nodes in one process over loopback TCP, for the
//!   cluster tests and the replication benchmark;
//! - [`quiesce`]: idle groups stop ticking; liveness is kept per peer node instead;
//! - [`balance`]: a plan of leader transfers that evens leaderships out over brokers.
//!
//! Catch-up past retention uses a snapshot that carries no records: it restarts the
//! follower's log at the leader's first retained entry, and the records follow as
//! ordinary appends (docs/replication.md says why). The broker's cluster mode drives
//! partitions through [`node::NodeHandle`]: a [`node::GroupView`] per group (leader,
//! term, commit point), proposals answered on append and on commit, proposals forwarded
//! from followers (controller records), and a preferred leader's campaign.

pub mod balance;
pub mod error;
pub mod group;
pub mod local_cluster;
pub mod node;
pub mod quiesce;
pub mod state;
pub mod storage;
pub mod transport;

pub use error::{ReplicationError, Result};
pub use storage::LogStorage;
