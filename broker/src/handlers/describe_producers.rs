//! DescribeProducers (v0): the producers each asked partition's leader tracks, with
//! their epoch, last sequence and timestamp, and the first offset of their open
//! transaction there (-1: none), which is how an operator finds a transaction holding
//! the last stable offset back. Needs READ on the topic, as in Kafka.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::authz::missing_topic;
use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::partition::Partition;

pub fn handle(ctx: &RequestContext, r: DescribeProducersRequest) -> DescribeProducersResponse {
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            let allowed = ctx
                .checks()
                .allows(Operation::Read, ResourceType::Topic, &t.name);
            let topic = ctx.broker.topics.get(t.name.as_str()).filter(|_| allowed);
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let out = PartitionResponse::default().with_partition_index(index);
                    match topic.as_ref().and_then(|t| t.partition(index)) {
                        Some(p) => describe(ctx, p, out),
                        None => out.with_error_code(ctx.code(missing_topic(allowed).code())),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

fn describe(ctx: &RequestContext, p: &Partition, out: PartitionResponse) -> PartitionResponse {
    let producers = match p.producers() {
        Ok(producers) => producers,
        Err(e) => return out.with_error_code(ctx.code(e.code())),
    };
    let states = producers
        .into_iter()
        .map(|(s, open_since)| {
            ProducerState::default()
                .with_producer_id(ProducerId(s.producer_id))
                .with_producer_epoch(i32::from(s.epoch))
                .with_last_sequence(s.last_sequence)
                .with_last_timestamp(s.last_timestamp)
                .with_coordinator_epoch(s.coordinator_epoch)
                .with_current_txn_start_offset(open_since.map_or(-1, |o| o as i64))
        })
        .collect();
    out.with_active_producers(states)
}
