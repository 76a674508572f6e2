//! The sending half of the producer's task: ready batches drained per leader into
//! Produce requests on the broker's pipelined connection (up to
//! `max_in_flight_requests` requests per broker, and as many batches per partition,
//! one per request), and their answers settled by the rules of `in_flight`: offsets
//! delivered, refused batches resent in order after a backoff, the rest failed; an
//! idempotent producer renews its id after a batch whose outcome is unknown failed.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, warn};

use crate::batch::restamp;
use crate::connection::{PendingResponse, PendingWrite};
use crate::error::{Error, Result, DUPLICATE_SEQUENCE_NUMBER};
use crate::record::RecordMetadata;

use super::accumulator::{Accumulator, Batch, Body, PartitionQueue, TopicPartition};
use super::in_flight::{Attempt, SettleContext, Settled};
use super::{init_producer_id, Acks};

/// A request's answer, awaited on the producer's task.
pub(super) type InFlightRequest = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// What one request reports back: each partition with the serial of the batch it
/// carried, and the answer.
pub(super) struct Outcome {
    pub(super) node: i32,
    pub(super) partitions: Vec<(TopicPartition, u64)>,
    /// The request was handed to a connection: a failure without answer may have left
    /// its batches stored.
    pub(super) sent: bool,
    pub(super) result: Result<Option<ProduceResponse>>,
}

/// A request queued on a connection: its answer, or (acks=0) its write.
enum Sent {
    Answer(PendingResponse<ProduceResponse>),
    Written(PendingWrite),
}

impl Sent {
    async fn outcome(sent: Result<Sent>) -> Result<Option<ProduceResponse>> {
        match sent? {
            Sent::Answer(answer) => answer.await.map(Some),
            Sent::Written(written) => written.await.map(|()| None),
        }
    }
}

/// When a partition's next batch is due (its partition free to send it).
struct Due {
    now: Instant,
    limit: usize,
    batch_size: usize,
    linger: Duration,
    closing: bool,
    flush_upto: Option<u64>,
}

impl Due {
    fn due(&self, q: &PartitionQueue) -> bool {
        if !q.may_send(self.now, self.limit) {
            return false;
        }
        let Some(batch) = q.next_to_send() else {
            return false;
        };
        // While the partition has batches in flight its next batch waits, growing past
        // `batch_size` (`make_room`), until it is full at the grown size (a batch was
        // started behind it) or they are back: one request per round trip carries what
        // came during it, instead of many small ones, and only a load that fills a
        // grown batch within a round trip puts several in flight (up to `limit`).
        let idle = q.in_flight == 0;
        matches!(batch.body, Body::Sealed { .. })
            || q.batches.len() > q.in_flight + 1
            || (idle && batch.size_bytes >= self.batch_size)
            || (idle && self.now >= batch.created + self.linger)
            || self.closing
            || self
                .flush_upto
                .is_some_and(|upto| batch.first_serial <= upto)
    }
}

/// How a Produce response settles `tp`'s batch: its base offset, or its error.
pub(super) fn partition_result(response: &ProduceResponse, tp: &TopicPartition) -> Attempt {
    let p = response
        .responses
        .iter()
        .filter(|t| t.name.0.as_str() == &*tp.0)
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == tp.1);
    let Some(p) = p else {
        // Not an answer for the batch: as if it were lost.
        return Attempt::Lost(Error::Kafka {
            context: format!("produce to {}-{}", tp.0, tp.1),
            code: crate::error::KafkaCode(crate::error::UNKNOWN_TOPIC_OR_PARTITION),
            message: Some("the response does not mention the partition".into()),
        });
    };
    if p.error_code == DUPLICATE_SEQUENCE_NUMBER {
        return Attempt::Appended((p.base_offset >= 0).then_some(p.base_offset));
    }
    let checked = Error::check(
        p.error_code,
        || format!("produce to {}-{}", tp.0, tp.1),
        p.error_message.as_deref(),
    );
    match checked {
        Ok(()) => Attempt::Appended(Some(p.base_offset)),
        Err(e) => Attempt::Refused(e),
    }
}

