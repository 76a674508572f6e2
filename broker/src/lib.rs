//! # broker — the Kafka-protocol server
//!
//! What a Kafka client talks to: [`server`] binds the Kafka and admin listeners and runs
//! until shutdown; [`connection`] frames requests and answers them in order;
//! [`request`] decodes a frame (the fuzzed path);
//! `handlers/` holds one file per Kafka API (decoded and encoded only with the
//! `kafka-protocol` crate); [`partition`] puts a `log-store` log behind the high
//! watermark and group commit; [`topics`] keeps the topic registry; [`producer_state`]
//! and [`producer_ids`] make producers idempotent; [`admin_http`] serves `/health` and
//! `/metrics`.
//!
//! ## Guarantees
//! - A Produce with acks=all is answered once its batch is durable (`fdatasync`); the
//!   high watermark is the durable end of the log and consumers never read past it.
//! - Batches are stored and served as the bytes that arrived (compression passes
//!   through); the broker validates the RecordBatch v2 header, CRC and every record
//!   (as Kafka's LogValidator), patches the base offset, and re-encodes nothing.
//! - A task or storage failure it cannot recover from is never silent: [`health`] turns
//!   `/health` into a 503 with the reason and stops the process (fail-stop).
//! - Malformed bytes get a Kafka error code or close their own connection only.
//!
//! ## Cluster mode
//! With `--raft-addr` and `--peers`, [`cluster`] runs this broker as a node of a
//! cluster: a controller Raft group holds the metadata and every partition is a Raft
//! group over its replicas (docs/cluster.md). Without them it is a single node.
//!
//! ## Departures from the target design
//! - A single node runs no Raft group: the high watermark is the flushed offset, which is
//!   what a one-voter Raft group commits, and topic metadata lives in
//!   `<data-dir>/topics.toml`. In a cluster the partitions and the controller are Raft
//!   groups; its own departures are in the `cluster` module.
//! - Fetch reads mmap'd segment slices and writes them with the response; no sendfile.
//! - Requests on one connection are decoded and applied in order; only the wait for
//!   durability (acks=all) and Fetch long polls overlap, and responses still leave in
//!   order (Kafka processes one request per connection at a time).

pub mod admin_http;
pub mod alloc;
pub mod checked_file;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod convert;
pub mod disk_space;
pub mod error;
pub mod group;
pub mod handlers;
pub mod health;
pub mod identity;
pub mod internal_batch;
pub mod kafka_codes;
pub mod metrics;
pub mod partition;
pub mod producer_ids;
pub mod producer_state;
pub mod request;
pub mod response_frame;
pub mod server;
pub mod shutdown;
pub mod topics;
pub mod versions;

use std::sync::{Arc, Mutex};

pub use config::{BrokerConfig, TopicConfig, TopicDefaults};
pub use error::{BrokerError, Result};
pub use server::{run, Running};

use crate::group::Coordinator;
use crate::metrics::Metrics;
use crate::producer_ids::ProducerIds;
use crate::topics::Topics;

/// Everything the request handlers share.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub node_id: i32,
    pub cluster_id: String,
    /// Host and port clients are told to connect to.
    pub advertised_host: String,
    pub advertised_port: i32,
    pub topics: Topics,
    pub producer_ids: Mutex<ProducerIds>,
    pub metrics: Arc<Metrics>,
    /// The consumer-group coordinator (every group, on a single node).
    pub groups: Arc<Coordinator>,
    /// `queued.max.request.bytes`: one permit per request byte read and being handled.
    pub queued_request_bytes: Arc<tokio::sync::Semaphore>,
    /// Free space against `storage.min.free.bytes`.
    pub disk: disk_space::DiskSpace,
}

impl Broker {
    /// The cluster id clients see: this data directory's on a single node; in a cluster
    /// the one the controller recorded (`None` until it has).
    pub fn client_cluster_id(&self) -> Option<String> {
        match self.topics.cluster() {
            Some(c) => c.cluster_id(),
            None => Some(self.cluster_id.clone()),
        }
    }
}
