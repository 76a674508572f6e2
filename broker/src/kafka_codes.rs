//! The one place where the broker's typed errors become Kafka error codes, for the
//! handlers that build responses (Kafka's `Errors.forException`).

use kafka_protocol::error::ResponseError;
use log_store::{BatchError, LogError};

use crate::cluster::metadata::Refusal;
use crate::cluster::ClusterError;
use crate::group::{CommitOutcome, GroupError};
use crate::partition::PartitionError;
use crate::producer_state::SequenceRefusal;
use crate::topics::TopicError;
use crate::txn::TxnError;

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
        LogError::InvalidArgument(_) | LogError::NoAuditTree(_) | LogError::AuditRange(_) => {
            ResponseError::InvalidRequest.code()
        }
        // Sealed at shutdown: another replica (or this one after its restart) serves it.
        LogError::Closed { .. } => ResponseError::NotLeaderOrFollower.code(),
        LogError::Io { .. }
        | LogError::CorruptFile { .. }
        | LogError::RaftIndexOutOfRange { .. } => ResponseError::KafkaStorageError.code(),
    }
}

impl SequenceRefusal {
    /// As Kafka answers an idempotent producer's batch that does not fit.
    pub fn code(&self) -> i16 {
        match self {
            SequenceRefusal::Malformed { .. } => ResponseError::InvalidRecord,
            SequenceRefusal::StaleEpoch { .. } => ResponseError::InvalidProducerEpoch,
            SequenceRefusal::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber,
            SequenceRefusal::NoOpenTransaction { .. } => ResponseError::InvalidTxnState,
            SequenceRefusal::NotCurrentEpoch { .. } => ResponseError::InvalidProducerEpoch,
        }
        .code()
    }
}

impl PartitionError {
    /// The Kafka error code for the partition's part of a response.
    pub fn code(&self) -> i16 {
        let e = match self {
            PartitionError::NotLeader => ResponseError::NotLeaderOrFollower,
            PartitionError::Gone => ResponseError::UnknownTopicOrPartition,
            PartitionError::Offline | PartitionError::AuditDiverged => {
                ResponseError::KafkaStorageError
            }
            PartitionError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
            PartitionError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            PartitionError::PastHighWatermark { .. } => ResponseError::OffsetOutOfRange,
            PartitionError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
            PartitionError::Timeout(_) => ResponseError::RequestTimedOut,
            PartitionError::InvalidBatch(_) => ResponseError::InvalidRecord,
            PartitionError::TransactionNotVerified => ResponseError::InvalidTxnState,
            PartitionError::Sequence(s) => return s.code(),
            PartitionError::Log(e) => return log_error_code(e),
        };
        e.code()
    }

    /// The code a group member gets when writing to `__consumer_offsets` failed (Kafka's
    /// mapping: the client retries, or finds the coordinator again).
    pub fn group_code(&self) -> i16 {
        match self {
            PartitionError::Log(LogError::BatchTooLarge { .. }) => {
                ResponseError::InvalidCommitOffsetSize
            }
            PartitionError::NotLeader => ResponseError::NotCoordinator,
            _ => ResponseError::CoordinatorNotAvailable,
        }
        .code()
    }
}

impl GroupError {
    /// As Kafka's group coordinator answers.
    pub fn code(&self) -> i16 {
        match self {
            GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            GroupError::NotCoordinator => ResponseError::NotCoordinator,
            GroupError::LoadInProgress => ResponseError::CoordinatorLoadInProgress,
            GroupError::FencedInstance { .. } => ResponseError::FencedInstanceId,
            GroupError::UnknownMember { .. } => ResponseError::UnknownMemberId,
            GroupError::IllegalGeneration { .. } => ResponseError::IllegalGeneration,
            GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
            GroupError::InvalidGroupId { .. } => ResponseError::InvalidGroupId,
            GroupError::GroupNotFound { .. } => ResponseError::GroupIdNotFound,
            GroupError::NonEmptyGroup { .. } => ResponseError::NonEmptyGroup,
            GroupError::SubscribedToTopic { .. } => ResponseError::GroupSubscribedToTopic,
            GroupError::UnknownTopicOrPartition { .. } => ResponseError::UnknownTopicOrPartition,
            GroupError::OffsetMetadataTooLarge { .. } => ResponseError::OffsetMetadataTooLarge,
            GroupError::MemberIdRequired { .. } => ResponseError::MemberIdRequired,
            GroupError::GroupFull { .. } => ResponseError::GroupMaxSizeReached,
            GroupError::Unauthorized { .. } => ResponseError::GroupAuthorizationFailed,
            GroupError::InvalidSessionTimeout { .. } => ResponseError::InvalidSessionTimeout,
            GroupError::InconsistentProtocol => ResponseError::InconsistentGroupProtocol,
            GroupError::IdTooLong { .. } => ResponseError::InvalidRequest,
            GroupError::Storage(e) => return e.group_code(),
        }
        .code()
    }

