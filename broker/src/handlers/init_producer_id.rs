//! InitProducerId for idempotent producers: always a new producer id (epoch 0), as Kafka
//! does without a transactional id — also when the client presents an old id and epoch
//! (v3+), which could otherwise be forged or stale. Transactional ids are refused:
//! transactions are not supported. The ids come from blocks the controller grants each
//! broker (`Cluster::allocate_producer_id`).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use tracing::warn;

use super::RequestContext;
use crate::acl::{Operation, ResourceType, CLUSTER_NAME};

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
    if request.transactional_id.is_some() {
        return fail(ResponseError::TransactionalIdAuthorizationFailed);
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
