//! Committed offsets: building OffsetCommit and OffsetFetch requests for the version
//! the coordinator speaks, and reading their answers, for members and for admins.
//!
//! A member commits with its generation and member id (the coordinator refuses a
//! member whose generation is over); an admin commits with generation -1 and an empty
//! member id, which coordinators accept only while the group has no members.
//! A committed offset is the offset of the *next* record to read.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::error::{
    Error, KafkaCode, Result, FENCED_INSTANCE_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS,
    UNKNOWN_MEMBER_ID,
};
use crate::group::membership::NO_GENERATION;
use crate::topic_partition::TopicPartition;

/// Who commits: a member of a generation, or an admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committer<'a> {
    /// The generation, or -1 for an admin commit.
    pub generation: i32,
    /// The member id, or "" for an admin commit.
    pub member_id: &'a str,
    /// The static member's `group.instance.id`.
    pub instance_id: Option<&'a str>,
}

impl Committer<'_> {
    /// An admin commit (no generation, no member).
    pub const ADMIN: Committer<'static> = Committer {
        generation: NO_GENERATION,
        member_id: "",
        instance_id: None,
    };
}

/// An OffsetCommit request at `version` committing `offsets` for `group`.
pub fn commit_request(
    version: i16,
    group: &str,
    committer: Committer<'_>,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> OffsetCommitRequest {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (tp, &offset) in offsets {
        topics.entry(&tp.topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(offset),
        );
    }
    OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(committer.generation)
        .with_member_id(StrBytes::from_string(committer.member_id.to_string()))
        // v7+ carries the static member's id; earlier versions cannot.
        .with_group_instance_id(
            committer
                .instance_id
                .filter(|_| version >= 7)
                .map(|i| StrBytes::from_string(i.to_string())),
        )
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// Checks every partition of an OffsetCommit answer. A generation that is over
/// (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS) is
/// [`Error::CommitFailed`]; FENCED_INSTANCE_ID is [`Error::Fenced`]; other codes are
/// [`Error::Kafka`] naming the partition. A partition the answer leaves out failed.
pub fn check_commit_response(
    group: &str,
    instance_id: Option<&str>,
    offsets: &BTreeMap<TopicPartition, i64>,
    response: &OffsetCommitResponse,
) -> Result<()> {
    let mut answered = 0usize;
    for topic in &response.topics {
        for p in &topic.partitions {
            let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
            if !offsets.contains_key(&tp) {
                continue;
            }
            answered += 1;
            match p.error_code {
                0 => {}
                code @ (ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID | REBALANCE_IN_PROGRESS) => {
                    return Err(Error::CommitFailed {
                        group: group.to_string(),
                        reason: format!(
                            "{} for {tp}: the group rebalanced; the partition may belong to another member now",
                            KafkaCode(code)
                        ),
                    })
                }
                FENCED_INSTANCE_ID => {
                    return Err(Error::Fenced {
                        group: group.to_string(),
                        instance_id: instance_id.unwrap_or_default().to_string(),
                    })
                }
                code => {
                    return Err(Error::Kafka {
                        context: format!("commit offset {} of {tp} for group {group:?}", offsets[&tp]),
                        code: KafkaCode(code),
                        message: None,
                    })
                }
            }
        }
    }
    if answered < offsets.len() {
        return Err(Error::Group {
            group: group.to_string(),
            reason: format!(
                "OffsetCommit answered {answered} of {} partitions",
                offsets.len()
            ),
        });
    }
    Ok(())
}

/// An OffsetFetch request at `version` for `group`: the given partitions, or every
/// partition the group has offsets for when `partitions` is `None` (v2+).
pub fn fetch_request(
    version: i16,
    group: &str,
    partitions: Option<&[TopicPartition]>,
) -> Result<OffsetFetchRequest> {
    let by_topic = partitions.map(|ps| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in ps {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        by_topic
    });
    if version >= 8 {
        let topics = by_topic.map(|t| {
            t.into_iter()
                .map(|(topic, partition_indexes)| {
                    OffsetFetchRequestTopics::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partition_indexes(partition_indexes)
                })
                .collect()
        });
        return Ok(OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group))
                .with_topics(topics),
        ]));
    }
    if by_topic.is_none() && version < 2 {
        return Err(Error::InvalidArgument(format!(
            "OffsetFetch v{version} cannot ask for all of group {group:?}'s offsets"
        )));
    }
    let topics = by_topic.map(|t| {
        t.into_iter()
            .map(|(topic, partition_indexes)| {
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partition_indexes(partition_indexes)
            })
            .collect()
    });
    Ok(OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(topics))
}

/// The group-level error code of an OffsetFetch answer (0 when none), either layout.
pub fn fetch_error_code(response: &OffsetFetchResponse) -> i16 {
    match response.groups.first() {
        Some(g) => g.error_code,
        None => response.error_code,
    }
}

