//! Heartbeat: keeps a member's session alive and tells it when to rejoin
//! (REBALANCE_IN_PROGRESS), or that it was fenced (ILLEGAL_GENERATION,
//! UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID).

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::RequestContext;
use crate::acl::Operation;
use crate::group::GroupError;

pub fn handle(ctx: &RequestContext, r: HeartbeatRequest) -> HeartbeatResponse {
    let instance = r.group_instance_id.map(|i| i.to_string());
    let outcome = ctx
        .checks()
        .group(Operation::Read, &r.group_id)
        .and_then(|()| {
            ctx.broker.groups.heartbeat(
                r.group_id.as_str(),
                r.member_id.as_str(),
                instance.as_deref(),
                r.generation_id,
            )
        });
    HeartbeatResponse::default().with_error_code(ctx.code(GroupError::code_of(&outcome)))
}
