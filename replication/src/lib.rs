//! # replication — one Raft group per partition (not yet built)
//!
//! This crate will own partition replication, as `../shared/ARCHITECTURE.md` lays out and
//! the replication issue specifies:
//!
//! - a raft-rs (tikv `raft` 0.7) `Storage` implementation over `log-store`'s dense Raft entry
//!   table, so the partition log *is* the Raft log (no second write-ahead log);
//! - a multi-Raft node with one tick driver and a Ready loop that batches persistence across
//!   groups (one fsync for many appends) before sending messages;
//! - the inter-broker TCP transport (one connection per peer pair, coalesced heartbeats,
//!   bounded queues);
//! - leadership (check-quorum, pre-vote, transfer), catch-up by snapshot, and membership
//!   change through joint consensus.
//!
//! It holds no code yet: the `log-store` APIs it will build on (append with a term,
//! truncation by Raft index, term lookup, non-data entries, a flush watermark) exist already.
