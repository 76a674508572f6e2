//! OffsetDelete: removes a group's committed offsets for partitions it no longer
//! consumes; partitions of a topic the group's members subscribe to are
//! GROUP_SUBSCRIBED_TO_TOPIC.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::Reply;
use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::group::GroupError;

pub fn handle(ctx: Arc<RequestContext>, r: OffsetDeleteRequest) -> Reply {
    Reply::Later(Box::pin(async move {
        // Partitions of topics the caller may not read are refused, not deleted.
        let checks = ctx.checks();
        let mut refused = Vec::new();
        let mut wanted: Vec<(String, i32)> = Vec::new();
        for t in &r.topics {
            let readable = checks.allows(Operation::Read, ResourceType::Topic, &t.name);
            for p in &t.partitions {
                refused.push((!readable).then_some(ResponseError::TopicAuthorizationFailed.code()));
                if readable {
                    wanted.push((t.name.to_string(), p.partition_index));
                }
            }
        }
        let outcome = match checks.group(Operation::Delete, &r.group_id) {
            Ok(()) => {
                let groups = &ctx.broker.groups;
                groups.delete_offsets(r.group_id.as_str(), &wanted).await
            }
            Err(e) => Err(e),
        };
        let deleted: Vec<i16> = match outcome {
            Ok(outcomes) => outcomes.iter().map(GroupError::code_of).collect(),
            Err(e) => {
                return OffsetDeleteResponse::default()
                    .with_error_code(ctx.code(e.code()))
                    .into()
            }
        };
        let mut deleted = deleted.into_iter();
        let codes: Vec<i16> = refused
            .into_iter()
            .map(|r| r.unwrap_or_else(|| deleted.next().unwrap_or(0)))
            .collect();
        let mut codes = codes.into_iter();
        let topics = r
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(ctx.code(codes.next().unwrap_or(0)))
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetDeleteResponse::default().with_topics(topics).into()
    }))
}