    /// The error code of a group operation's outcome: 0 when it succeeded.
    pub fn code_of(outcome: &Result<(), GroupError>) -> i16 {
        outcome.as_ref().err().map_or(0, GroupError::code)
    }

    /// The error code of a JoinGroup or SyncGroup answer: 0 without a refusal.
    pub fn code_or_none(refusal: Option<&GroupError>) -> i16 {
        refusal.map_or(0, GroupError::code)
    }
}

impl CommitOutcome {
    /// OffsetCommit's error code per entry, in the request's order.
    pub fn codes(&self) -> Vec<i16> {
        let written = GroupError::code_of(&self.written);
        self.refused
            .iter()
            .map(|r| r.as_ref().map_or(written, GroupError::code))
            .collect()
    }
}

impl TopicError {
    /// As Kafka answers CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs and
    /// partition moves.
    pub fn code(&self) -> i16 {
        let code = match self {
            TopicError::Unknown { .. }
            | TopicError::UnknownPartition { .. }
            | TopicError::DeletedMeanwhile { .. } => ResponseError::UnknownTopicOrPartition,
            TopicError::Exists { .. } => ResponseError::TopicAlreadyExists,
            TopicError::InvalidName { .. } | TopicError::Internal { .. } => {
                ResponseError::InvalidTopicException
            }
            TopicError::PartitionCount { .. } | TopicError::PartitionGrowth { .. } => {
                ResponseError::InvalidPartitions
            }
            TopicError::ReplicationFactor { .. } => ResponseError::InvalidReplicationFactor,
            TopicError::InvalidAssignment(_) => ResponseError::InvalidReplicaAssignment,
            TopicError::MoveInProgress { .. } => ResponseError::ReassignmentInProgress,
            TopicError::InvalidConfig(_)
            | TopicError::CompactOnly { .. }
            | TopicError::AuditFixed { .. } => ResponseError::InvalidConfig,
            TopicError::AppendOnly { .. } => ResponseError::PolicyViolation,
            TopicError::BrokerConfigReadOnly | TopicError::UnalterableResource { .. } => {
                ResponseError::InvalidRequest
            }
            TopicError::NotYetApplied => ResponseError::RequestTimedOut,
        };
        code.code()
    }
}

impl ClusterError {
    /// As Kafka answers a request the controller did not carry out.
    pub fn code(&self) -> i16 {
        match self {
            ClusterError::ControllerTimeout { .. } => ResponseError::RequestTimedOut.code(),
            ClusterError::NoProducerIds | ClusterError::ProducerIdsExhausted => {
                ResponseError::UnknownServerError.code()
            }
            ClusterError::ClusterIdMismatch { .. } => ResponseError::InconsistentClusterId.code(),
            ClusterError::Refused(r) => r.code,
            ClusterError::Topic(e) => e.code(),
        }
    }
}

