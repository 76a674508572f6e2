//! OffsetForLeaderEpoch (KIP-279, KIP-320): where a leader epoch ends in this
//! partition's log. Consumers ask after a leader change, with the epoch of the last
//! record they read, to learn whether the log they read from was truncated past their
//! position (kafka-python 3 and the Java client validate every position this way, and
//! fetch nothing from a partition until it is validated). A partition's leader epochs
//! are its Raft terms, stamped on every batch.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::authz::missing_topic;
use super::RequestContext;
use crate::acl::{Operation, ResourceType};

pub fn handle(
    ctx: &RequestContext,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let checks = ctx.checks();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let allowed = checks.allows(Operation::Describe, ResourceType::Topic, &t.topic);
            let topic = ctx.broker.topics.get(t.topic.as_str()).filter(|_| allowed);
            let partitions = t
                .partitions
                .into_iter()
                .map(|lp| {
                    let out = EpochEndOffset::default()
                        .with_partition(lp.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(p) = topic.as_ref().and_then(|t| t.partition(lp.partition)) else {
                        return out.with_error_code(ctx.code(missing_topic(allowed).code()));
                    };
                    match p.end_offset_for_epoch(lp.current_leader_epoch, lp.leader_epoch) {
                        Ok((epoch, end)) => out.with_leader_epoch(epoch).with_end_offset(end),
                        Err(e) => out.with_error_code(ctx.code(e.code())),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
