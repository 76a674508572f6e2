//! FindCoordinator, until consumer groups exist (the consumer-groups issue): every key
//! gets COORDINATOR_NOT_AVAILABLE, Kafka's answer while a group's coordinator cannot be
//! reached, so a group consumer waits and retries instead of failing, and consumers that
//! use `assign` with explicit offsets (which still look the coordinator up) work.
//!
//! Advertised because librdkafka turns LZ4 compression on only when FindCoordinator v0
//! is in the ApiVersions list (`rdkafka_feature.c`), the same kind of quirk as
//! KAFKA-18659.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

use super::message;
use crate::connection::RequestContext;

pub fn handle(ctx: &RequestContext, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let code = ctx.code(ResponseError::CoordinatorNotAvailable.code());
    answer(
        request,
        ctx.version,
        code,
        "consumer groups are not supported yet",
    )
}

/// Every key of `request` answered with `code`: v0–3 carry one key and a top-level error,
/// v4+ a list of coordinators.
pub fn answer(
    request: FindCoordinatorRequest,
    version: i16,
    code: i16,
    why: &str,
) -> FindCoordinatorResponse {
    let text = message(why);
    if version < 4 {
        // The codec refuses to encode fields a version does not have.
        return FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_error_message(if version >= 1 { text } else { None })
            .with_node_id((-1).into());
    }
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key| {
            Coordinator::default()
                .with_key(key)
                .with_node_id((-1).into())
                .with_error_code(code)
                .with_error_message(text.clone())
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
