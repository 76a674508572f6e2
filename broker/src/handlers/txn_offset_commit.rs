//! TxnOffsetCommit (v0–3): a transactional producer commits a group's offsets inside
//! its transaction (consume-transform-produce). Needs WRITE on the transactional id,
//! READ on the group and on each topic. The producer's transaction must hold the
//! group's offsets partition (AddOffsetsToTxn first); the offsets are written to it at
//! once and become the group's only when the transaction commits. From v3 the member
//! (generation, member id, instance id) is checked as OffsetCommit checks it (KIP-447),
//! so a fenced instance cannot commit; without them (older clients) it is not.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::group::{CommitEntry, Committer};
use crate::topics::OFFSETS_TOPIC;

/// The first version that knows PRODUCER_FENCED.
const FENCED_FROM: i16 = 3;

pub async fn handle(
    ctx: &RequestContext,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let checks = ctx.checks();
    let group_id = request.group_id.to_string();
    let id = request.transactional_id.as_str();
    let refusal = if !checks.allows(Operation::Write, ResourceType::TransactionalId, id) {
        Some(ResponseError::TransactionalIdAuthorizationFailed.code())
    } else if let Err(e) = checks.group(Operation::Read, &group_id) {
        Some(e.code())
    } else {
        verify(ctx, &request, &group_id).await.err()
    };
    let mut entries = Vec::new();
    let mut codes: Vec<Option<i16>> = Vec::new();
    for t in &request.topics {
        let readable = checks.allows(Operation::Read, ResourceType::Topic, &t.name);
        for p in &t.partitions {
            let refused = refusal
                .or_else(|| (!readable).then(|| ResponseError::TopicAuthorizationFailed.code()));
            codes.push(refused);
            if refused.is_none() {
                entries.push(CommitEntry {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                });
            }
        }
    }
    let written = if entries.is_empty() {
        Vec::new()
    } else {
        let who = Committer {
            member_id: request.member_id.to_string(),
            instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
            generation: request.generation_id,
            producer: Some((request.producer_id.0, request.producer_epoch)),
        };
        let b = &ctx.broker;
        match b.groups.commit(&group_id, &who, &entries, &b.topics).await {
            Ok(o) => o.codes(),
            Err(e) => vec![e.code(); entries.len()],
        }
    };
    respond(ctx, &request, codes, written)
}

/// The producer's transaction holds the group's offsets partition: the code otherwise.
async fn verify(
    ctx: &RequestContext,
    r: &TxnOffsetCommitRequest,
    group_id: &str,
) -> Result<(), i16> {
    let unavailable = ResponseError::CoordinatorNotAvailable.code();
    let (index, _) = ctx
        .broker
        .groups
        .partition_index(group_id)
        .ok_or(unavailable)?;
    let producer = (r.producer_id.0, r.producer_epoch);
    ctx.broker
        .txns
        .verify_anywhere(
            &ctx.broker,
            &r.transactional_id,
            producer,
            (OFFSETS_TOPIC, index),
        )
        .await
        .map_err(|e| e.code_at(ctx.version, FENCED_FROM))
}

fn respond(
    ctx: &RequestContext,
    request: &TxnOffsetCommitRequest,
    codes: Vec<Option<i16>>,
    written: Vec<i16>,
) -> TxnOffsetCommitResponse {
    let mut codes = codes.into_iter();
    let mut written = written.into_iter();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = codes
                        .next()
                        .flatten()
                        .unwrap_or_else(|| written.next().unwrap_or(0));
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(ctx.code(code))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
