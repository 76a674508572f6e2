//! DescribeCluster: the cluster id, the controller, and every registered broker.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::{message, RequestContext};
use crate::acl::{Operation, ResourceType, CLUSTER_NAME};

/// `endpoint_type` 1: the brokers' client listeners.
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub fn handle(ctx: &RequestContext, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let b = &ctx.broker;
    let checks = ctx.checks();
    if !checks.allows(Operation::Describe, ResourceType::Cluster, CLUSTER_NAME) {
        return DescribeClusterResponse::default()
            .with_error_code(ctx.code(ResponseError::ClusterAuthorizationFailed.code()))
            .with_error_message(message("DESCRIBE on the Cluster is needed"))
            .with_endpoint_type(ENDPOINT_TYPE_BROKERS);
    }
    let operations = checks.operations_if(
        request.include_cluster_authorized_operations,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_TYPE_BROKERS)
        .with_cluster_id(StrBytes::from_string(
            b.client_cluster_id().unwrap_or_default(),
        ))
        .with_controller_id(super::metadata::controller_id(b).into())
        .with_brokers(
            super::metadata::all_brokers(b, &ctx.session.listener)
                .into_iter()
                .map(|m| {
                    DescribeClusterBroker::default()
                        .with_broker_id(m.node_id)
                        .with_host(m.host)
                        .with_port(m.port)
                })
                .collect(),
        )
        .with_cluster_authorized_operations(operations)
}
