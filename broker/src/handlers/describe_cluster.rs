//! DescribeCluster: the cluster id, the controller, and every registered broker.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;

/// `endpoint_type` 1: the brokers' client listeners.
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub fn handle(ctx: &RequestContext, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let b = &ctx.broker;
    // As Kafka: answered to everyone; the Cluster's operations only with DESCRIBE on it.
    let operations = ctx
        .checks()
        .cluster_operations(request.include_cluster_authorized_operations);
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
