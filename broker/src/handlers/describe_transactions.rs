//! DescribeTransactions (v0): the state of each asked transactional id this broker
//! coordinates: producer id and epoch, timeout, when the ongoing transaction began and
//! its partitions (those on topics the caller may DESCRIBE). Needs DESCRIBE on the id.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::txn::records::TxnValue;

pub fn handle(
    ctx: &RequestContext,
    r: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let checks = ctx.checks();
    let states = r
        .transactional_ids
        .into_iter()
        .map(|id| {
            let answer = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            let code = if !checks.allows(Operation::Describe, ResourceType::TransactionalId, &id) {
                ResponseError::TransactionalIdAuthorizationFailed.code()
            } else {
                match ctx.broker.txns.describe(&id) {
                    Ok(Some(v)) => return described(ctx, answer, &v),
                    Ok(None) => ResponseError::TransactionalIdNotFound.code(),
                    Err(e) => e.code_at(ctx.version, 0),
                }
            };
            answer.with_error_code(ctx.code(code))
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

fn described(ctx: &RequestContext, answer: TransactionState, v: &TxnValue) -> TransactionState {
    let checks = ctx.checks();
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &v.partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    let topics = by_topic
        .into_iter()
        .filter(|(topic, _)| checks.sees(Operation::Describe, ResourceType::Topic, topic))
        .map(|(topic, partitions)| {
            TopicData::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(partitions)
        })
        .collect();
    answer
        .with_transaction_state(StrBytes::from_static_str(v.status.name()))
        .with_transaction_timeout_ms(v.timeout_ms)
        .with_transaction_start_time_ms(v.start_ms)
        .with_producer_id(ProducerId(v.producer_id))
        .with_producer_epoch(v.producer_epoch)
        .with_topics(topics)
}
