//! JoinGroup: joins (or rejoins) a consumer group; answered when the rebalance it
//! starts or joins completes (see `group::state` for the rules).

use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::Reply;
use super::RequestContext;
use crate::acl::Operation;
use crate::group::state::{Answer, JoinParams, JoinResult};
use crate::group::GroupError;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn response(ctx: &RequestContext, r: JoinResult) -> JoinGroupResponse {
    let version = ctx.version;
    let members = r
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(s(m.member_id))
                .with_group_instance_id(if version >= 5 {
                    m.instance_id.map(s)
                } else {
                    None
                })
                .with_metadata(m.metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(ctx.code(GroupError::code_or_none(r.error.as_ref())))
        .with_generation_id(r.generation)
        .with_protocol_type(r.protocol_type.map(s))
        // Non-nullable before v7: an empty name while no protocol is chosen.
        .with_protocol_name(Some(s(r.protocol_name.unwrap_or_default())))
        .with_leader(s(r.leader))
        .with_skip_assignment(version >= 9 && r.skip_assignment)
        .with_member_id(s(r.member_id))
        .with_members(members)
}

pub fn handle(ctx: Arc<RequestContext>, r: JoinGroupRequest) -> Reply {
    let version = ctx.version;
    let params = JoinParams {
        member_id: r.member_id.to_string(),
        instance_id: r.group_instance_id.map(|i| i.to_string()),
        client_id: ctx.client_id_string(),
        client_host: ctx.client_host(),
        session_timeout_ms: r.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            r.rebalance_timeout_ms
        } else {
            r.session_timeout_ms
        },
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let group_id = r.group_id.to_string();
    if let Err(e) = ctx.checks().group(Operation::Read, &group_id) {
        return Reply::now(response(&ctx, JoinResult::error(e, &params.member_id)));
    }
    match ctx.broker.groups.join(&group_id, params) {
        Answer::Now(result) => Reply::now(response(&ctx, result)),
        Answer::Wait(rx) => Reply::Later(Box::pin(async move {
            let result = rx
                .await
                .unwrap_or_else(|_| JoinResult::error(GroupError::CoordinatorNotAvailable, ""));
            response(&ctx, result).into()
        })),
    }
}
