//! FindCoordinator: a group's coordinator is the leader of its `__consumer_offsets`
//! partition, a transactional id's (key type 1) the leader of its
//! `__transaction_state` partition; COORDINATOR_NOT_AVAILABLE until the topic exists
//! and that partition has a leader. The first transactional lookup creates
//! `__transaction_state`, as in Kafka. v0–3 carry one key, v4+ a batch.
//!
//! librdkafka turns LZ4 compression on only when FindCoordinator v0 is in the
//! ApiVersions list (`rdkafka_feature.c`), one more reason to advertise the whole range.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::message;
use super::RequestContext;
use crate::acl::{Operation, ResourceType};

/// Key type of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;
/// Key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The answer for one key: error code and message (`None` when this broker is it).
/// The broker coordinating `key`: (node id, host, port), or an error code and message.
fn coordinator(
    ctx: &RequestContext,
    key_type: i8,
    key: &str,
) -> Result<(i32, String, i32), (i16, &'static str)> {
    let b = &ctx.broker;
    if let Some(refused) = lookup(key_type, key) {
        return Err(refused);
    }
    let (resource, denied) = if key_type == KEY_TYPE_TRANSACTION {
        let code = ResponseError::TransactionalIdAuthorizationFailed.code();
        let why = "DESCRIBE on the transactional id is needed";
        (ResourceType::TransactionalId, (code, why))
    } else {
        let code = ResponseError::GroupAuthorizationFailed.code();
        (
            ResourceType::Group,
            (code, "DESCRIBE on the group is needed"),
        )
    };
    if !ctx.checks().allows(Operation::Describe, resource, key) {
        return Err(denied);
    }
    let cluster = &b.cluster;
    let unavailable = (
        ResponseError::CoordinatorNotAvailable.code(),
        "the coordinator's internal partition has no leader yet",
    );
    let partition = if key_type == KEY_TYPE_TRANSACTION {
        let found = b.txns.partition_of(key);
        if found.is_none() {
            b.txns.ensure_topic(&ctx.broker);
        }
        found
    } else {
        b.groups.partition_index(key).map(|(_, p)| p)
    }
    .ok_or(unavailable)?;
    let group = partition.group();
    let leader = cluster
        .leader_of(group, partition.view())
        .ok_or(unavailable)?;
    let state = cluster.state();
    let broker = state.brokers.get(&leader).ok_or(unavailable)?;
    // A coordinator without this client's listener cannot be reached by it.
    let (host, port) = broker.endpoint(&ctx.session.listener).ok_or(unavailable)?;
    Ok((leader as i32, host.to_string(), port))
}

fn lookup(key_type: i8, key: &str) -> Option<(i16, &'static str)> {
    match key_type {
        KEY_TYPE_GROUP if key.is_empty() => Some((
            ResponseError::InvalidRequest.code(),
            "the group id is empty",
        )),
        KEY_TYPE_GROUP => None,
        KEY_TYPE_TRANSACTION if key.is_empty() => Some((
            ResponseError::InvalidRequest.code(),
            "the transactional id is empty",
        )),
        KEY_TYPE_TRANSACTION => None,
        _ => Some((ResponseError::InvalidRequest.code(), "unknown key type")),
    }
}

pub fn handle(ctx: &RequestContext, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let key_type = if ctx.version >= 1 {
        request.key_type
    } else {
        KEY_TYPE_GROUP
    };
    if ctx.version < 4 {
        return match coordinator(ctx, key_type, request.key.as_str()) {
            Ok((node, host, port)) => FindCoordinatorResponse::default()
                .with_node_id(node.into())
                .with_host(StrBytes::from_string(host))
                .with_port(port),
            Err((code, why)) => FindCoordinatorResponse::default()
                .with_error_code(ctx.code(code))
                .with_error_message(if ctx.version >= 1 { message(why) } else { None })
                .with_node_id((-1).into()),
        };
    }
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key| match coordinator(ctx, key_type, key.as_str()) {
            Ok((node, host, port)) => Coordinator::default()
                .with_key(key)
                .with_node_id(node.into())
                .with_host(StrBytes::from_string(host))
                .with_port(port),
            Err((code, why)) => Coordinator::default()
                .with_key(key)
                .with_node_id((-1).into())
                .with_error_code(ctx.code(code))
                .with_error_message(message(why)),
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}

/// Every key of `request` answered with `code` (UNSUPPORTED_VERSION for versions this
/// broker does not answer): v0–3 carry one key and a top-level error, v4+ a list.
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
