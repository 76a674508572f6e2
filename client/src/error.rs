//! The client's one error type, and the one place where Kafka error codes are mapped.
//!
//! Every fallible function of this crate returns [`Error`]. Variants say what failed and
//! where (broker address, API, topic-partition). [`Error::is_retriable`] tells callers
//! (and the producer's and consumer's own retry loops) whether the same request may
//! succeed later.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Kafka's `DUPLICATE_SEQUENCE_NUMBER`: the broker already has this idempotent batch.
pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
/// Kafka's `UNSUPPORTED_VERSION`.
pub const UNSUPPORTED_VERSION: i16 = 35;
/// Kafka's `OFFSET_OUT_OF_RANGE`.
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
/// Kafka's `UNKNOWN_TOPIC_OR_PARTITION`.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Kafka's `TOPIC_ALREADY_EXISTS`.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Kafka's `COORDINATOR_LOAD_IN_PROGRESS`: the coordinator is still loading the group.
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
/// Kafka's `COORDINATOR_NOT_AVAILABLE`.
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// Kafka's `NOT_COORDINATOR`: the group lives on another broker now.
pub const NOT_COORDINATOR: i16 = 16;
/// Kafka's `ILLEGAL_GENERATION`: the member's generation is over.
pub const ILLEGAL_GENERATION: i16 = 22;
/// Kafka's `INCONSISTENT_GROUP_PROTOCOL`.
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
/// Kafka's `UNKNOWN_MEMBER_ID`: the coordinator does not know the member (any more).
pub const UNKNOWN_MEMBER_ID: i16 = 25;
/// Kafka's `REBALANCE_IN_PROGRESS`: the member must rejoin.
pub const REBALANCE_IN_PROGRESS: i16 = 27;
/// Kafka's `NON_EMPTY_GROUP`: the group still has members.
pub const NON_EMPTY_GROUP: i16 = 68;
/// Kafka's `GROUP_ID_NOT_FOUND`.
pub const GROUP_ID_NOT_FOUND: i16 = 69;
/// Kafka's `MEMBER_ID_REQUIRED`: JoinGroup v4+ assigns an id the member must rejoin with.
pub const MEMBER_ID_REQUIRED: i16 = 79;
/// Kafka's `FENCED_INSTANCE_ID`: another member took this `group.instance.id`.
pub const FENCED_INSTANCE_ID: i16 = 82;
/// Kafka's `GROUP_SUBSCRIBED_TO_TOPIC`: OffsetDelete of a topic the group consumes.
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
/// Kafka's `CONCURRENT_TRANSACTIONS`: another operation on the transaction is finishing.
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
/// Kafka's `INVALID_PRODUCER_EPOCH`: a newer producer with the transactional id exists
/// (what older request versions answer instead of PRODUCER_FENCED).
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
/// Kafka's `PRODUCER_FENCED`: a newer producer with the transactional id exists.
pub const PRODUCER_FENCED: i16 = 90;

/// A Kafka error code from a response, with its protocol name and retriability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaCode(pub i16);

impl KafkaCode {
    /// Whether the protocol defines this error as retriable (the same request may
    /// succeed later, e.g. after a leader election). Unknown codes are not retriable.
    pub fn is_retriable(self) -> bool {
        ResponseError::try_from_code(self.0).is_some_and(|e| e.is_retriable())
    }

    /// Kafka's name for the code, as in `Errors.java` (`NOT_LEADER_OR_FOLLOWER`), or
    /// `UNKNOWN_CODE_<n>`.
    pub fn name(self) -> String {
        match ResponseError::try_from_code(self.0) {
            None => "NONE".to_string(),
            Some(ResponseError::Unknown(code)) => format!("UNKNOWN_CODE_{code}"),
            Some(e) => screaming_snake(&format!("{e}")),
        }
    }
}

