//! AddPartitionsToTxn (v0–3, from producers): adds partitions to the producer's
//! ongoing transaction (starting one if none is), once WRITE on the transactional id
//! and on each topic is allowed. As in Kafka, when any partition is refused (not
//! authorized, unknown, led elsewhere) nothing is added: those partitions carry their
//! error and the others OPERATION_NOT_ATTEMPTED. v4+ (the brokers' batched and
//! verify-only form) is not advertised.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::RequestContext;
use crate::acl::{Operation, ResourceType};

/// The first version that knows PRODUCER_FENCED.
const FENCED_FROM: i16 = 2;

pub async fn handle(
    ctx: &RequestContext,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let id = request.v3_and_below_transactional_id.as_str();
    let checks = ctx.checks();
    let id_allowed = checks.allows(Operation::Write, ResourceType::TransactionalId, id);
    let mut refused: Vec<((String, i32), i16)> = Vec::new();
    let mut wanted = BTreeSet::new();
    for t in &request.v3_and_below_topics {
        let topic = t.name.as_str();
        let topic_allowed = checks.allows(Operation::Write, ResourceType::Topic, topic);
        for &index in &t.partitions {
            let key = (topic.to_string(), index);
            let refusal = if !id_allowed {
                Some(ResponseError::TransactionalIdAuthorizationFailed.code())
            } else if !topic_allowed {
                Some(ResponseError::TopicAuthorizationFailed.code())
            } else {
                ctx.broker
                    .txns
                    .check_partition(&ctx.broker.topics, topic, index)
                    .err()
                    .map(|e| e.code_at(ctx.version, FENCED_FROM))
            };
            match refusal {
                Some(code) => refused.push((key, code)),
                None => {
                    wanted.insert(key);
                }
            }
        }
    }
    let codes: Vec<((String, i32), i16)> = if refused.is_empty() {
        let outcome = ctx
            .broker
            .txns
            .add_partitions(
                id,
                request.v3_and_below_producer_id.0,
                request.v3_and_below_producer_epoch,
                wanted.clone(),
            )
            .await;
        let code = outcome.map_or_else(|e| e.code_at(ctx.version, FENCED_FROM), |()| 0);
        wanted.into_iter().map(|k| (k, code)).collect()
    } else {
        let not_attempted = ResponseError::OperationNotAttempted.code();
        let mut all: Vec<_> = wanted.into_iter().map(|k| (k, not_attempted)).collect();
        all.extend(refused);
        all
    };
    respond(ctx, codes)
}

fn respond(ctx: &RequestContext, codes: Vec<((String, i32), i16)>) -> AddPartitionsToTxnResponse {
    let mut by_topic: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, index), code) in codes {
        let result = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(index)
            .with_partition_error_code(ctx.code(code));
        match by_topic.iter_mut().find(|t| t.name.as_str() == topic) {
            Some(t) => t.results_by_partition.push(result),
            None => by_topic.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(kafka_protocol::messages::TopicName(topic.into()))
                    .with_results_by_partition(vec![result]),
            ),
        }
    }
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(by_topic)
}
