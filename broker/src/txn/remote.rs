//! Transactions across brokers, over the calls between brokers (`calls`). The body of
//! a call is the Kafka request body at a fixed version; the answer is the Kafka response
//! body at that version:
//! - [`WRITE_MARKERS`]: WriteTxnMarkers v1, from a coordinator to the leader of some of
//!   a transaction's partitions. Answered once each marker is committed there.
//! - [`VERIFY`]: AddPartitionsToTxn v4 with `verify_only`, from a partition's leader to
//!   the coordinator of a transactional produce's id (KIP-890's check). A partition
//!   where the producer already has a transaction open skips it: its first batch was
//!   verified, and the marker that ends the transaction also bumps the epoch a fenced
//!   producer would need.
//!
//! A body that does not decode is logged and left unanswered: the caller's wait times
//! out, as when a message is lost.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::markers::write_here;
use super::TxnError;
use crate::calls::{VERIFY, WRITE_MARKERS};
use crate::control_batch::{Marker, MarkerKind};
use crate::partition::MarkerFrom;
use crate::Broker;

const WRITE_MARKERS_VERSION: i16 = 1;
const VERIFY_VERSION: i16 = 4;
/// How long a call waits for its answer (a marker waits for its commit there).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

fn payload(kind: u8, body: &impl Encodable, version: i16) -> Result<Bytes, TxnError> {
    let mut buf = BytesMut::with_capacity(128);
    buf.put_u8(kind);
    body.encode(&mut buf, version)
        .map_err(|e| TxnError::Peer(format!("encoding a call: {e}")))?;
    Ok(buf.freeze())
}

/// Sends a call to `node`; the answer's bytes.
async fn call(broker: &Broker, node: u64, payload: Bytes) -> Result<Bytes, TxnError> {
    crate::calls::call(broker, node, payload, CALL_TIMEOUT)
        .await
        .map_err(TxnError::Peer)
}

/// Writes `marker` for producer `(producer_id, epoch)` on `partitions` through their
/// leader `node`, another broker.
pub(super) async fn write_markers(
    broker: &Broker,
    node: u64,
    (producer_id, epoch): (i64, i16),
    marker: Marker,
    partitions: &[(String, i32)],
) -> Result<(), TxnError> {
    let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
    for (topic, index) in partitions {
        match topics.iter_mut().find(|t| t.name.as_str() == topic) {
            Some(t) => t.partition_indexes.push(*index),
            None => topics.push(
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partition_indexes(vec![*index]),
            ),
        }
    }
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(producer_id.into())
            .with_producer_epoch(epoch)
            .with_transaction_result(marker.kind == MarkerKind::Commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(topics)]);
    let mut answer = call(
        broker,
        node,
        payload(WRITE_MARKERS, &request, WRITE_MARKERS_VERSION)?,
    )
    .await?;
    let response = WriteTxnMarkersResponse::decode(&mut answer, WRITE_MARKERS_VERSION)
        .map_err(|e| TxnError::Peer(format!("undecodable WriteTxnMarkers answer: {e}")))?;
    let failed = response
        .markers
        .iter()
        .flat_map(|m| &m.topics)
        .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
        .find(|(_, p)| p.error_code != 0);
    match failed {
        Some((t, p)) => Err(TxnError::Peer(format!(
            "broker {node} could not write the marker on {}-{}: error {}",
            t.name.as_str(),
            p.partition_index,
            p.error_code
        ))),
        None => Ok(()),
    }
}

