//! EndTxn (v0–3): commits or aborts the producer's ongoing transaction, once WRITE on
//! the transactional id is allowed. Answered when the decision is durable; the
//! markers are written to the transaction's partitions after the answer.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::RequestContext;
use crate::acl::{Operation, ResourceType};

/// The first version that knows PRODUCER_FENCED.
const FENCED_FROM: i16 = 2;

pub async fn handle(ctx: &RequestContext, request: EndTxnRequest) -> EndTxnResponse {
    let id = request.transactional_id.as_str();
    if !ctx
        .checks()
        .allows(Operation::Write, ResourceType::TransactionalId, id)
    {
        let code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return EndTxnResponse::default().with_error_code(ctx.code(code));
    }
    let outcome = ctx
        .broker
        .txns
        .end_txn(
            &ctx.broker,
            id,
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
        )
        .await;
    let code = outcome.map_or_else(|e| e.code_at(ctx.version, FENCED_FROM), |()| 0);
    EndTxnResponse::default().with_error_code(ctx.code(code))
}
