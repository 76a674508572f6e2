//! AddOffsetsToTxn (v0–3): adds a group's `__consumer_offsets` partition to the
//! producer's ongoing transaction, before it commits the group's offsets in it
//! (TxnOffsetCommit). Needs WRITE on the transactional id and READ on the group.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::RequestContext;
use crate::acl::{Operation, ResourceType};

/// The first version that knows PRODUCER_FENCED.
const FENCED_FROM: i16 = 2;

pub async fn handle(
    ctx: &RequestContext,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let answer = |code: i16| AddOffsetsToTxnResponse::default().with_error_code(ctx.code(code));
    let id = request.transactional_id.as_str();
    let checks = ctx.checks();
    if !checks.allows(Operation::Write, ResourceType::TransactionalId, id) {
        return answer(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if let Err(e) = checks.group(Operation::Read, &request.group_id) {
        return answer(e.code());
    }
    let Some((index, _)) = ctx.broker.groups.partition_index(&request.group_id) else {
        return answer(ResponseError::CoordinatorNotAvailable.code());
    };
    let b = &ctx.broker;
    let outcome = b
        .txns
        .add_offsets(
            &b.topics,
            id,
            request.producer_id.0,
            request.producer_epoch,
            index,
        )
        .await;
    answer(outcome.map_or_else(|e| e.code_at(ctx.version, FENCED_FROM), |()| 0))
}
