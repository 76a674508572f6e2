//! The error type at the `replication` crate boundary.

use std::path::PathBuf;

/// What can go wrong in a partition's Raft group. Each variant says where.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The partition log failed.
    #[error("raft log {dir}: {source}")]
    Log {
        dir: PathBuf,
        #[source]
        source: log_store::LogError,
    },

    /// The persisted Raft state (hard state, configuration) could not be read or written.
    #[error("raft state {path}: {source}")]
    StateIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The persisted Raft state holds something this code did not write.
    #[error("corrupt raft state {path}: {reason}")]
    CorruptState { path: PathBuf, reason: String },

    /// The transport's identity or TLS material could not be set up.
    #[error(transparent)]
    Security(#[from] crate::transport::SecurityError),

    /// A socket operation of the transport failed.
    #[error("network {what}: {source}")]
    Network {
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// raft-rs refused an operation (`what`).
    #[error("raft {what}: {source}")]
    Raft {
        what: &'static str,
        #[source]
        source: raft::Error,
    },

    /// A log written outside Raft cannot become a group's as it is.
    #[error("cannot adopt the log in {dir}: {reason}")]
    Adopt { dir: PathBuf, reason: String },

    /// A Raft message no honest replica of the group sends (a forged or corrupted
    /// frame); refused before raft-rs, which would panic on it.
    #[error("group {group}: {kind} from {from} refused: {reason}")]
    ImpossibleMessage {
        group: u64,
        from: u64,
        kind: String,
        reason: String,
    },

    /// Entries handed to the storage do not continue the log (a caller bug or a
    /// corrupted message).
    #[error("raft log {dir}: {reason}")]
    BadEntries { dir: PathBuf, reason: String },
}

/// Short alias used throughout the crate.
pub type Result<T, E = ReplicationError> = std::result::Result<T, E>;
