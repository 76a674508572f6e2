//! ListGroups: every group this broker coordinates, with its state (v4+, filterable)
//! and type (v5+: always "classic", the only protocol Strata speaks).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::acl::{Operation, ResourceType, CLUSTER_NAME};

/// The group type of every group (KIP-848 names the old protocol "classic").
const GROUP_TYPE: &str = "classic";

pub fn handle(ctx: &RequestContext, r: ListGroupsRequest) -> ListGroupsResponse {
    let version = ctx.version;
    let wants = |filter: &[StrBytes], value: &str| {
        filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
    };
    // As Kafka: DESCRIBE on the Cluster lists every group, else those the caller may
    // describe.
    let checks = ctx.checks();
    let all = checks.sees(Operation::Describe, ResourceType::Cluster, CLUSTER_NAME);
    let visible = |id: &str| all || checks.sees(Operation::Describe, ResourceType::Group, id);
    let groups = ctx
        .broker
        .groups
        .list()
        .into_iter()
        .filter(|(id, _, _)| visible(id))
        .filter(|(_, state, _)| wants(&r.states_filter, state.name()))
        .filter(|_| wants(&r.types_filter, GROUP_TYPE))
        .map(|(id, state, protocol_type)| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(id)))
                .with_protocol_type(StrBytes::from_string(protocol_type))
                .with_group_state(if version >= 4 {
                    StrBytes::from_static_str(state.name())
                } else {
                    StrBytes::default()
                })
                .with_group_type(if version >= 5 {
                    StrBytes::from_static_str(GROUP_TYPE)
                } else {
                    StrBytes::default()
                })
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