/// Asks `node`, the coordinator of `id`, whether producer `(producer_id, epoch)` has
/// `topic`-`partition` in its ongoing transaction.
pub(super) async fn verify(
    broker: &Broker,
    node: u64,
    id: &str,
    (producer_id, epoch): (i64, i16),
    (topic, partition): (&str, i32),
) -> Result<(), TxnError> {
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(StrBytes::from_string(id.to_string()).into())
            .with_producer_id(producer_id.into())
            .with_producer_epoch(epoch)
            .with_verify_only(true)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![partition])]),
    ]);
    let mut answer = call(broker, node, payload(VERIFY, &request, VERIFY_VERSION)?).await?;
    let response = AddPartitionsToTxnResponse::decode(&mut answer, VERIFY_VERSION)
        .map_err(|e| TxnError::Peer(format!("undecodable verification answer: {e}")))?;
    let code = response
        .results_by_transaction
        .iter()
        .flat_map(|r| &r.topic_results)
        .flat_map(|t| &t.results_by_partition)
        .map(|p| p.partition_error_code)
        .next()
        .unwrap_or(ResponseError::CoordinatorNotAvailable.code());
    match code {
        0 => Ok(()),
        code => Err(TxnError::from_verify_code(code)),
    }
}

/// Answers a WriteTxnMarkers call (its body).
pub(crate) async fn answer_markers(broker: &Broker, mut body: Bytes) -> Result<Bytes, String> {
    let request = WriteTxnMarkersRequest::decode(&mut body, WRITE_MARKERS_VERSION)
        .map_err(|e| format!("undecodable WriteTxnMarkers: {e}"))?;
    let answer = markers_here(broker, request, MarkerFrom::Coordinator).await;
    encode(&answer, WRITE_MARKERS_VERSION)
}

/// Answers a verify-only AddPartitionsToTxn call (its body).
pub(crate) fn answer_verify(broker: &Broker, mut body: Bytes) -> Result<Bytes, String> {
    let request = AddPartitionsToTxnRequest::decode(&mut body, VERIFY_VERSION)
        .map_err(|e| format!("undecodable AddPartitionsToTxn: {e}"))?;
    encode(&verify_here(broker, request), VERIFY_VERSION)
}

fn encode(body: &impl Encodable, version: i16) -> Result<Bytes, String> {
    let mut buf = BytesMut::with_capacity(128);
    body.encode(&mut buf, version)
        .map_err(|e| format!("encoding an answer: {e}"))?;
    Ok(buf.freeze())
}

/// WriteTxnMarkers on this broker: each marker on each partition it leads. A
/// coordinator's markers (`MarkerFrom::Coordinator`) are written as asked; an
/// operator's may only abort a transaction open on the partition.
pub(crate) async fn markers_here(
    broker: &Broker,
    request: WriteTxnMarkersRequest,
    from: MarkerFrom,
) -> WriteTxnMarkersResponse {
    let mut results = Vec::with_capacity(request.markers.len());
    for m in request.markers {
        let kind = if m.transaction_result {
            MarkerKind::Commit
        } else {
            MarkerKind::Abort
        };
        let marker = Marker {
            kind,
            coordinator_epoch: m.coordinator_epoch,
        };
        let mut topics = Vec::with_capacity(m.topics.len());
        for t in m.topics {
            let mut partitions = Vec::with_capacity(t.partition_indexes.len());
            for index in t.partition_indexes {
                let producer = (m.producer_id.0, m.producer_epoch);
                let written = if from == MarkerFrom::Admin && kind == MarkerKind::Commit {
                    Err(TxnError::AdminCommit)
                } else {
                    write_here(broker, t.name.as_str(), index, producer, marker, from).await
                };
                partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(written.map_or_else(|e| e.marker_code(), |()| 0)),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(partitions),
            );
        }
        results.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(results)
}

/// A verify-only AddPartitionsToTxn on this broker, the ids' coordinator.
fn verify_here(broker: &Broker, request: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    let results = request
        .transactions
        .into_iter()
        .map(|tx| {
            let topic_results = tx
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|&index| {
                            let verified = broker.txns.verify(
                                &tx.transactional_id,
                                tx.producer_id.0,
                                tx.producer_epoch,
                                &t.name,
                                index,
                            );
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(index)
                                .with_partition_error_code(
                                    verified.map_or_else(|e| e.produce_code(), |()| 0),
                                )
                        })
                        .collect();
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(t.name)
                        .with_results_by_partition(partitions)
                })
                .collect();
            AddPartitionsToTxnResult::default()
                .with_transactional_id(tx.transactional_id)
                .with_topic_results(topic_results)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}
