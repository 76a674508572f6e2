//! Why a partition refused or failed a request. Kafka error codes are chosen for these
//! in one place, `crate::kafka_codes`, where responses are built.

use log_store::LogError;

use crate::producer_state::SequenceRefusal;

/// A partition operation that did not happen, and why.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// This broker holds no replica, or a replica that does not lead.
    #[error("this broker does not lead the partition")]
    NotLeader,
    /// The partition was closed (shutdown) or deleted.
    #[error("the partition is closed or deleted")]
    Gone,
    /// An `fdatasync` failed (or a panic poisoned the log's lock): nothing is accepted or
    /// served any more, since the log may not hold what it believes written.
    #[error("the partition is offline after a storage failure")]
    Offline,
    /// This replica's audit tree disagrees with a head logged through Raft: its batches
    /// are not the ones replicated, so it serves nothing.
    #[error("this replica's audit tree disagrees with a logged head")]
    AuditDiverged,
    /// The client names a leader epoch this replica has not reached.
    #[error("leader epoch {given} is newer than this replica's {current}")]
    UnknownLeaderEpoch { given: i32, current: u64 },
    /// The client names an old leader epoch (its metadata is stale).
    #[error("leader epoch {given} is older than the current {current}")]
    FencedLeaderEpoch { given: i32, current: u64 },
    /// DeleteRecords past the high watermark.
    #[error("offset {offset} is past the high watermark {high_watermark}")]
    PastHighWatermark { offset: u64, high_watermark: u64 },
    /// An acks=all produce while fewer replicas are in sync than the topic's
    /// `min.insync.replicas`.
    #[error("{in_sync} replicas in sync, min.insync.replicas is {required}")]
    NotEnoughReplicas { in_sync: usize, required: u32 },
    /// Waited too long for the Raft group (an append, a commit, a log-start move).
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The batch breaks a rule of produced batches.
    #[error("invalid batch: {0}")]
    InvalidBatch(&'static str),
    /// A transactional batch whose producer has no ongoing transaction with this
    /// partition in it, as its transaction coordinator says.
    #[error("the batch's transaction was not verified with its coordinator")]
    TransactionNotVerified,
    /// The batch does not fit the producer's sequence or epoch.
    #[error(transparent)]
    Sequence(#[from] SequenceRefusal),
    /// The log refused or failed.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Short alias for partition operations.
pub type PartitionResult<T> = std::result::Result<T, PartitionError>;
