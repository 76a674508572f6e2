//! The sending half of the producer's task: ready batches drained per leader into
//! Produce requests (at most one batch per partition in flight, up to
//! `max_in_flight_requests` requests per broker, each on a connection of its own), and
//! their answers settled: offsets delivered, retriable errors retried after a backoff,
//! the rest failed; an idempotent producer renews its id after a batch failed for good.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, warn};

use crate::batch::restamp;
use crate::cluster::Cluster;
use crate::connection::Connection;
use crate::error::{Error, Result, DUPLICATE_SEQUENCE_NUMBER};
use crate::record::RecordMetadata;

use super::accumulator::{Accumulator, Batch, Body, PartitionQueue, TopicPartition};
use super::{init_producer_id, Acks};

/// The producer's connections to one broker: idle ones, and how many carry a request.
#[derive(Default)]
pub(super) struct NodeConnections {
    pub(super) idle: Vec<Connection>,
    pub(super) in_flight: usize,
}

/// What one request task reports back.
pub(super) struct Outcome {
    pub(super) node: i32,
    pub(super) partitions: Vec<TopicPartition>,
    pub(super) result: Result<Option<ProduceResponse>>,
    /// The connection, unless it broke.
    pub(super) connection: Option<Connection>,
}

/// Sends `request` to `node` on `connection` (a new one if `None`); returns the result
/// and the connection unless it broke. With acks=0 nothing comes back.
pub(super) async fn produce(
    cluster: &Cluster,
    node: i32,
    connection: Option<Connection>,
    acks: Acks,
    request: &ProduceRequest,
) -> (Result<Option<ProduceResponse>>, Option<Connection>) {
    let mut connection = match connection {
        Some(c) => c,
        None => match cluster.connect_node(node).await {
            Ok(c) => c,
            Err(e) => return (Err(e), None),
        },
    };
    let result = if acks == Acks::None {
        connection.send_no_response(request).await.map(|()| None)
    } else {
        connection.send(request).await.map(Some)
    };
    let keep = !connection.is_broken();
    (result, keep.then_some(connection))
}

/// The base offset a Produce response gives `tp`, or its error.
pub(super) fn partition_result(
    response: &ProduceResponse,
    tp: &TopicPartition,
) -> Result<Option<i64>> {
    let p = response
        .responses
        .iter()
        .filter(|t| t.name.0.as_str() == &*tp.0)
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == tp.1);
    let Some(p) = p else {
        return Err(Error::Kafka {
            context: format!("produce to {}-{}", tp.0, tp.1),
            code: crate::error::KafkaCode(crate::error::UNKNOWN_TOPIC_OR_PARTITION),
            message: Some("the response does not mention the partition".into()),
        });
    };
    if p.error_code == DUPLICATE_SEQUENCE_NUMBER {
        return Ok((p.base_offset >= 0).then_some(p.base_offset));
    }
    Error::check(
        p.error_code,
        || format!("produce to {}-{}", tp.0, tp.1),
        p.error_message.as_deref(),
    )?;
    Ok(Some(p.base_offset))
}

pub(super) fn succeed(batch: Batch, tp: &TopicPartition, base_offset: Option<i64>) {
    for (i, p) in batch.records.into_iter().enumerate() {
        let offset = base_offset.map(|b| b + i as i64);
        p.reply.send(Ok(RecordMetadata {
            topic: Arc::clone(&tp.0),
            partition: tp.1,
            offset,
            timestamp_ms: p.timestamp_ms,
        }));
    }
}

pub(super) fn fail(batch: Batch, error: &Error) {
    for p in batch.records {
        p.reply.send(Err(error.clone()));
    }
}

