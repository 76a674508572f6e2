//! The error type at the `broker` crate boundary (Kafka error codes are chosen in
//! `kafka_codes`).

use std::net::SocketAddr;
use std::path::PathBuf;

use log_store::LogError;

/// What can stop the broker or one of its operations. Every variant says where.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The configuration file or a flag is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A listener could not bind.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// A file of the broker's own (topic registry, producer-id block) failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file of the broker's own holds something it did not write.
    #[error("corrupt broker file {path}: {reason}")]
    CorruptFile { path: PathBuf, reason: String },

    /// A partition log failed.
    #[error("partition {topic}-{partition}: {source}")]
    Log {
        topic: String,
        partition: i32,
        #[source]
        source: LogError,
    },

    /// A partition's Raft group could not be opened or driven.
    #[error("partition {topic}-{partition} replication: {reason}")]
    Replication {
        topic: String,
        partition: i32,
        reason: String,
    },

    /// Converting a single broker's data directory stopped at `dir` (the next start
    /// carries on from there).
    #[error("converting the single broker's data directory stopped at {dir}: {reason}")]
    Conversion { dir: PathBuf, reason: String },

    /// The cluster (controller group, transport) could not start or answer.
    #[error("cluster: {0}")]
    Cluster(String),
}

impl BrokerError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BrokerError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Short alias used throughout the crate.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;
