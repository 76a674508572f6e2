//! InitProducerId. Without a transactional id (idempotent producers): always a new
//! producer id (epoch 0), as Kafka does — also when the client presents an old id and
//! epoch (v3+), which could otherwise be forged or stale. With one: the transaction
//! coordinator's id and epoch for it (a bumped epoch fences the previous producer),
//! once WRITE on the transactional id is allowed; an empty id is INVALID_REQUEST. The
//! ids come from blocks the controller grants each broker
//! (`Cluster::allocate_producer_id`).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use tracing::warn;

use super::RequestContext;
use crate::acl::{Operation, ResourceType, CLUSTER_NAME};

/// The first version that knows PRODUCER_FENCED.
const FENCED_FROM: i16 = 4;

pub async fn handle(
    ctx: &RequestContext,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let fail = |code: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(ctx.code(code.code()))
            .with_producer_id((-1).into())
            .with_producer_epoch(-1)
    };
    if let Some(id) = &request.transactional_id {
        if !ctx
            .checks()
            .allows(Operation::Write, ResourceType::TransactionalId, id)
        {
            return fail(ResponseError::TransactionalIdAuthorizationFailed);
        }
        let given = (request.producer_id.0, request.producer_epoch);
        let outcome = ctx
            .broker
            .txns
            .init_producer_id(&ctx.broker, id, request.transaction_timeout_ms, given)
            .await;
        return match outcome {
            Ok((id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(id.into())
                .with_producer_epoch(epoch),
            Err(e) => InitProducerIdResponse::default()
                .with_error_code(ctx.code(e.code_at(ctx.version, FENCED_FROM)))
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        };
    }
    // KIP-679: IDEMPOTENT_WRITE on the Cluster, or WRITE on any topic.
    let checks = ctx.checks();
    let idempotent = checks.sees(
        Operation::IdempotentWrite,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) || checks.allows_any(Operation::Write, ResourceType::Topic);
    if !idempotent {
        return fail(ResponseError::ClusterAuthorizationFailed);
    }
    match ctx.broker.cluster.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(id.into())
            .with_producer_epoch(0),
        Err(e) => {
            warn!(error = %e, "cannot get producer ids from the controller");
            // Retriable: clients ask again (a controller election, say).
            fail(ResponseError::CoordinatorNotAvailable)
        }
    }
}
