//! The error type at the `broker` crate boundary, and the one place where internal
//! errors become Kafka error codes.

use std::net::SocketAddr;
use std::path::PathBuf;

use kafka_protocol::error::ResponseError;
use log_store::{BatchError, LogError};

/// What can stop the broker or one of its operations. Every variant says where.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The configuration file or a flag is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A listener could not bind.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
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

/// The Kafka error code a client gets for a log error on its request.
pub fn log_error_code(e: &LogError) -> i16 {
    match e {
        // Kafka's older formats are well-formed but not stored; any other magic is noise.
        LogError::CorruptBatch(BatchError::BadMagic { magic: 0 | 1 }) => {
            ResponseError::UnsupportedForMessageFormat.code()
        }
        LogError::CorruptBatch(_) => ResponseError::CorruptMessage.code(),
        LogError::BatchTooLarge { .. } => ResponseError::MessageTooLarge.code(),
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        LogError::InvalidArgument(_) => ResponseError::InvalidRequest.code(),
        LogError::Io { .. }
        | LogError::CorruptFile { .. }
        | LogError::RaftIndexOutOfRange { .. } => ResponseError::KafkaStorageError.code(),
    }
}
