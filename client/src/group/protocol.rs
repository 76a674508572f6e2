//! The consumer protocol's embedded bytes: a member's subscription (JoinGroup protocol
//! metadata) and its assignment (SyncGroup), each a big-endian `i16` version followed
//! by `ConsumerProtocolSubscription` / `ConsumerProtocolAssignment` as the
//! `kafka-protocol` codec encodes them.
//!
//! Readers are forward compatible, as Kafka's `ConsumerProtocol` is: bytes written at a
//! version newer than this client knows decode at the newest version it knows (newer
//! versions only append fields). Bytes from the broker are untrusted: anything that does
//! not decode is an [`Error::Group`], never a panic.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::error::{Error, Result};
use crate::topic_partition::TopicPartition;

/// The protocol type of consumer groups (JoinGroup `protocol_type`).
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";
/// The subscription version written: 3 (owned partitions, generation, rack).
pub const SUBSCRIPTION_VERSION: i16 = 3;
/// The assignment version written: 3 (the layout has not changed since 0).
pub const ASSIGNMENT_VERSION: i16 = 3;
/// The newest version of either structure this codec knows.
const NEWEST_KNOWN_VERSION: i16 = 3;

/// What a member told the group in JoinGroup: the topics it wants, and (version 1+)
/// what it owned in the generation it last joined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Topics the member subscribes to.
    pub topics: Vec<String>,
    /// Partitions the member owned in `generation` (empty for eager members that
    /// revoked everything, and for version 0 writers).
    pub owned_partitions: Vec<TopicPartition>,
    /// The generation `owned_partitions` belong to; -1 when unknown.
    pub generation: i32,
    /// Opaque bytes for the assignor.
    pub user_data: Option<Bytes>,
}

/// Encodes `subscription` as JoinGroup protocol metadata.
pub fn encode_subscription(subscription: &Subscription) -> Result<Bytes> {
    let message = ConsumerProtocolSubscription::default()
        .with_topics(
            subscription
                .topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_user_data(subscription.user_data.clone())
        .with_owned_partitions(
            group_by_topic(&subscription.owned_partitions)
                .into_iter()
                .map(|(topic, partitions)| {
                    OwnedTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_generation_id(subscription.generation);
    encode_versioned(&message, SUBSCRIPTION_VERSION, "subscription")
}

/// Decodes a member's JoinGroup protocol metadata, of any version.
pub fn decode_subscription(group: &str, bytes: &Bytes) -> Result<Subscription> {
    let message: ConsumerProtocolSubscription = decode_versioned(group, bytes, "subscription")?;
    Ok(Subscription {
        topics: message.topics.iter().map(|t| t.to_string()).collect(),
        owned_partitions: message
            .owned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|&p| TopicPartition::new(t.topic.0.to_string(), p))
            })
            .collect(),
        generation: message.generation_id,
        user_data: message.user_data,
    })
}

/// Encodes the partitions assigned to one member (SyncGroup assignment).
pub fn encode_assignment(partitions: &[TopicPartition]) -> Result<Bytes> {
    let message = ConsumerProtocolAssignment::default().with_assigned_partitions(
        group_by_topic(partitions)
            .into_iter()
            .map(|(topic, partitions)| {
                AssignedTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(partitions)
            })
            .collect(),
    );
    encode_versioned(&message, ASSIGNMENT_VERSION, "assignment")
}

/// Decodes a SyncGroup (or DescribeGroups) assignment of any version; empty bytes are
/// the empty assignment, as Kafka's coordinator sends a member the leader left out.
/// The result is sorted and free of duplicates.
pub fn decode_assignment(group: &str, bytes: &Bytes) -> Result<Vec<TopicPartition>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let message: ConsumerProtocolAssignment = decode_versioned(group, bytes, "assignment")?;
    let mut partitions: Vec<TopicPartition> = message
        .assigned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|&p| TopicPartition::new(t.topic.0.to_string(), p))
        })
        .collect();
    partitions.sort();
    partitions.dedup();
    Ok(partitions)
}

