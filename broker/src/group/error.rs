//! Why the group coordinator refuses a request, before any group state changes; the
//! Kafka code each becomes is in `crate::kafka_codes`.

use std::sync::Arc;

use crate::partition::PartitionError;

/// A refusal of a group request: who coordinates the group, who the caller is, or what
/// state the group is in; or the failure to write the group's records.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupError {
    /// The group id is empty (or otherwise unusable).
    #[error("invalid group id {group:?}")]
    InvalidGroupId { group: String },
    /// No such group (never created, or deleted).
    #[error("no group {group}")]
    GroupNotFound { group: String },
    /// DeleteGroups or OffsetDelete on a group whose members are still active.
    #[error("group {group} still has members")]
    NonEmptyGroup { group: String },
    /// OffsetDelete of a partition of a topic the group's members subscribe to.
    #[error("the group subscribes to topic {topic}")]
    SubscribedToTopic { topic: String },
    /// Writing the group's records to `__consumer_offsets` failed.
    #[error("writing the group's records: {0}")]
    Storage(#[source] Arc<PartitionError>),
    /// `__consumer_offsets` does not exist yet, or the group is being deleted.
    #[error("the group coordinator is not available")]
    CoordinatorNotAvailable,
    /// Another broker leads the group's `__consumer_offsets` partition.
    #[error("this broker does not coordinate the group")]
    NotCoordinator,
    /// This broker leads the partition but has not loaded its groups yet.
    #[error("the group coordinator is still loading the group's partition")]
    LoadInProgress,
    /// A newer member with the same `group.instance.id` took this one's place.
    #[error("member {member} was fenced by a newer member with instance id {instance}")]
    FencedInstance { member: String, instance: String },
    #[error("unknown member {member}")]
    UnknownMember { member: String },
    #[error("generation {given} is not the group's generation {current}")]
    IllegalGeneration { given: i32, current: i32 },
    /// Offsets are not taken while the members wait for their new assignment; a member
    /// waiting for its assignment is told to rejoin when a new rebalance starts.
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    /// A JoinGroup v4+ without a member id: the answer carries the id to join with.
    #[error("join again with member id {member}")]
    MemberIdRequired { member: String },
    /// The caller may not use the group (by the ACLs).
    #[error("not authorized to use group {group}")]
    Unauthorized { group: String },
    /// The group holds `group.max.size` members.
    #[error("the group is full ({max} members)")]
    GroupFull { max: usize },
    #[error("session timeout {given} ms is outside {min}..={max} ms")]
    InvalidSessionTimeout { given: i32, min: i32, max: i32 },
    /// A member's protocols share none with the group's, or SyncGroup names another.
    #[error("the member's protocol type or names do not match the group's")]
    InconsistentProtocol,
    /// A member, instance or protocol name longer than an int16-length string holds.
    #[error("a member, instance or protocol name is over {max} bytes")]
    IdTooLong { max: usize },
    /// An offset committed for a partition that does not exist.
    #[error("no partition {topic}/{partition}")]
    UnknownTopicOrPartition { topic: String, partition: i32 },
    /// Commit metadata over `offset.metadata.max.bytes`.
    #[error("commit metadata for {topic}/{partition} is {bytes} bytes, over {max}")]
    OffsetMetadataTooLarge {
        topic: String,
        partition: i32,
        bytes: usize,
        max: usize,
    },
}

impl From<PartitionError> for GroupError {
    fn from(e: PartitionError) -> Self {
        GroupError::Storage(Arc::new(e))
    }
}