impl fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// `UnknownTopicOrPartition` → `UNKNOWN_TOPIC_OR_PARTITION`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Everything that can go wrong in this crate.
///
/// Errors are `Clone` so that one failed batch can report to each of its records.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No TCP connection could be made (refused, unreachable, or too slow).
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The broker address (`host:port`).
        addr: String,
        /// What was wrong.
        reason: String,
    },

    /// TLS with the broker failed for a reason retrying does not fix: its certificate is
    /// not signed by a trusted CA or does not name the host, or it refused this client's
    /// certificate. The connection is closed.
    #[error("TLS with {addr} failed: {reason}")]
    Tls {
        /// The broker address (`host:port`).
        addr: String,
        /// What was wrong, and which setting may fix it.
        reason: String,
    },

    /// SASL authentication was refused (wrong user name or password, a mechanism the
    /// listener does not enable) or the broker could not prove it holds the user's
    /// SCRAM credential. The connection is closed.
    #[error("SASL {mechanism} authentication with {addr} failed: {reason}")]
    Authentication {
        /// The broker address (`host:port`).
        addr: String,
        /// The SASL mechanism (`SCRAM-SHA-512`).
        mechanism: &'static str,
        /// The broker's error message, or what the client found wrong.
        reason: String,
    },

    /// A client setting is unknown, malformed or inconsistent with another, or a file it
    /// names cannot be used. Nothing was sent.
    #[error("{setting}: {reason}")]
    Config {
        /// The setting's name (`ssl.ca.location`).
        setting: String,
        /// What was wrong.
        reason: String,
    },

    /// Reading or writing an established connection failed; the connection is closed and
    /// the request may or may not have reached the broker.
    #[error("I/O error talking to {addr}: {error}")]
    Io {
        /// The broker address (`host:port`).
        addr: String,
        /// The underlying I/O error (in the message, so not also a `source`).
        error: Arc<std::io::Error>,
    },

    /// No response within the request timeout; the connection is closed and the request
    /// may or may not have taken effect.
    #[error("{api:?} request to {addr} timed out after {timeout:?}")]
    Timeout {
        /// The broker address (`host:port`).
        addr: String,
        /// The API of the request.
        api: ApiKey,
        /// The bound that passed.
        timeout: Duration,
    },

    /// The broker announced a response frame larger than the configured limit, or a
    /// negative one; the connection is closed.
    #[error("response frame of {size_bytes} bytes from {addr} is outside 0..={limit_bytes}")]
    FrameSize {
        /// The broker address (`host:port`).
        addr: String,
        /// The size the frame announced.
        size_bytes: i64,
        /// The configured maximum.
        limit_bytes: usize,
    },

    /// A request could not be encoded (a field this version lacks, a size overflow).
    #[error("cannot encode {api:?} v{version}: {reason}")]
    Encode {
        /// The API of the request.
        api: ApiKey,
        /// The API version used.
        version: i16,
        /// What was wrong.
        reason: String,
    },

    /// A response did not decode as the version asked for, or answered another
    /// request; the connection is closed.
    #[error("bad {api:?} v{version} response from {addr}: {reason}")]
    Decode {
        /// The broker address (`host:port`).
        addr: String,
        /// The API of the request.
        api: ApiKey,
        /// The API version used.
        version: i16,
        /// What was wrong.
        reason: String,
    },

    /// The broker implements no version of `api` that this client speaks.
    #[error("broker {addr} supports no version of {api:?} in {client_min}..={client_max}")]
    UnsupportedApi {
        /// The broker address (`host:port`).
        addr: String,
        /// The API of the request.
        api: ApiKey,
        /// Lowest version this client speaks.
        client_min: i16,
        /// Highest version this client speaks.
        client_max: i16,
    },

    /// The broker answered with a Kafka error code.
    #[error("{context}: {code}{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        /// What was being done (`create topic "t"`, `produce to t-0`).
        context: String,
        /// The broker's error code.
        code: KafkaCode,
        /// The broker's own message, when it sent one.
        message: Option<String>,
    },

    /// A record batch in a fetch response is malformed (bad CRC, bad framing, a record
    /// count the batch cannot hold).
    #[error("corrupt record batch from {topic}-{partition} at offset {offset}: {reason}")]
    CorruptBatch {
        /// The topic.
        topic: String,
        /// The partition index.
        partition: i32,
        /// The batch's base offset.
        offset: i64,
        /// What was wrong.
        reason: String,
    },

    /// A batch of an audit topic failed its proof against a signed tree head
    /// ([`crate::audit`]): the history served is not the signed one.
    #[error("audit check of {topic}-{partition} refused offset {offset}: {reason}")]
    AuditRefused {
        /// The topic.
        topic: String,
        /// The partition index.
        partition: i32,
        /// The base offset of the batch refused.
        offset: i64,
        /// Why.
        reason: String,
    },

    /// The cluster metadata names no usable leader for the partition.
    #[error("no leader is known for {topic}-{partition}")]
    NoLeader {
        /// The topic.
        topic: String,
        /// The partition index.
        partition: i32,
    },

    /// The topic does not exist (or the broker does not say it does).
    #[error("unknown topic {topic:?}")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },

    /// The partition does not exist in the topic.
    #[error("topic {topic:?} has no partition {partition} ({partitions} partitions)")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition index.
        partition: i32,
        /// How many partitions the topic has.
        partitions: i32,
    },

    /// A caller-supplied value is out of range or inconsistent (a record larger than
    /// the request limit, idempotence without acks=all, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The producer's background task has stopped; nothing more can be sent.
    #[error("the producer is closed")]
    ProducerClosed,

    /// A transactional producer's batch could not be written and its outcome cannot be
    /// known or repaired: the transaction must be aborted.
    #[error("a batch of the transaction on {partition} failed; abort the transaction")]
    TransactionAborted {
        /// `topic-partition`.
        partition: String,
    },

    /// A transactional producer was used out of order (send outside a transaction,
    /// commit after a failed send, …) or can no longer be used (fenced by a newer
    /// instance).
    #[error("transactional id {transactional_id:?}: {reason}")]
    Transaction {
        /// The transactional id.
        transactional_id: String,
        /// What was wrong.
        reason: String,
    },

    /// No broker named a coordinator for the group (or transactional id) within the
    /// bound (the broker keeps answering COORDINATOR_NOT_AVAILABLE, or none is
    /// reachable).
    #[error("no coordinator found for {key} within {timeout:?}: {last_error}")]
    NoCoordinator {
        /// What was looked up: `group "g"` or `transactional id "t"`.
        key: String,
        /// The bound that passed.
        timeout: Duration,
        /// The last answer or failure.
        last_error: String,
    },

    /// The group protocol went wrong in a way retrying does not fix: undecodable
    /// subscription or assignment bytes, an assignor the client does not know, an
    /// assignment naming partitions that do not exist.
    #[error("group {group:?}: {reason}")]
    Group {
        /// The group id.
        group: String,
        /// What was wrong.
        reason: String,
    },

    /// Another consumer joined with this consumer's `group.instance.id`
    /// (FENCED_INSTANCE_ID); this consumer must stop.
    #[error("group {group:?}: static member {instance_id:?} was fenced by a newer member with the same group.instance.id")]
    Fenced {
        /// The group id.
        group: String,
        /// The `group.instance.id`.
        instance_id: String,
    },

    /// An offset commit was refused because the group rebalanced (or is rebalancing)
    /// and this member's generation is over; the partitions may belong to another
    /// member now, and records since the last commit may be read again there.
    #[error("group {group:?}: commit failed: {reason}")]
    CommitFailed {
        /// The group id.
        group: String,
        /// The broker's answer.
        reason: String,
    },

    /// A partition has no committed offset and `auto.offset.reset` is `none`.
    #[error("group {group:?} has no committed offset for {topic}-{partition} and auto.offset.reset is none")]
    NoOffset {
        /// The group id.
        group: String,
        /// The topic.
        topic: String,
        /// The partition index.
        partition: i32,
    },

    /// A record was not acknowledged within the producer's delivery timeout.
    #[error("record to {topic}-{partition} not acknowledged within {timeout:?}: {last_error}")]
    DeliveryTimeout {
        /// The topic.
        topic: String,
        /// The partition index.
        partition: i32,
        /// The bound that passed.
        timeout: Duration,
        /// The last retriable error seen, or why nothing was sent.
        last_error: String,
    },
}