/// The Produce request's `timeout_ms` (how long the broker may wait for replicas):
/// the client's request timeout less a margin of a tenth of it, at most 5 s, so that
/// the broker's REQUEST_TIMED_OUT arrives before the connection's own deadline (which
/// is the full request timeout, counted from the send) would break the connection and
/// fail every request in flight on it.
pub(super) fn produce_timeout_ms(request_timeout: Duration) -> i32 {
    let margin = (request_timeout / 10).min(Duration::from_secs(5));
    i32::try_from(request_timeout.saturating_sub(margin).as_millis()).unwrap_or(i32::MAX)
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
    /// Starts requests for partitions whose next batch is due, per broker while it has
    /// a free slot and an open connection (opening one if needed). A partition whose
    /// batches in flight went to another broker or connection waits for them.
    pub(super) fn drain(&mut self, now: Instant) {
        let due = Due {
            now,
            limit: self.config.in_flight_limit(),
            batch_size: self.config.batch_size_bytes,
            linger: self.config.linger,
            closing: self.closing,
            flush_upto: self.flushes.iter().map(|(upto, _)| *upto).max(),
        };
        let mut ready: Vec<TopicPartition> = Vec::new();
        for topic in self.topics.values() {
            for (p, q) in topic.queues.iter().enumerate() {
                if due.due(q) {
                    // p < partitions ≤ i32::MAX
                    let p = i32::try_from(p).unwrap_or(i32::MAX);
                    ready.push((Arc::clone(&topic.name), p));
                }
            }
        }
        if ready.is_empty() {
            return;
        }
        ready.sort();
        let metadata = self.cluster.metadata();
        let mut by_node: HashMap<i32, VecDeque<TopicPartition>> = HashMap::new();
        let mut need_metadata = false;
        for tp in ready {
            match metadata.leader(&tp.0, tp.1) {
                Ok((node, _)) => by_node.entry(node).or_default().push_back(tp),
                Err(_) => need_metadata = true,
            }
        }
        if need_metadata {
            let topics: Vec<String> = self.topics.keys().cloned().collect();
            self.refresh_in_background(topics, now);
        }
        for (node, partitions) in by_node {
            self.drain_node(node, partitions, &due);
        }
    }

    fn drain_node(&mut self, node: i32, mut partitions: VecDeque<TopicPartition>, due: &Due) {
        let Some(link) = self.links.usable(node, &self.cluster, due.now) else {
            // Not connected: say why, should the batches expire waiting.
            if let Some(e) = self.links.last_error(node).cloned() {
                for tp in &partitions {
                    let next = self.queue_mut(tp).and_then(|q| {
                        let index = q.in_flight;
                        q.batches.get_mut(index)
                    });
                    if let Some(b) = next {
                        b.last_error.get_or_insert_with(|| e.clone());
                    }
                }
            }
            return;
        };
        partitions.retain(|tp| {
            let pinned = |q: &PartitionQueue| q.pinned_elsewhere(node, Some(link));
            !self.queue(tp).is_some_and(pinned)
        });
        while !partitions.is_empty() && self.links.in_flight(node) < due.limit {
            self.send_to(node, link, &mut partitions, due);
        }
    }

    /// Closes (first attempt) or re-stamps (after a producer id renewal) the next
    /// batches of `partitions` and sends as many as fit `max_request_bytes` to `node`
    /// in one Produce request on its connection `link`. The partitions not taken stay
    /// in `partitions`, and so do those whose following batch is due too.
    fn send_to(
        &mut self,
        node: i32,
        link: u64,
        partitions: &mut VecDeque<TopicPartition>,
        due: &Due,
    ) {
        let mut request_bytes = 0usize;
        let mut topic_data: Vec<TopicProduceData> = Vec::new();
        let mut sent: Vec<(TopicPartition, u64)> = Vec::new();
        let mut again: Vec<TopicPartition> = Vec::new();
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
            let Some(serial) = queue.next_to_send().map(|b| b.first_serial) else {
                continue;
            };
            queue.mark_sent(node, link);
            if due.due(queue) {
                again.push(tp.clone());
            }
            request_bytes += bytes.len();
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
            sent.push((tp, serial));
        }
        partitions.extend(again);
        if !sent.is_empty() {
            self.start_request(node, topic_data, sent);
        }
    }

    /// Queues the request on `node`'s connection and adds its answer (or, with
    /// acks=0, its write) to those the producer's task awaits.
    fn start_request(
        &mut self,
        node: i32,
        topic_data: Vec<TopicProduceData>,
        sent: Vec<(TopicPartition, u64)>,
    ) {
        let timeout_ms = produce_timeout_ms(self.cluster.request_timeout());
        let request = ProduceRequest::default()
            .with_transactional_id(self.transactional_id.clone())
            .with_acks(self.config.acks.value())
            .with_timeout_ms(timeout_ms)
            .with_topic_data(topic_data);
        let queued = match self.links.pipeline(node) {
            Some(p) if self.config.acks == Acks::None => {
                p.send_no_response(&request).map(Sent::Written)
            }
            Some(p) => p.send(&request).map(Sent::Answer),
            // `drain_node` found it open, and nothing closed it since.
            None => Err(Error::Connect {
                addr: format!("node {node}"),
                reason: "no connection".into(),
            }),
        };
        self.links.request_started(node);
        let handed = queued.is_ok();
        self.in_flight.push(Box::pin(async move {
            Outcome {
                node,
                partitions: sent,
                sent: handed,
                result: Sent::outcome(queued).await,
            }
        }));
    }

    /// The bytes of `tp`'s next batch to send: closed on its first attempt, re-stamped
    /// after a producer id renewal or a gap closed before it, else as sent before. An
    /// idempotent batch takes its sequence numbers when first stamped under the current
    /// producer id; stamping sequence 0 holds the partition to one batch in flight until
    /// one is acknowledged. A batch that cannot be encoded fails and is dropped.
    pub(super) fn prepare(&mut self, tp: &TopicPartition) -> Option<Bytes> {
        let identity = self.identity;
        let compression = self.config.compression;
        let queue = self.queue_mut(tp)?;
        let index = queue.in_flight;
        let batch = queue.batches.get_mut(index)?;
        let base_sequence = batch.sequence.unwrap_or(queue.next_sequence);
        let stale = Body::Sealed {
            bytes: Bytes::new(),
            stale_sequence: true,
        };
        let sealed = match std::mem::replace(&mut batch.body, stale) {
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
                    if batch.sequence.is_none() {
                        let count = i32::try_from(batch.records.len()).unwrap_or(i32::MAX);
                        queue.next_sequence = base_sequence.wrapping_add(count) & i32::MAX;
                        batch.sequence = Some(base_sequence);
                    }
                    queue.awaiting_first_ack |= base_sequence == 0;
                }
                batch.body = Body::Sealed {
                    bytes: bytes.clone(),
                    stale_sequence: false,
                };
                Some(bytes)
            }
            Err(e) => {
                let batch = queue.batches.remove(index)?;
                queue.leave_gap(&batch);
                queue.close_gaps();
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

    fn queue(&self, tp: &TopicPartition) -> Option<&PartitionQueue> {
        let p = usize::try_from(tp.1).ok()?;
        self.topics.get(&*tp.0)?.queues.get(p)
    }

    /// Applies a request's outcome to each of its partitions.
    pub(super) fn complete(&mut self, outcome: Outcome, now: Instant) {
        self.links.request_finished(outcome.node);
        for (tp, serial) in outcome.partitions {
            let attempt = match &outcome.result {
                Err(e) if outcome.sent => Attempt::Lost(e.clone()),
                Err(e) => Attempt::Refused(e.clone()),
                Ok(None) => Attempt::Appended(None), // acks=0
                Ok(Some(response)) => partition_result(response, &tp),
            };
            self.complete_partition(&tp, serial, attempt, now);
        }
    }

    /// Settles the batch `serial` of `tp` with its answer (see `in_flight`).
    pub(super) fn complete_partition(
        &mut self,
        tp: &TopicPartition,
        serial: u64,
        attempt: Attempt,
        now: Instant,
    ) {
        let cx = SettleContext {
            config: &self.config,
            idempotent: self.identity.is_some(),
            renewing: self.needs_reset,
            now,
        };
        let Some(queue) = usize::try_from(tp.1)
            .ok()
            .and_then(|p| self.topics.get_mut(&*tp.0)?.queues.get_mut(p))
        else {
            return;
        };
        let settled = queue.settle(serial, attempt, &cx);
        // The partition's batches may be all back: its front one expires from now on.
        if let Some(expires) = queue.expires_at(self.config.delivery_timeout) {
            self.next_expiry = Some(self.next_expiry.map_or(expires, |t| t.min(expires)));
        }
        match settled {
            Settled::Unknown => {}
            Settled::Acknowledged(batch, base_offset) => {
                self.buffered_bytes -= batch.size_bytes;
                succeed(batch, tp, base_offset);
            }
            Settled::Retry => {
                debug!(topic = %tp.0, partition = tp.1, serial, backoff_until = ?queue.backoff_until, "retrying batch");
                self.refresh_in_background(vec![tp.0.to_string()], now);
            }
            Settled::Failed {
                batch,
                error,
                renew_id,
            } => {
                self.buffered_bytes -= batch.size_bytes;
                self.needs_reset |= renew_id;
                let error = if error.is_retriable() {
                    Error::DeliveryTimeout {
                        topic: tp.0.to_string(),
                        partition: tp.1,
                        timeout: self.config.delivery_timeout,
                        last_error: error.to_string(),
                    }
                } else {
                    error
                };
                fail(batch, &error);
            }
        }
    }

    /// After a batch whose outcome is unknown failed (or the broker's sequence state
    /// disagreed): takes a new producer id, fails every pending batch that may be
    /// stored under the old one (with the error its unanswered attempt got), and lets
    /// the others take sequence numbers from 0 under the new id (see `in_flight`).
    /// Nothing is in flight: this waits for every request to be settled.
    pub(super) async fn reset_producer_id(&mut self) {
        if self.identity.is_some_and(|id| id.transactional) {
            self.fail_transaction();
            return;
        }
        match init_producer_id(&self.cluster).await {
            Ok(identity) => {
                self.identity = Some(identity);
                let mut unknown = Vec::new();
                for topic in self.topics.values_mut() {
                    for (p, queue) in topic.queues.iter_mut().enumerate() {
                        let p = i32::try_from(p).unwrap_or(i32::MAX);
                        let tp = (Arc::clone(&topic.name), p);
                        unknown.extend(queue.renew().into_iter().map(|b| (tp.clone(), b)));
                    }
                }
                for ((topic, partition), mut batch) in unknown {
                    debug!(%topic, partition, serial = batch.first_serial, "outcome unknown at a producer id renewal");
                    self.buffered_bytes -= batch.size_bytes;
                    let error = batch.maybe_stored.take().unwrap_or_else(|| {
                        let unknown = std::io::Error::other("outcome unknown");
                        Error::io(&format!("{topic}-{partition}"), unknown)
                    });
                    fail(batch, &error);
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

impl Accumulator {
    /// A transactional producer's counterpart of a producer id renewal: its id and
    /// epoch are the coordinator's to change, so every pending batch fails (with the
    /// error of its unanswered attempt, if any) and the partitions start their
    /// sequences again. The transaction must be aborted; its producer then takes a
    /// bumped epoch.
    fn fail_transaction(&mut self) {
        for topic in self.topics.values_mut() {
            for (p, queue) in topic.queues.iter_mut().enumerate() {
                let failed = std::mem::take(&mut queue.batches);
                queue.renew();
                for mut batch in failed {
                    self.buffered_bytes -= batch.size_bytes;
                    let error = batch
                        .maybe_stored
                        .take()
                        .or_else(|| batch.last_error.take())
                        .unwrap_or_else(|| Error::TransactionAborted {
                            partition: format!("{}-{p}", topic.name),
                        });
                    fail(batch, &error);
                }
            }
        }
        self.needs_reset = false;
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

    fn offset(attempt: Attempt) -> Option<i64> {
        match attempt {
            Attempt::Appended(offset) => offset,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duplicates_count_as_success_and_errors_map() {
        let tp: TopicPartition = (Arc::from("t"), 1);
        assert_eq!(offset(partition_result(&response(0, 40), &tp)), Some(40));
        let duplicate = partition_result(&response(DUPLICATE_SEQUENCE_NUMBER, 40), &tp);
        assert_eq!(offset(duplicate), Some(40));
        let duplicate = partition_result(&response(DUPLICATE_SEQUENCE_NUMBER, -1), &tp);
        assert_eq!(offset(duplicate), None);
        let refused = |code| match partition_result(&response(code, -1), &tp) {
            Attempt::Refused(e) => e,
            other => panic!("{other:?}"),
        };
        assert!(refused(6).is_retriable(), "NOT_LEADER_OR_FOLLOWER retries");
        assert!(!refused(10).is_retriable(), "MESSAGE_TOO_LARGE does not");
        // A response without the partition is no answer for its batch.
        let missing = partition_result(&response(0, 0), &(Arc::from("t"), 2));
        assert!(matches!(missing, Attempt::Lost(ref e) if e.kafka_code() == Some(3)));
    }

    #[test]
    fn the_broker_times_a_produce_out_before_the_connection_does() {
        let ms = |d: Duration| produce_timeout_ms(d);
        assert_eq!(ms(Duration::from_secs(30)), 27_000, "a tenth of it");
        assert_eq!(ms(Duration::from_secs(120)), 115_000, "at most 5 s");
        assert_eq!(ms(Duration::from_millis(100)), 90);
        assert_eq!(ms(Duration::from_secs(u64::MAX / 4)), i32::MAX);
    }
}