impl Accumulator {
    pub(super) fn joined(
        &mut self,
        joined: std::result::Result<(tokio::task::Id, Outcome), tokio::task::JoinError>,
        now: Instant,
    ) {
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, outcome),
            Err(e) => {
                // Its batches are retried like after a lost connection, so that every
                // delivery still resolves (at worst by its delivery timeout).
                warn!(error = %e, "produce request task failed");
                let Some((node, partitions)) = self.requests.remove(&e.id()) else {
                    return;
                };
                let error = Error::io(
                    &format!("node {node}"),
                    std::io::Error::other(format!("produce request task failed: {e}")),
                );
                let outcome = Outcome {
                    node,
                    partitions,
                    result: Err(error),
                    connection: None,
                };
                (e.id(), outcome)
            }
        };
        self.requests.remove(&id);
        self.complete(outcome, now);
    }

    /// Starts requests for ready partitions, per broker while it has a free slot.
    pub(super) fn drain(&mut self, now: Instant) {
        let flush_upto = self.flushes.iter().map(|(upto, _)| *upto).max();
        let batch_size = self.config.batch_size_bytes;
        let linger = self.config.linger;
        let closing = self.closing;
        let ready = |q: &PartitionQueue| {
            let Some(batch) = q.batches.front() else {
                return false;
            };
            if q.in_flight || q.backoff_until.is_some_and(|t| now < t) {
                return false;
            }
            matches!(batch.body, Body::Sealed { .. })
                || q.batches.len() > 1
                || batch.size_bytes >= batch_size
                || now >= batch.created + linger
                || closing
                || flush_upto.is_some_and(|upto| batch.first_serial <= upto)
        };
        let mut due: Vec<TopicPartition> = Vec::new();
        for topic in self.topics.values() {
            for (p, q) in topic.queues.iter().enumerate() {
                if ready(q) {
                    // p < partitions ≤ i32::MAX
                    due.push((
                        Arc::clone(&topic.name),
                        i32::try_from(p).unwrap_or(i32::MAX),
                    ));
                }
            }
        }
        if due.is_empty() {
            return;
        }
        due.sort();
        let metadata = self.cluster.metadata();
        let mut by_node: HashMap<i32, VecDeque<TopicPartition>> = HashMap::new();
        let mut need_metadata = false;
        for tp in due {
            match metadata.leader(&tp.0, tp.1) {
                Ok((node, _)) => by_node.entry(node).or_default().push_back(tp),
                Err(_) => need_metadata = true,
            }
        }
        if need_metadata {
            let topics: Vec<String> = self.topics.keys().cloned().collect();
            self.refresh_in_background(topics, now);
        }
        let limit = self.in_flight_limit();
        for (node, mut partitions) in by_node {
            while !partitions.is_empty() && self.nodes.get(&node).map_or(0, |n| n.in_flight) < limit
            {
                self.send_to(node, &mut partitions);
            }
        }
    }

    /// Requests outstanding per broker: one with acks=0, whose ordering rests on a
    /// single connection (see the module guarantees).
    pub(super) fn in_flight_limit(&self) -> usize {
        if self.config.acks == Acks::None {
            1
        } else {
            self.config.max_in_flight_requests
        }
    }

    /// Closes (first attempt) or re-stamps (after a producer id renewal) the front
    /// batches of `partitions` and sends as many as fit `max_request_bytes` to `node`
    /// in one Produce request; the rest stay in `partitions`.
    pub(super) fn send_to(&mut self, node: i32, partitions: &mut VecDeque<TopicPartition>) {
        let mut request_bytes = 0usize;
        let mut topic_data: Vec<TopicProduceData> = Vec::new();
        let mut sent: Vec<TopicPartition> = Vec::new();
        while let Some(tp) = partitions.pop_front() {
            let Some(bytes) = self.prepare(&tp) else {
                continue;
            };
            if !sent.is_empty() && request_bytes + bytes.len() > self.config.max_request_bytes {
                partitions.push_front(tp);
                break;
            }
            let Some(queue) = self.queue_mut(&tp) else {
                continue;
            };
            let Some(batch) = queue.batches.front_mut() else {
                continue;
            };
            request_bytes += bytes.len();
            queue.in_flight = true;
            batch.attempts += 1;
            let data = PartitionProduceData::default()
                .with_index(tp.1)
                .with_records(Some(bytes));
            match topic_data.iter_mut().find(|t| t.name.0.as_str() == &*tp.0) {
                Some(t) => t.partition_data.push(data),
                None => topic_data.push(
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(tp.0.to_string())))
                        .with_partition_data(vec![data]),
                ),
            }
            sent.push(tp);
        }
        if sent.is_empty() {
            return;
        }
        let timeout_ms =
            i32::try_from(self.cluster.request_timeout().as_millis()).unwrap_or(i32::MAX);
        let request = ProduceRequest::default()
            .with_transactional_id(None)
            .with_acks(self.config.acks.value())
            .with_timeout_ms(timeout_ms)
            .with_topic_data(topic_data);
        let cluster = Arc::clone(&self.cluster);
        let acks = self.config.acks;
        let slot = self.nodes.entry(node).or_default();
        slot.in_flight += 1;
        let connection = slot.idle.pop();
        let carried = sent.clone();
        let task = self.in_flight.spawn(async move {
            let (result, connection) = produce(&cluster, node, connection, acks, &request).await;
            Outcome {
                node,
                partitions: sent,
                result,
                connection,
            }
        });
        self.requests.insert(task.id(), (node, carried));
    }

    /// The bytes of `tp`'s front batch ready to send: closed on its first attempt (its
    /// sequence numbers taken), re-stamped after a producer id renewal. A batch that
    /// cannot be encoded fails and is dropped.
    pub(super) fn prepare(&mut self, tp: &TopicPartition) -> Option<Bytes> {
        let identity = self.identity;
        let compression = self.config.compression;
        let queue = self.queue_mut(tp)?;
        let batch = queue.batches.front_mut()?;
        let base_sequence = queue.next_sequence;
        let sealed = match std::mem::replace(
            &mut batch.body,
            Body::Sealed {
                bytes: Bytes::new(),
                stale_sequence: true,
            },
        ) {
            Body::Open(builder) => builder.finish(identity, base_sequence, compression),
            Body::Sealed {
                bytes,
                stale_sequence: true,
            } => restamp(&bytes, identity, base_sequence),
            Body::Sealed {
                bytes,
                stale_sequence: false,
            } => {
                batch.body = Body::Sealed {
                    bytes: bytes.clone(),
                    stale_sequence: false,
                };
                return Some(bytes);
            }
        };
        match sealed {
            Ok(bytes) => {
                queue.last_batch_bytes = bytes.len();
                if identity.is_some() {
                    let count = i32::try_from(batch.records.len()).unwrap_or(i32::MAX);
                    queue.next_sequence = base_sequence.wrapping_add(count) & i32::MAX;
                }
                batch.body = Body::Sealed {
                    bytes: bytes.clone(),
                    stale_sequence: false,
                };
                Some(bytes)
            }
            Err(e) => {
                let batch = queue.batches.pop_front()?;
                self.buffered_bytes -= batch.size_bytes;
                fail(batch, &e);
                None
            }
        }
    }

    pub(super) fn queue_mut(&mut self, tp: &TopicPartition) -> Option<&mut PartitionQueue> {
        let p = usize::try_from(tp.1).ok()?;
        self.topics.get_mut(&*tp.0)?.queues.get_mut(p)
    }

    /// Applies a request's outcome to each of its partitions.
    pub(super) fn complete(&mut self, outcome: Outcome, now: Instant) {
        let slot = self.nodes.entry(outcome.node).or_default();
        slot.in_flight = slot.in_flight.saturating_sub(1);
        if let Some(connection) = outcome.connection {
            slot.idle.push(connection);
        }
        for tp in outcome.partitions {
            let result = match &outcome.result {
                Err(e) => Err(e.clone()),
                Ok(None) => Ok(None), // acks=0
                Ok(Some(response)) => partition_result(response, &tp),
            };
            self.complete_partition(&tp, result, now);
        }
    }

    pub(super) fn complete_partition(
        &mut self,
        tp: &TopicPartition,
        result: Result<Option<i64>>,
        now: Instant,
    ) {
        let identity = self.identity;
        let config = &self.config;
        let Some(queue) = usize::try_from(tp.1)
            .ok()
            .and_then(|p| self.topics.get_mut(&*tp.0)?.queues.get_mut(p))
        else {
            return;
        };
        queue.in_flight = false;
        let Some(batch) = queue.batches.front_mut() else {
            return;
        };
        let e = match result {
            Ok(base_offset) => {
                queue.backoff_until = None;
                if let Some(batch) = queue.batches.pop_front() {
                    self.buffered_bytes -= batch.size_bytes;
                    succeed(batch, tp, base_offset);
                }
                return;
            }
            Err(e) => e,
        };
        let elapsed = now.saturating_duration_since(batch.created);
        let retry = e.is_retriable()
            && batch.attempts <= config.retries
            && elapsed < config.delivery_timeout;
        if retry {
            let shift = batch.attempts.saturating_sub(1).min(16);
            let backoff = config
                .retry_backoff
                .saturating_mul(1 << shift)
                .min(config.retry_backoff_max);
            debug!(topic = %tp.0, partition = tp.1, attempts = batch.attempts, error = %e, ?backoff, "retrying batch");
            batch.last_error = Some(e);
            queue.backoff_until = Some(now + backoff);
            self.refresh_in_background(vec![tp.0.to_string()], now);
            return;
        }
        let error = if e.is_retriable() {
            Error::DeliveryTimeout {
                topic: tp.0.to_string(),
                partition: tp.1,
                timeout: config.delivery_timeout,
                last_error: e.to_string(),
            }
        } else {
            e
        };
        queue.backoff_until = None;
        if let Some(batch) = queue.batches.pop_front() {
            self.buffered_bytes -= batch.size_bytes;
            // The broker may hold part of this partition's sequence range.
            if identity.is_some() && batch.sent_with_sequence() {
                self.needs_reset = true;
            }
            fail(batch, &error);
        }
    }

    /// After an idempotent batch failed for good the partition's sequence numbers can
    /// no longer be trusted: take a new producer id and restart every sequence at 0,
    /// re-stamping batches that were sent but not acknowledged.
    pub(super) async fn reset_producer_id(&mut self) {
        match init_producer_id(&self.cluster).await {
            Ok(identity) => {
                self.identity = Some(identity);
                for topic in self.topics.values_mut() {
                    for queue in &mut topic.queues {
                        queue.next_sequence = 0;
                        for batch in &mut queue.batches {
                            if let Body::Sealed { stale_sequence, .. } = &mut batch.body {
                                *stale_sequence = true;
                            }
                        }
                    }
                }
                self.needs_reset = false;
            }
            Err(e) => {
                warn!(error = %e, "cannot renew the producer id; retrying");
                tokio::time::sleep(self.config.retry_backoff).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    fn response(code: i16, base_offset: i64) -> ProduceResponse {
        ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_responses(vec![PartitionProduceResponse::default()
                .with_index(1)
                .with_error_code(code)
                .with_base_offset(base_offset)])])
    }

    #[test]
    fn duplicates_count_as_success_and_errors_map() {
        let tp: TopicPartition = (Arc::from("t"), 1);
        assert_eq!(partition_result(&response(0, 40), &tp).unwrap(), Some(40));
        assert_eq!(
            partition_result(&response(DUPLICATE_SEQUENCE_NUMBER, 40), &tp).unwrap(),
            Some(40)
        );
        assert_eq!(
            partition_result(&response(DUPLICATE_SEQUENCE_NUMBER, -1), &tp).unwrap(),
            None
        );
        let e = partition_result(&response(6, -1), &tp).unwrap_err();
        assert!(e.is_retriable(), "NOT_LEADER_OR_FOLLOWER retries");
        let e = partition_result(&response(10, -1), &tp).unwrap_err();
        assert!(!e.is_retriable(), "MESSAGE_TOO_LARGE does not");
        let e = partition_result(&response(0, 0), &(Arc::from("t"), 2)).unwrap_err();
        assert_eq!(e.kafka_code(), Some(3));
    }
}
