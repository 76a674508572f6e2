//! # replication — one Raft group per partition (in progress)
//!
//! Partition replication as `../shared/ARCHITECTURE.md` lays out and the replication
//! issue specifies. Built so far:
//!
//! - [`storage::LogStorage`]: raft-rs (tikv `raft` 0.7) `Storage` over `log-store`'s dense
//!   Raft entry table, so the partition log *is* the Raft log (no second write-ahead log);
//! - [`state`]: the hard state and configuration, persisted crash-safely beside the log.
//!
//! To come (the later items): the multi-Raft node and Ready loop that batches
//! persistence across groups, the inter-broker transport, leadership tools, catch-up by
//! snapshot (`LogStorage::snapshot` answers "temporarily unavailable" until then), and
//! membership change.

pub mod error;
pub mod state;
pub mod storage;

pub use error::{ReplicationError, Result};
pub use storage::LogStorage;
