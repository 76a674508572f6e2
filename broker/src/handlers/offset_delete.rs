//! OffsetDelete: removes a group's committed offsets for partitions it no longer
//! consumes; partitions of a topic the group's members subscribe to are
//! GROUP_SUBSCRIBED_TO_TOPIC.

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::Reply;
use super::RequestContext;
use crate::group::GroupError;

pub fn handle(ctx: Arc<RequestContext>, r: OffsetDeleteRequest) -> Reply {
    Reply::Later(Box::pin(async move {
        let wanted: Vec<(String, i32)> = r
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.to_string(), p.partition_index))
            })
            .collect();
        let outcome = ctx
            .broker
            .groups
            .delete_offsets(r.group_id.as_str(), &wanted)
            .await;
        let codes: Vec<i16> = match outcome {
            Ok(outcomes) => outcomes.iter().map(GroupError::code_of).collect(),
            Err(e) => {
                return OffsetDeleteResponse::default()
                    .with_error_code(ctx.code(e.code()))
                    .into()
            }
        };
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
