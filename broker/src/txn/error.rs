//! Why the transaction coordinator refuses a request; the Kafka code each becomes is
//! in `crate::kafka_codes`.

use std::sync::Arc;

use crate::partition::PartitionError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum TxnError {
    /// `__transaction_state` does not exist yet, or has no leader for the id.
    #[error("the transaction coordinator is not available")]
    CoordinatorNotAvailable,
    /// Another broker leads the id's `__transaction_state` partition.
    #[error("this broker does not coordinate the transactional id")]
    NotCoordinator,
    /// This broker leads the partition but has not loaded its transactions yet.
    #[error("the transaction coordinator is still loading the id's partition")]
    LoadInProgress,
    #[error("transactional id {0:?} is empty or too long")]
    InvalidId(String),
    #[error("transaction timeout {timeout_ms} ms is outside 1..={max_ms} ms")]
    InvalidTimeout { timeout_ms: i32, max_ms: i32 },
    /// The transaction is ending (markers being written) or another request on it is
    /// being made durable: the client retries.
    #[error("another operation on the transaction is in progress")]
    Concurrent,
    /// The producer's epoch is not the id's current one: a newer producer instance took
    /// over, or the coordinator aborted the transaction on its timeout.
    #[error("the producer was fenced by a newer epoch")]
    ProducerFenced,
    #[error("the producer id does not belong to the transactional id")]
    InvalidProducerIdMapping,
    #[error("cannot {} a transaction in state {status}", if *.commit { "commit" } else { "abort" })]
    InvalidTxnState { status: &'static str, commit: bool },
    /// A produce of a transactional batch to a partition that is not in the producer's
    /// ongoing transaction (or from a producer with none).
    #[error("the partition is not in the producer's ongoing transaction")]
    NotInTransaction,
    /// A partition that does not exist, or that transactions may not write to.
    #[error("unknown partition {topic}-{partition}")]
    UnknownPartition { topic: String, partition: i32 },
    /// A partition this broker does not lead (a marker sent to the wrong broker).
    #[error("this broker does not lead {topic}-{partition}")]
    NotLeader { topic: String, partition: i32 },
    /// WriteTxnMarkers from a client asked for a COMMIT: only a coordinator commits.
    #[error("only the transaction coordinator writes COMMIT markers")]
    AdminCommit,
    /// A call to another broker (a marker, a verification) failed or was refused.
    #[error("{0}")]
    Peer(String),
    #[error("no producer id could be allocated: {0}")]
    ProducerIds(String),
    /// Writing the transaction's record or a marker failed.
    #[error("writing the transaction's records: {0}")]
    Storage(#[source] Arc<PartitionError>),
}

impl From<PartitionError> for TxnError {
    fn from(e: PartitionError) -> Self {
        TxnError::Storage(Arc::new(e))
    }
}