/// The outcome the controller records for a refused request: what every replica
/// answers its client with.
impl From<&ClusterError> for Refusal {
    fn from(e: &ClusterError) -> Self {
        Refusal {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl TxnError {
    /// The code a transaction API answers with at request version `version`; APIs
    /// older than `fenced_from` know PRODUCER_FENCED as INVALID_PRODUCER_EPOCH (as
    /// Kafka answers them).
    pub fn code_at(&self, version: i16, fenced_from: i16) -> i16 {
        let e = match self {
            TxnError::CoordinatorNotAvailable | TxnError::ProducerIds(_) => {
                ResponseError::CoordinatorNotAvailable
            }
            TxnError::NotCoordinator => ResponseError::NotCoordinator,
            TxnError::LoadInProgress => ResponseError::CoordinatorLoadInProgress,
            TxnError::InvalidId(_) | TxnError::AdminCommit => ResponseError::InvalidRequest,
            TxnError::InvalidTimeout { .. } => ResponseError::InvalidTransactionTimeout,
            TxnError::Concurrent => ResponseError::ConcurrentTransactions,
            TxnError::ProducerFenced if version < fenced_from => {
                ResponseError::InvalidProducerEpoch
            }
            TxnError::ProducerFenced => ResponseError::ProducerFenced,
            TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
            TxnError::InvalidTxnState { .. } | TxnError::NotInTransaction => {
                ResponseError::InvalidTxnState
            }
            TxnError::UnknownPartition { .. } => ResponseError::UnknownTopicOrPartition,
            TxnError::NotLeader { .. } => ResponseError::NotLeaderOrFollower,
            // Another broker did not answer or refused: the client retries.
            TxnError::Peer(_) => ResponseError::CoordinatorNotAvailable,
            // As Kafka's coordinator maps the failures of its own appends.
            TxnError::Storage(e) => match **e {
                PartitionError::NotLeader
                | PartitionError::Gone
                | PartitionError::Offline
                | PartitionError::AuditDiverged => ResponseError::NotCoordinator,
                PartitionError::Timeout(_) | PartitionError::NotEnoughReplicas { .. } => {
                    ResponseError::CoordinatorNotAvailable
                }
                _ => ResponseError::UnknownServerError,
            },
        };
        e.code()
    }

    /// The code a transactional produce gets when its coordinator does not confirm
    /// the transaction: retriable (NOT_ENOUGH_REPLICAS, as Kafka) when the
    /// coordinator cannot be asked, otherwise the refusal. Also what a coordinator
    /// answers another broker's verification with ([`TxnError::from_verify_code`]).
    pub fn produce_code(&self) -> i16 {
        match self {
            TxnError::CoordinatorNotAvailable
            | TxnError::NotCoordinator
            | TxnError::LoadInProgress
            | TxnError::Peer(_) => ResponseError::NotEnoughReplicas.code(),
            TxnError::ProducerFenced => ResponseError::InvalidProducerEpoch.code(),
            TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping.code(),
            _ => ResponseError::InvalidTxnState.code(),
        }
    }

    /// A coordinator's answer to a verification ([`TxnError::produce_code`]) as the
    /// refusal it stands for.
    pub fn from_verify_code(code: i16) -> TxnError {
        match ResponseError::try_from_code(code) {
            Some(ResponseError::InvalidProducerEpoch) => TxnError::ProducerFenced,
            Some(ResponseError::InvalidProducerIdMapping) => TxnError::InvalidProducerIdMapping,
            Some(ResponseError::InvalidTxnState) => TxnError::NotInTransaction,
            _ => TxnError::Peer(format!("the coordinator answered error {code}")),
        }
    }

    /// What WriteTxnMarkers answers for a partition whose marker was not written.
    pub fn marker_code(&self) -> i16 {
        match self {
            TxnError::NotLeader { .. } => ResponseError::NotLeaderOrFollower.code(),
            TxnError::UnknownPartition { .. } => ResponseError::UnknownTopicOrPartition.code(),
            TxnError::AdminCommit => ResponseError::InvalidRequest.code(),
            // An operator's abort that does not fit the partition's producer state.
            TxnError::Storage(e) if matches!(**e, PartitionError::Sequence(_)) => e.code(),
            _ => ResponseError::KafkaStorageError.code(),
        }
    }
}

/// The Kafka name of an error code, for metric labels.
pub fn error_name(code: i16) -> String {
    use kafka_protocol::error::ParseResponseErrorCode;
    match code.err() {
        None => "NONE".into(),
        Some(e) => format!("{e:?}"),
    }
}
