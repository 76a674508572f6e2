//! # client — an async Kafka client library and the `strata` CLI commands (not yet built)
//!
//! This crate will own, per `../shared/ARCHITECTURE.md` and the broker issue: a producer
//! (batching by linger and size, murmur2 key partitioner, acks, idempotence, retries), a
//! partition consumer, a group consumer, an admin client, and the CLI commands built on them
//! (`strata topic …`, `strata produce`, `strata consume`, `strata group …`, `strata bench`).
//! It speaks only the Kafka protocol and depends on no other Strata crate.
//!
//! It holds no code yet.
