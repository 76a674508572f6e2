//! SyncGroup: the leader hands in the assignment; every member gets its own once the
//! assignment is durable in `__consumer_offsets`.

use std::sync::Arc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::Reply;
use super::RequestContext;
use crate::acl::Operation;
use crate::group::state::SyncParams;
use crate::group::state::SyncResult;
use crate::group::GroupError;

pub fn handle(ctx: Arc<RequestContext>, r: SyncGroupRequest) -> Reply {
    let group_id = r.group_id.to_string();
    let params = SyncParams {
        member_id: r.member_id.to_string(),
        instance_id: r.group_instance_id.map(|i| i.to_string()),
        generation: r.generation_id,
        protocol_type: r.protocol_type.map(|p| p.to_string()),
        protocol_name: r.protocol_name.map(|p| p.to_string()),
        assignments: r
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    Reply::Later(Box::pin(async move {
        let result = match ctx.checks().group(Operation::Read, &group_id) {
            Ok(()) => ctx.broker.groups.sync(&group_id, params).await,
            Err(e) => SyncResult::error(e),
        };
        let v5 = ctx.version >= 5;
        SyncGroupResponse::default()
            .with_error_code(ctx.code(GroupError::code_or_none(result.error.as_ref())))
            .with_protocol_type(
                result
                    .protocol_type
                    .filter(|_| v5)
                    .map(StrBytes::from_string),
            )
            .with_protocol_name(
                result
                    .protocol_name
                    .filter(|_| v5)
                    .map(StrBytes::from_string),
            )
            .with_assignment(result.assignment)
            .into()
    }))
}
