//! Why the controller did not make a change. Kafka error codes are chosen for these in
//! one place, `crate::kafka_codes`.

use std::time::Duration;

use super::metadata::Refusal;
use crate::topics::TopicError;

/// A change submitted to the controller that did not happen, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// No answer within `timeout`: the controller has no quorum, or is far behind.
    #[error("the cluster controller did not apply the change within {timeout:?} (no quorum?)")]
    ControllerTimeout { timeout: Duration },
    /// The block was granted, yet this node finds none recorded for it.
    #[error("the controller granted no producer ids")]
    NoProducerIds,
    /// Every producer id was handed out.
    #[error("producer ids are exhausted")]
    ProducerIdsExhausted,
    /// A single broker's directory names another cluster than the controller's.
    #[error("the data directory belongs to cluster {ours}, the controller's is {theirs}")]
    ClusterIdMismatch { ours: String, theirs: String },
    /// The controller applied the request and refused it (the outcome every replica
    /// recorded).
    #[error("{}", .0.message)]
    Refused(Refusal),
    /// A topic change this node refused before submitting it (or whose outcome it
    /// could not see applied).
    #[error(transparent)]
    Topic(#[from] TopicError),
}
