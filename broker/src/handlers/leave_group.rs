//! LeaveGroup: one member (v0–2) or a batch of members by member or instance id (v3+).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::RequestContext;
use crate::acl::Operation;
use crate::group::GroupError;

pub fn handle(ctx: &RequestContext, r: LeaveGroupRequest) -> LeaveGroupResponse {
    let group_id = r.group_id.to_string();
    if let Err(e) = ctx.checks().group(Operation::Read, &group_id) {
        return LeaveGroupResponse::default().with_error_code(ctx.code(e.code()));
    }
    if ctx.version < 3 {
        let codes = codes(ctx, &group_id, &[(r.member_id.to_string(), None)]);
        return LeaveGroupResponse::default()
            .with_error_code(ctx.code(codes.first().copied().unwrap_or(0)));
    }
    let leaving: Vec<(String, Option<String>)> = r
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                m.group_instance_id.as_ref().map(|i| i.to_string()),
            )
        })
        .collect();
    let codes = codes(ctx, &group_id, &leaving);
    let members = r
        .members
        .into_iter()
        .zip(codes)
        .map(|(m, code)| {
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(ctx.code(code))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

/// One error code per leaving member; a refusal of the whole group is every member's.
fn codes(ctx: &RequestContext, group_id: &str, leaving: &[(String, Option<String>)]) -> Vec<i16> {
    match ctx.broker.groups.leave(group_id, leaving) {
        Ok(outcomes) => outcomes.iter().map(GroupError::code_of).collect(),
        Err(e) => vec![e.code(); leaving.len()],
    }
}
