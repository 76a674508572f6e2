//! OffsetCommit: stores a group's consumed positions in `__consumer_offsets`; answered
//! once they are durable. A member commits with its generation and member id; a
//! consumer outside any group (or an admin tool) commits with generation -1 and an empty
//! member id, which is accepted only while the group has no members.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::Reply;
use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::group::{CommitEntry, CommitOutcome, Committer};

pub fn handle(ctx: Arc<RequestContext>, r: OffsetCommitRequest) -> Reply {
    let mut entries = Vec::new();
    let mut shape = Vec::with_capacity(r.topics.len());
    let checks = ctx.checks();
    let group_id = r.group_id.to_string();
    let group_allowed = checks.group(Operation::Read, &group_id);
    for t in r.topics {
        // Partitions of a topic the caller may not read are answered, not committed.
        let refused = match &group_allowed {
            Err(e) => Some(e.code()),
            Ok(()) if !checks.allows(Operation::Read, ResourceType::Topic, &t.name) => {
                Some(ResponseError::TopicAuthorizationFailed.code())
            }
            Ok(()) => None,
        };
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            partitions.push((p.partition_index, refused));
            if refused.is_some() {
                continue;
            }
            entries.push(CommitEntry {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.map(|m| m.to_string()),
            });
        }
        shape.push((t.name, partitions));
    }
    let who = Committer {
        member_id: r.member_id.to_string(),
        instance_id: r.group_instance_id.map(|i| i.to_string()),
        generation: r.generation_id_or_member_epoch,
        producer: None,
    };
    Reply::Later(Box::pin(async move {
        let b = &ctx.broker;
        let outcome = if entries.is_empty() && !shape.is_empty() {
            // Every partition was refused above: nothing to commit.
            Ok(CommitOutcome {
                refused: Vec::new(),
                written: Ok(()),
            })
        } else {
            b.groups.commit(&group_id, &who, &entries, &b.topics).await
        };
        let codes = match outcome {
            Ok(o) => o.codes(),
            Err(e) => vec![e.code(); entries.len()],
        };
        let mut codes = codes.into_iter();
        let topics = shape
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(index, refused)| {
                        let code = refused.unwrap_or_else(|| codes.next().unwrap_or(0));
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(index)
                            .with_error_code(ctx.code(code))
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics).into()
    }))
}