fn encode_versioned<M: Encodable>(message: &M, version: i16, what: &str) -> Result<Bytes> {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(version);
    message
        .encode(&mut buf, version)
        .map_err(|e| Error::Group {
            group: String::new(),
            reason: format!("cannot encode the consumer {what}: {e}"),
        })?;
    Ok(buf.freeze())
}

fn decode_versioned<M: Decodable>(group: &str, bytes: &Bytes, what: &str) -> Result<M> {
    let bad = |reason: String| Error::Group {
        group: group.to_string(),
        reason: format!("undecodable consumer {what}: {reason}"),
    };
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Err(bad(format!("{} bytes, no version", buf.remaining())));
    }
    let version = buf.get_i16();
    if version < 0 {
        return Err(bad(format!("negative version {version}")));
    }
    M::decode(&mut buf, version.min(NEWEST_KNOWN_VERSION)).map_err(|e| bad(e.to_string()))
}

/// Partitions by topic, each topic's partitions sorted.
fn group_by_topic(partitions: &[TopicPartition]) -> BTreeMap<String, Vec<i32>> {
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic
            .entry(tp.topic.clone())
            .or_default()
            .push(tp.partition);
    }
    for partitions in by_topic.values_mut() {
        partitions.sort_unstable();
        partitions.dedup();
    }
    by_topic
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_round_trip() {
        let s = Subscription {
            topics: vec!["a".into(), "b".into()],
            owned_partitions: vec![TopicPartition::new("a", 1), TopicPartition::new("a", 0)],
            generation: 7,
            user_data: None,
        };
        let bytes = encode_subscription(&s).unwrap();
        assert_eq!(&bytes[..2], &SUBSCRIPTION_VERSION.to_be_bytes());
        let back = decode_subscription("g", &bytes).unwrap();
        assert_eq!(back.topics, s.topics);
        assert_eq!(
            back.owned_partitions,
            vec![TopicPartition::new("a", 0), TopicPartition::new("a", 1)]
        );
        assert_eq!(back.generation, 7);
    }

    #[test]
    fn version_0_subscriptions_and_newer_versions_decode() {
        // A version 0 writer (old librdkafka): topics and user data only.
        let v0 = ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("t")]);
        let bytes = encode_versioned(&v0, 0, "subscription").unwrap();
        let s = decode_subscription("g", &bytes).unwrap();
        assert_eq!(s.topics, vec!["t".to_string()]);
        assert_eq!(s.generation, -1);
        // A future version 9: decoded as the newest known, trailing fields ignored.
        let mut future = BytesMut::new();
        future.put_i16(9);
        future.extend_from_slice(&encode_subscription(&s).unwrap()[2..]);
        future.extend_from_slice(b"future fields");
        let s9 = decode_subscription("g", &future.freeze()).unwrap();
        assert_eq!(s9.topics, vec!["t".to_string()]);
    }

    #[test]
    fn assignments_round_trip_and_empty_is_nothing() {
        let parts = vec![
            TopicPartition::new("b", 0),
            TopicPartition::new("a", 2),
            TopicPartition::new("a", 0),
        ];
        let bytes = encode_assignment(&parts).unwrap();
        let back = decode_assignment("g", &bytes).unwrap();
        assert_eq!(
            back,
            vec![
                TopicPartition::new("a", 0),
                TopicPartition::new("a", 2),
                TopicPartition::new("b", 0)
            ]
        );
        assert!(decode_assignment("g", &Bytes::new()).unwrap().is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for junk in [
            &b"\x00"[..],
            b"\xff\xff",
            // Five topics announced, half of one present.
            b"\x00\x01\x00\x00\x00\x05\x00\x03ab",
            b"\x00\x00\x00\x00\x00\x05ab",
        ] {
            let bytes = Bytes::copy_from_slice(junk);
            assert!(matches!(
                decode_subscription("g", &bytes),
                Err(Error::Group { .. })
            ));
            assert!(matches!(
                decode_assignment("g", &bytes),
                Err(Error::Group { .. })
            ));
        }
    }
}