/// The committed offsets in an OffsetFetch answer (either layout); partitions without
/// a committed offset (-1) are left out. Any error code is an [`Error::Kafka`].
pub fn parse_fetch_response(
    group: &str,
    response: &OffsetFetchResponse,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let context = || format!("fetch committed offsets of group {group:?}");
    Error::check(fetch_error_code(response), context, None)?;
    let mut offsets = BTreeMap::new();
    let mut add = |topic: &TopicName, partition: i32, offset: i64, code: i16| -> Result<()> {
        let tp = TopicPartition::new(topic.0.to_string(), partition);
        Error::check(
            code,
            || format!("fetch committed offset of {tp} for group {group:?}"),
            None,
        )?;
        if offset >= 0 {
            offsets.insert(tp, offset);
        }
        Ok(())
    };
    if let Some(g) = response.groups.first() {
        for t in &g.topics {
            for p in &t.partitions {
                add(&t.name, p.partition_index, p.committed_offset, p.error_code)?;
            }
        }
    } else {
        for t in &response.topics {
            for p in &t.partitions {
                add(&t.name, p.partition_index, p.committed_offset, p.error_code)?;
            }
        }
    }
    Ok(offsets)
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::offset_commit_response::{
        OffsetCommitResponsePartition, OffsetCommitResponseTopic,
    };
    use kafka_protocol::messages::offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
        OffsetFetchResponseTopic, OffsetFetchResponseTopics,
    };
    use kafka_protocol::protocol::Encodable;

    fn offsets() -> BTreeMap<TopicPartition, i64> {
        [
            (TopicPartition::new("a", 0), 5),
            (TopicPartition::new("a", 1), 7),
            (TopicPartition::new("b", 0), 1),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn commit_requests_encode_at_every_version() {
        let member = Committer {
            generation: 3,
            member_id: "m",
            instance_id: Some("i"),
        };
        for version in 2..=8 {
            let r = commit_request(version, "g", member, &offsets());
            assert_eq!(r.topics.len(), 2);
            assert_eq!(r.group_instance_id.is_some(), version >= 7);
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, version).unwrap();
        }
        let admin = commit_request(8, "g", Committer::ADMIN, &offsets());
        assert_eq!(admin.generation_id_or_member_epoch, -1);
        assert_eq!(admin.member_id.as_str(), "");
    }

    fn commit_response(codes: &[(&str, i32, i16)]) -> OffsetCommitResponse {
        let mut topics: BTreeMap<&str, Vec<OffsetCommitResponsePartition>> = BTreeMap::new();
        for &(t, p, code) in codes {
            topics.entry(t).or_default().push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p)
                    .with_error_code(code),
            );
        }
        OffsetCommitResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(ps)
                })
                .collect(),
        )
    }

    #[test]
    fn commit_answers_are_checked_per_partition() {
        let ok = commit_response(&[("a", 0, 0), ("a", 1, 0), ("b", 0, 0)]);
        check_commit_response("g", None, &offsets(), &ok).unwrap();
        let stale = commit_response(&[("a", 0, 0), ("a", 1, ILLEGAL_GENERATION), ("b", 0, 0)]);
        assert!(matches!(
            check_commit_response("g", None, &offsets(), &stale),
            Err(Error::CommitFailed { .. })
        ));
        let fenced = commit_response(&[("a", 0, FENCED_INSTANCE_ID)]);
        assert!(matches!(
            check_commit_response("g", Some("i"), &offsets(), &fenced),
            Err(Error::Fenced { .. })
        ));
        let missing = commit_response(&[("a", 0, 0)]);
        assert!(matches!(
            check_commit_response("g", None, &offsets(), &missing),
            Err(Error::Group { .. })
        ));
        let other = commit_response(&[("a", 0, 0), ("a", 1, 0), ("b", 0, 3)]);
        let e = check_commit_response("g", None, &offsets(), &other).unwrap_err();
        assert!(e.to_string().contains("b-0"), "{e}");
    }

    #[test]
    fn fetch_requests_use_the_right_layout() {
        let ps = vec![TopicPartition::new("a", 0), TopicPartition::new("a", 2)];
        for version in 1..=8 {
            let r = fetch_request(version, "g", Some(&ps)).unwrap();
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, version).unwrap();
            assert_eq!(r.groups.len(), usize::from(version >= 8));
            if version >= 2 {
                let all = fetch_request(version, "g", None).unwrap();
                all.encode(&mut bytes::BytesMut::new(), version).unwrap();
            }
        }
        assert!(fetch_request(1, "g", None).is_err());
    }

    #[test]
    fn fetch_answers_in_both_layouts() {
        let old =
            OffsetFetchResponse::default().with_topics(vec![OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("a")))
                .with_partitions(vec![
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(5),
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(1)
                        .with_committed_offset(-1),
                ])]);
        let got = parse_fetch_response("g", &old).unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec![(TopicPartition::new("a", 0), 5)]
        );
        let new =
            OffsetFetchResponse::default().with_groups(vec![OffsetFetchResponseGroup::default()
                .with_group_id(group_id("g"))
                .with_topics(vec![OffsetFetchResponseTopics::default()
                    .with_name(TopicName(StrBytes::from_static_str("b")))
                    .with_partitions(vec![OffsetFetchResponsePartitions::default()
                        .with_partition_index(3)
                        .with_committed_offset(9)])])]);
        let got = parse_fetch_response("g", &new).unwrap();
        assert_eq!(got[&TopicPartition::new("b", 3)], 9);
        let failed =
            OffsetFetchResponse::default()
                .with_groups(vec![OffsetFetchResponseGroup::default()
                    .with_error_code(crate::error::NOT_COORDINATOR)]);
        assert_eq!(fetch_error_code(&failed), crate::error::NOT_COORDINATOR);
        assert!(parse_fetch_response("g", &failed).is_err());
    }
}
