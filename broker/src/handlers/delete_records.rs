//! DeleteRecords: moves partitions' log start offsets forward (-1 means the high
//! watermark), deleting whole segments before them. On a cluster partition the leader
//! replicates the move (`Partition::delete_before_replicated`) and answers once it
//! committed; other replicas answer NOT_LEADER_OR_FOLLOWER. An audit topic
//! (`audit.enabled`) answers POLICY_VIOLATION past its partition's seal (nothing is
//! removed from it that was not sealed: exported first).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::authz::missing_topic;
use super::RequestContext;
use crate::acl::{Operation, ResourceType};

pub async fn handle(ctx: &RequestContext, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let b = &ctx.broker;
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let allowed = ctx
            .checks()
            .allows(Operation::Delete, ResourceType::Topic, &t.name);
        let topic = b.topics.get(t.name.as_str()).filter(|_| allowed);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for dp in t.partitions {
            let result = async {
                let out = DeleteRecordsPartitionResult::default()
                    .with_partition_index(dp.partition_index)
                    .with_low_watermark(-1);
                if allowed && crate::topics::is_internal(t.name.as_str()) {
                    // Kafka's rule: the group coordinator owns these records.
                    return out
                        .with_error_code(ctx.code(ResponseError::InvalidTopicException.code()));
                }
                let Some(p) = topic.as_ref().and_then(|t| t.partition(dp.partition_index)) else {
                    return out.with_error_code(ctx.code(missing_topic(allowed).code()));
                };
                let target = match dp.offset {
                    -1 => p.high_watermark(),
                    o if o >= 0 => o as u64,
                    _ => {
                        return out
                            .with_error_code(ctx.code(ResponseError::OffsetOutOfRange.code()))
                    }
                };
                let audit = |t: &crate::topics::Topic| {
                    t.config.audit || crate::config::audit_override(&t.overrides)
                };
                // Only the leader's seal counts; another replica answers
                // NOT_LEADER_OR_FOLLOWER below, which clients retry.
                let leads = p.check_leader().is_ok();
                if topic.as_deref().is_some_and(audit) && leads && target > p.audit_sealed_offset()
                {
                    // An audit topic is append-only (audit.enabled) up to its seal.
                    return out.with_error_code(ctx.code(ResponseError::PolicyViolation.code()));
                }
                match p.delete_before_replicated(target).await {
                    Ok(start) => out.with_low_watermark(start as i64),
                    Err(e) => out.with_error_code(ctx.code(e.code())),
                }
            }
            .await;
            partitions.push(result);
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
