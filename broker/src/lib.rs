//! # broker — the Kafka-protocol server (not yet built)
//!
//! This crate will own everything a Kafka client talks to, per `../shared/ARCHITECTURE.md`
//! and the broker issue: the TCP listener and request framing (`connection.rs`), one handler
//! file per Kafka API under `handlers/` (encoded and decoded only with the `kafka-protocol`
//! crate), partitions backed by `log-store` logs, idempotent-producer state, the group
//! coordinator, and the admin HTTP server (`/health`, `/metrics`).
//!
//! It holds no code yet.
