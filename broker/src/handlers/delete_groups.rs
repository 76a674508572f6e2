//! DeleteGroups: removes empty groups with their committed offsets (tombstones in
//! `__consumer_offsets`); a group with members is NON_EMPTY_GROUP, an unknown one
//! GROUP_ID_NOT_FOUND.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::Reply;
use super::RequestContext;
use crate::acl::Operation;
use crate::group::GroupError;

pub fn handle(ctx: Arc<RequestContext>, r: DeleteGroupsRequest) -> Reply {
    Reply::Later(Box::pin(async move {
        let mut results = Vec::with_capacity(r.groups_names.len());
        for id in r.groups_names {
            let outcome = match ctx.checks().group(Operation::Delete, &id) {
                Ok(()) => ctx.broker.groups.delete(id.as_str()).await,
                Err(e) => Err(e),
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(ctx.code(GroupError::code_of(&outcome))),
            );
        }
        DeleteGroupsResponse::default().with_results(results).into()
    }))
}
