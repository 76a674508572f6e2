//! ListTransactions (v0–1): the transactional ids this broker coordinates, filtered by
//! state, producer id and (v1, KIP-994) how long the transaction has run. Only ids
//! the caller may DESCRIBE are listed. A client asks every broker and merges the
//! answers.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse};
use kafka_protocol::messages::{ProducerId, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::internal_batch::now_ms;
use crate::txn::records::TxnValue;

/// The state names Kafka's coordinator knows; a filter naming another is reported
/// back in `unknown_state_filters`. `Dead` and `PrepareEpochFence` are states this
/// coordinator never shows, so they match nothing.
const KNOWN_STATES: [&str; 8] = [
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

pub fn handle(ctx: &RequestContext, r: ListTransactionsRequest) -> ListTransactionsResponse {
    let unknown: Vec<StrBytes> = r
        .state_filters
        .iter()
        .filter(|f| !KNOWN_STATES.contains(&f.as_str()))
        .cloned()
        .collect();
    let ids = match ctx.broker.txns.list() {
        Ok(ids) => ids,
        Err(e) => {
            return ListTransactionsResponse::default()
                .with_error_code(ctx.code(e.code_at(ctx.version, 0)))
                .with_unknown_state_filters(unknown)
        }
    };
    let now = now_ms();
    let checks = ctx.checks();
    let states = ids
        .into_iter()
        .filter(|(_, v)| wanted(&r, v, now))
        .filter(|(id, _)| checks.sees(Operation::Describe, ResourceType::TransactionalId, id))
        .map(|(id, v)| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
                .with_producer_id(ProducerId(v.producer_id))
                .with_transaction_state(StrBytes::from_static_str(v.status.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}

/// Whether `v` passes the request's filters at time `now` (ms). The duration filter
/// keeps transactions that started at least that long ago (an id with no transaction
/// started has no duration and is left out).
fn wanted(r: &ListTransactionsRequest, v: &TxnValue, now: i64) -> bool {
    let state_ok = r.state_filters.is_empty()
        || r.state_filters
            .iter()
            .any(|f| f.as_str() == v.status.name());
    let producer_ok = r.producer_id_filters.is_empty()
        || r.producer_id_filters.contains(&ProducerId(v.producer_id));
    let duration_ok =
        r.duration_filter < 0 || (v.start_ms >= 0 && now - v.start_ms >= r.duration_filter);
    state_ok && producer_ok && duration_ok
}
