//! # broker — the Kafka-protocol server
//!
//! What a Kafka client talks to: [`server`] binds the Kafka and admin listeners and runs
//! until shutdown; [`connection`] frames requests and answers them in order;
//! [`request`] decodes a frame (the fuzzed path);
//! `handlers/` holds one file per Kafka API (decoded and encoded only with the
//! `kafka-protocol` crate); [`partition`] is one replica of a partition's Raft group;
//! [`topics`] is the map of topics and their partitions, which the cluster keeps in
//! line with the controller's records; [`producer_state`] makes
//! producers idempotent; [`txn_state`] follows each partition's transactions (the last
//! stable offset, the aborted ones) and [`control_batch`] is their markers;
//! [`admin_http`] serves `/health` and `/metrics`.
//!
//! Every broker is a cluster node ([`cluster`]): a controller Raft group holds the
//! metadata and every partition is a Raft group over its replicas (docs/cluster.md). A
//! single broker is a cluster of one, its groups with one voter each; a single broker's
//! directory from before that converts once at start ([`convert`]).
//!
//! ## Guarantees
//! - A Produce with acks=all is answered once its batch is committed by its group
//!   (durable with `fdatasync` on a quorum of replicas); the high watermark is the
//!   commit point and consumers never read past it.
//! - Batches are stored and served as the bytes that arrived (compression passes
//!   through); the broker validates the RecordBatch v2 header, CRC and every record
//!   (as Kafka's LogValidator), patches the base offset, and re-encodes nothing.
//! - A task or storage failure it cannot recover from is never silent: [`health`] turns
//!   `/health` into a 503 with the reason and stops the process (fail-stop).
//! - Malformed bytes get a Kafka error code or close their own connection only.
//!
//! ## Departures from the target design
//! - Fetch reads mmap'd segment slices and writes them with the response; no sendfile.
//! - Requests on one connection are decoded and applied in order; only the wait for
//!   durability (acks=all) and Fetch long polls overlap, and responses still leave in
//!   order (Kafka processes one request per connection at a time).
//! - The `cluster` module lists the cluster's own departures.

pub mod acl;
pub mod admin_http;
pub mod alloc;
pub mod audit_heads;
pub mod audit_signer;
pub mod audit_trail;
pub mod calls;
pub mod checked_file;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod control_batch;
pub mod convert;
pub mod disk_space;
pub mod error;
pub mod group;
pub mod handlers;
pub mod health;
pub mod identity;
pub mod internal_batch;
pub mod kafka_codes;
pub mod leadership;
pub mod metrics;
pub mod partition;
pub mod peers;
pub mod principal;
pub mod producer_state;
pub mod quota;
pub mod record_fields;
pub mod request;
pub mod response_frame;
pub mod scrape;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod throttle;
pub mod tls;
pub mod topics;
pub mod txn;
pub mod txn_state;
pub mod versions;

use std::sync::Arc;

pub use config::{BrokerConfig, TopicConfig, TopicDefaults};
pub use error::{BrokerError, Result};
pub use server::{run, Running};

use crate::cluster::Cluster;
use crate::group::Coordinator;
use crate::metrics::Metrics;
use crate::topics::Topics;

/// A bound Kafka listener.
#[derive(Debug, Clone)]
pub struct KafkaListener {
    /// Upper-case name (`PLAINTEXT`, `SSL`, …).
    pub name: String,
    pub protocol: config::SecurityProtocol,
    /// Where it is bound.
    pub addr: std::net::SocketAddr,
    /// What its clients are told.
    pub advertised: cluster::metadata::Endpoint,
}

/// Everything the request handlers share.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub node_id: i32,
    /// The Kafka listeners; the first is the broker's main address.
    pub listeners: Vec<KafkaListener>,
    pub topics: Topics,
    /// This node's part of the cluster: the controller, the Raft node and its groups.
    pub cluster: Arc<Cluster>,
    pub metrics: Arc<Metrics>,
    /// The consumer-group coordinator.
    pub groups: Arc<Coordinator>,
    /// The transaction coordinator.
    pub txns: Arc<txn::TxnCoordinator>,
    /// `queued.max.request.bytes`: one permit per request byte read and being handled.
    pub queued_request_bytes: Arc<tokio::sync::Semaphore>,
    /// Free space against `storage.min.free.bytes`.
    pub disk: disk_space::DiskSpace,
    /// Recent failed SASL authentications per client address.
    pub failed_logins: session::FailedLogins,
    /// Clients' usage measured against their quotas.
    pub quotas: quota::QuotaSensors,
    /// The key that signs audit tree heads (`audit.signing.key.file`), if set.
    pub audit_signer: Option<audit_signer::AuditSigner>,
    /// The broker's own audit trail (`audit.log.*`).
    pub audit_trail: audit_trail::AuditTrail,
}

impl Broker {
    /// The cluster id clients see: the one the controller recorded (`None` until it
    /// has).
    pub fn client_cluster_id(&self) -> Option<String> {
        self.cluster.cluster_id()
    }
}
