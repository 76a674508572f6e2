//! DescribeGroups: state, protocol and members; member metadata and assignments are
//! shown once the group is Stable (as Kafka does). An unknown group is `Dead` with no
//! error, which is what `kafka-consumer-groups --describe` expects.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use super::AUTHORIZED_OPERATIONS_OMITTED;
use crate::acl::{Operation, ResourceType};

pub fn handle(ctx: &RequestContext, r: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let version = ctx.version;
    let s = StrBytes::from_string;
    let groups = r
        .groups
        .into_iter()
        .map(|id| {
            if id.is_empty() {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(ctx.code(ResponseError::InvalidGroupId.code()))
                    .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
            }
            let checks = ctx.checks();
            let allowed = checks.group(Operation::Describe, &id);
            if let Err(e) = allowed.and_then(|()| ctx.broker.groups.serves(id.as_str())) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(ctx.code(e.code()))
                    .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
            }
            let g = ctx.broker.groups.describe(id.as_str());
            let wanted = r.include_authorized_operations;
            let operations = checks.operations_if(wanted, ResourceType::Group, &id);
            let members = g
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(if version >= 4 {
                            m.instance_id.map(s)
                        } else {
                            None
                        })
                        .with_client_id(s(m.client_id))
                        .with_client_host(s(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(StrBytes::from_static_str(g.state.name()))
                .with_protocol_type(s(g.protocol_type))
                .with_protocol_data(s(g.protocol))
                .with_members(members)
                .with_authorized_operations(operations)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
