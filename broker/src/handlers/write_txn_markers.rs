//! WriteTxnMarkers (v1) on the Kafka port: an operator aborting a hanging transaction
//! on a partition this broker leads (what `kafka-transactions.sh abort` and the admin
//! clients' `abortTransaction` send), with CLUSTER_ACTION on the Cluster as Kafka
//! requires. Only ABORT markers are taken (a COMMIT gets INVALID_REQUEST: only a
//! coordinator decides a commit, and coordinators reach each other over the Raft
//! transport), and only for a producer with a transaction open on the partition, at
//! its current epoch (INVALID_TXN_STATE, INVALID_PRODUCER_EPOCH otherwise). The
//! marker ends the transaction there as a coordinator's would; the answer comes once
//! it is committed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::RequestContext;
use crate::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::partition::MarkerFrom;
use crate::txn::remote::markers_here;

pub async fn handle(ctx: &RequestContext, r: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let allowed = ctx.checks().allows(
        Operation::ClusterAction,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    let response = if allowed {
        markers_here(&ctx.broker, r, MarkerFrom::Admin).await
    } else {
        refused(r, ResponseError::ClusterAuthorizationFailed.code())
    };
    for m in &response.markers {
        for t in &m.topics {
            for p in &t.partitions {
                ctx.code(p.error_code);
            }
        }
    }
    response
}

/// Every asked partition answered with `code`.
fn refused(r: WriteTxnMarkersRequest, code: i16) -> WriteTxnMarkersResponse {
    let markers = r
        .markers
        .into_iter()
        .map(|m| {
            let topics = m
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|&index| {
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(index)
                                .with_error_code(code)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics)
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}
