//! Why a topic operation (create, delete, grow, alter) was refused. Kafka error codes
//! are chosen for these in one place, `crate::kafka_codes`.

/// A topic operation that did not happen, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic {name:?} does not exist")]
    Unknown { name: String },
    #[error("{topic}/{partition} does not exist")]
    UnknownPartition { topic: String, partition: i32 },
    /// Created, then deleted before this broker saw it.
    #[error("topic {name:?} was deleted meanwhile")]
    DeletedMeanwhile { name: String },
    #[error("topic {name:?} already exists")]
    Exists { name: String },
    /// Kafka's naming rule, broken as `why` says.
    #[error("invalid topic name {name:?}: {why}")]
    InvalidName { name: String, why: &'static str },
    /// Clients may not delete, grow or produce to a topic the broker writes itself.
    #[error("{name} is an internal topic")]
    Internal { name: String },
    #[error("partitions must be 1..={max}, got {asked}")]
    PartitionCount { asked: i32, max: i32 },
    #[error(
        "topic {name:?} has {have} partitions; the new count must be more, at most {max}, \
         got {asked}"
    )]
    PartitionGrowth {
        name: String,
        have: i32,
        asked: i32,
        max: i32,
    },
    #[error("replication factor {asked} with {brokers} brokers registered")]
    ReplicationFactor { asked: i16, brokers: usize },
    /// A partition move's new replica list is unusable, as the text says.
    #[error("{0}")]
    InvalidAssignment(String),
    #[error("{topic}/{partition} is already moving to {target:?}")]
    MoveInProgress {
        topic: String,
        partition: i32,
        target: Vec<u64>,
    },
    /// A config key or value is refused, as the text says.
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{name} must stay cleanup.policy=compact: its latest records are the groups' state")]
    CompactOnly { name: String },
    /// An audit topic's batches cannot be removed (`audit.enabled`).
    #[error("{name} is an audit topic (audit.enabled=true): its records cannot be {action}")]
    AppendOnly { name: String, action: &'static str },
    /// `audit.enabled` is set at creation only.
    #[error("{name}: audit.enabled is set when a topic is created and never changes")]
    AuditFixed { name: String },
    #[error("broker settings are read-only: set them in the config file or flags and restart")]
    BrokerConfigReadOnly,
    #[error("resource type {kind} cannot be altered")]
    UnalterableResource { kind: i8 },
    /// The controller applied the change; this broker has not caught up with it yet.
    #[error("the change was applied by the controller but not yet on this broker")]
    NotYetApplied,
}

impl From<crate::config::ConfigValueError> for TopicError {
    fn from(e: crate::config::ConfigValueError) -> Self {
        TopicError::InvalidConfig(e.to_string())
    }
}
