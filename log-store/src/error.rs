//! The one error type at the `log-store` crate boundary.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the partition log. Each variant names where (path,
/// offset, Raft index) so an operator can act on the message alone.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An operating-system call on a log file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A record batch handed to `append` (or found on disk) is not a valid Kafka
    /// RecordBatch v2.
    #[error("corrupt record batch: {0}")]
    CorruptBatch(#[from] crate::batch::BatchError),

    /// A file on disk does not hold what the log wrote there and cannot be repaired
    /// without losing acknowledged data, so the log refuses to guess.
    #[error("corrupt log file {path}: {reason}")]
    CorruptFile { path: PathBuf, reason: String },

    /// A Kafka offset outside `[log_start_offset, next_offset]`.
    #[error("offset {requested} is out of range [{log_start}, {next}]")]
    OffsetOutOfRange {
        requested: u64,
        log_start: u64,
        next: u64,
    },

    /// A Raft index outside the entries this log holds.
    #[error("raft index {requested} is out of range [{first}, {last}]")]
    RaftIndexOutOfRange {
        requested: u64,
        first: u64,
        last: u64,
    },

    /// A batch larger than `max.message.bytes`.
    #[error("record batch of {size_bytes} bytes exceeds max.message.bytes {limit_bytes}")]
    BatchTooLarge { size_bytes: usize, limit_bytes: u32 },

    /// The log was sealed ([`crate::Log::seal`]): its files are final until it is
    /// opened again.
    #[error("the log in {dir} is closed")]
    Closed { dir: PathBuf },

    /// An audit question to a log that keeps no tree, as the text says.
    #[error("no audit tree: {0}")]
    NoAuditTree(&'static str),

    /// An audit proof about leaves or tree sizes the tree does not hold.
    #[error("audit tree: {0}")]
    AuditRange(String),

    /// A caller asked for something the log's rules forbid (a term going backwards, an
    /// invalid configuration value, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl LogError {
    /// Wraps an `io::Error` with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        LogError::CorruptFile {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Short alias used throughout the crate.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