impl Error {
    /// Whether retrying the same operation (after a metadata refresh and a backoff) may
    /// succeed: connection failures, timeouts and retriable Kafka codes.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Io { .. } | Error::Timeout { .. } => true,
            Error::NoLeader { .. } => true,
            Error::Kafka { code, .. } => code.is_retriable(),
            _ => false,
        }
    }

    /// Whether the failure means the connection it happened on is unusable.
    pub fn breaks_connection(&self) -> bool {
        matches!(
            self,
            Error::Io { .. }
                | Error::Timeout { .. }
                | Error::FrameSize { .. }
                | Error::Decode { .. }
                | Error::Connect { .. }
                | Error::Tls { .. }
                | Error::Authentication { .. }
        )
    }

    /// An [`Error::Io`] for `addr`.
    pub fn io(addr: &str, error: std::io::Error) -> Error {
        Error::Io {
            addr: addr.to_string(),
            error: Arc::new(error),
        }
    }

    /// The Kafka error code, if the broker answered with one.
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            Error::Kafka { code, .. } => Some(code.0),
            _ => None,
        }
    }

    /// `Ok(())` for code 0, else [`Error::Kafka`] with `context` and the broker's message.
    pub fn check(code: i16, context: impl FnOnce() -> String, message: Option<&str>) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        Err(Error::Kafka {
            context: context(),
            code: KafkaCode(code),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_kafka_names() {
        assert_eq!(KafkaCode(6).name(), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(KafkaCode(3).name(), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(
            KafkaCode(DUPLICATE_SEQUENCE_NUMBER).name(),
            "DUPLICATE_SEQUENCE_NUMBER"
        );
        assert_eq!(KafkaCode(UNSUPPORTED_VERSION).name(), "UNSUPPORTED_VERSION");
        assert_eq!(
            KafkaCode(TOPIC_ALREADY_EXISTS).name(),
            "TOPIC_ALREADY_EXISTS"
        );
        assert_eq!(KafkaCode(-1).name(), "UNKNOWN_SERVER_ERROR");
        assert_eq!(KafkaCode(9999).name(), "UNKNOWN_CODE_9999");
        assert_eq!(KafkaCode(0).name(), "NONE");
    }

    #[test]
    fn retriability_follows_the_protocol() {
        assert!(KafkaCode(6).is_retriable()); // NOT_LEADER_OR_FOLLOWER
        assert!(KafkaCode(7).is_retriable()); // REQUEST_TIMED_OUT
        assert!(!KafkaCode(TOPIC_ALREADY_EXISTS).is_retriable());
        assert!(!KafkaCode(9999).is_retriable());
        let e = Error::check(6, || "produce to t-0".into(), Some("")).unwrap_err();
        assert!(e.is_retriable());
        assert_eq!(e.kafka_code(), Some(6));
        assert_eq!(e.to_string(), "produce to t-0: NOT_LEADER_OR_FOLLOWER (6)");
        let e = Error::check(36, || "create topic \"t\"".into(), Some("exists")).unwrap_err();
        assert!(!e.is_retriable());
        assert_eq!(
            e.to_string(),
            "create topic \"t\": TOPIC_ALREADY_EXISTS (36): exists"
        );
        assert!(Error::check(0, || unreachable!(), None).is_ok());
        let timeout = Error::Timeout {
            addr: "a".into(),
            api: ApiKey::Fetch,
            timeout: Duration::from_secs(1),
        };
        assert!(timeout.is_retriable() && timeout.breaks_connection());
    }
}
