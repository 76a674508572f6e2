//! The producer: records are partitioned, gathered into one batch per partition until
//! the batch holds `batch_size_bytes` or is `linger` old, then sent to the partition's
//! leader, at most one request per broker and one batch per partition in flight.
//!
//! Guarantees:
//! - Per partition, records are written in the order `send`/`enqueue` was called, also
//!   across retries (one batch in flight per partition).
//! - With idempotence (acks=all), a retried batch carries the same producer id, epoch
//!   and sequence, so the broker never stores it twice; DUPLICATE_SEQUENCE_NUMBER counts
//!   as success.
//! - Every record's [`Delivery`] resolves exactly once: with its partition and offset
//!   when acknowledged, or with the error that ended its retries (non-retriable error,
//!   `retries` exhausted, or `delivery_timeout` passed).
//! - Memory is bounded: `send` waits while `buffer_bytes` of records are unacknowledged.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

use crate::batch::{encode_batch, BatchRecord, ProducerIdentity, BATCH_HEADER_BYTES};
use crate::cluster::Cluster;
use crate::error::{Error, Result, DUPLICATE_SEQUENCE_NUMBER};
use crate::partitioner::{partition_for_key, NullKeyPartitioning, NullKeyState};
use crate::record::{Compression, ProducerRecord, RecordMetadata};

/// Records that may wait in the channel between `send` and the producer task.
const COMMAND_QUEUE_RECORDS: usize = 1024;
/// How often metadata of the topics written to is refreshed even without errors, so
/// added partitions and moved leaders are seen (Java's `metadata.max.age.ms`).
const METADATA_MAX_AGE: Duration = Duration::from_secs(300);

/// How many replicas must have a batch before the broker acknowledges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: no answer; offsets are unknown and failures unseen.
    None,
    /// acks=1: the leader has appended it.
    Leader,
    /// acks=all (-1): committed by the partition's replicas.
    All,
}

impl Acks {
    /// The wire value.
    pub fn value(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Producer settings; names follow the Java client's where it has the concept.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `acks`.
    pub acks: Acks,
    /// `enable.idempotence`; needs [`Acks::All`].
    pub idempotent: bool,
    /// `linger.ms`: how long a batch waits for more records.
    pub linger: Duration,
    /// `batch.size`: a batch is sent once it holds this many bytes.
    pub batch_size_bytes: usize,
    /// `max.request.size`: bound on one Produce request; larger records are refused.
    pub max_request_bytes: usize,
    /// `buffer.memory`: unacknowledged record bytes before `send` waits.
    pub buffer_bytes: usize,
    /// `compression.type`.
    pub compression: Compression,
    /// `retries`: resends of a batch after retriable errors.
    pub retries: u32,
    /// `retry.backoff.ms`: first wait before a resend; doubles per attempt.
    pub retry_backoff: Duration,
    /// `retry.backoff.max.ms`.
    pub retry_backoff_max: Duration,
    /// `delivery.timeout.ms`: bound on the time from `send` to the outcome.
    pub delivery_timeout: Duration,
    /// How records without key or partition are spread.
    pub null_key_partitioning: NullKeyPartitioning,
    /// Ask brokers to create unknown topics (`allow.auto.create.topics`).
    pub allow_auto_create_topics: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            idempotent: true,
            linger: Duration::from_millis(5),
            batch_size_bytes: 16 * 1024,
            max_request_bytes: 1024 * 1024,
            buffer_bytes: 32 * 1024 * 1024,
            compression: Compression::None,
            retries: u32::MAX,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            delivery_timeout: Duration::from_secs(120),
            null_key_partitioning: NullKeyPartitioning::Sticky,
            allow_auto_create_topics: true,
        }
    }
}

/// The outcome of one record, resolved once: see the module guarantees.
#[derive(Debug)]
pub struct Delivery {
    rx: oneshot::Receiver<Result<RecordMetadata>>,
}

impl Future for Delivery {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::ProducerClosed)))
    }
}

type Reply = oneshot::Sender<Result<RecordMetadata>>;

enum Command {
    Send(ProducerRecord, Reply),
    Flush(oneshot::Sender<()>),
}

/// An async producer. Cheap to share by reference across tasks; dropping it lets the
/// background task finish what is buffered, [`Producer::close`] waits for that.
#[derive(Debug)]
pub struct Producer {
    tx: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

impl Producer {
    /// Starts a producer. With idempotence it first obtains a producer id
    /// (InitProducerId), so a broker without it fails here, not on the first send.
    pub async fn new(cluster: Arc<Cluster>, config: ProducerConfig) -> Result<Producer> {
        validate(&config)?;
        let identity = if config.idempotent {
            Some(init_producer_id(&cluster).await?)
        } else {
            None
        };
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE_RECORDS);
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let task = tokio::spawn(
            Accumulator {
                cluster,
                config,
                rx,
                identity,
                seed,
                topics: HashMap::new(),
                unassigned: VecDeque::new(),
                queues: HashMap::new(),
                in_flight: JoinSet::new(),
                busy_nodes: HashSet::new(),
                flushes: Vec::new(),
                buffered_bytes: 0,
                next_serial: 0,
                needs_reset: false,
                closing: false,
                next_metadata_refresh: Instant::now(),
                next_background_refresh: Instant::now(),
                last_age_refresh: Instant::now(),
            }
            .run(),
        );
        Ok(Producer { tx, task })
    }

    /// Hands `record` to the producer and returns its [`Delivery`] without waiting for
    /// the broker. Waits only while the buffer is full.
    pub async fn enqueue(&self, record: ProducerRecord) -> Result<Delivery> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Send(record, reply))
            .await
            .map_err(|_| Error::ProducerClosed)?;
        Ok(Delivery { rx })
    }

    /// Sends `record` and waits until it is acknowledged (or has failed for good).
    pub async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        self.enqueue(record).await?.await
    }

    /// Sends every buffered record now and returns when all records enqueued before
    /// this call have their outcome.
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Flush(tx))
            .await
            .map_err(|_| Error::ProducerClosed)?;
        rx.await.map_err(|_| Error::ProducerClosed)
    }

    /// Flushes, then stops the background task.
    pub async fn close(self) -> Result<()> {
        let Producer { tx, task } = self;
        drop(tx);
        task.await.map_err(|_| Error::ProducerClosed)
    }
}

fn validate(config: &ProducerConfig) -> Result<()> {
    let bad = |why: &str| Err(Error::InvalidArgument(why.to_string()));
    if config.idempotent && config.acks != Acks::All {
        return bad("idempotence needs acks=all");
    }
    if config.batch_size_bytes == 0 || config.max_request_bytes <= BATCH_HEADER_BYTES {
        return bad("batch size and max request size must leave room for records");
    }
    if config.buffer_bytes < config.max_request_bytes {
        return bad("buffer_bytes must hold at least one maximal request");
    }
    Ok(())
}

async fn init_producer_id(cluster: &Cluster) -> Result<ProducerIdentity> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(-1);
    let response = cluster.send_any(&request).await?;
    Error::check(response.error_code, || "InitProducerId".to_string(), None)?;
    debug!(
        producer_id = response.producer_id.0,
        epoch = response.producer_epoch,
        "producer id"
    );
    Ok(ProducerIdentity {
        producer_id: response.producer_id.0,
        producer_epoch: response.producer_epoch,
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

type TopicPartition = (String, i32);

/// A record waiting in a batch.
struct Pending {
    record: BatchRecord,
    size_bytes: usize,
    serial: u64,
    reply: Reply,
}

/// A record whose topic's partition count is not known yet.
struct Unassigned {
    record: ProducerRecord,
    size_bytes: usize,
    serial: u64,
    reply: Reply,
    since: Instant,
}

/// The bytes of a batch as first sent, reused verbatim by every retry.
struct Encoded {
    bytes: Bytes,
}

struct Batch {
    records: Vec<Pending>,
    size_bytes: usize,
    created: Instant,
    attempts: u32,
    encoded: Option<Encoded>,
    last_error: Option<Error>,
}

impl Batch {
    fn min_serial(&self) -> u64 {
        self.records.first().map_or(u64::MAX, |r| r.serial)
    }
}

#[derive(Default)]
struct PartitionQueue {
    batches: VecDeque<Batch>,
    in_flight: bool,
    next_sequence: i32,
    backoff_until: Option<Instant>,
}

struct TopicState {
    partitions: i32,
    null_key: NullKeyState,
}

/// What one request task reports back.
struct Outcome {
    node: i32,
    partitions: Vec<TopicPartition>,
    result: Result<Option<ProduceResponse>>,
}

/// The producer's background task: owns every buffered record.
struct Accumulator {
    cluster: Arc<Cluster>,
    config: ProducerConfig,
    rx: mpsc::Receiver<Command>,
    identity: Option<ProducerIdentity>,
    seed: u32,
    topics: HashMap<String, TopicState>,
    unassigned: VecDeque<Unassigned>,
    queues: HashMap<TopicPartition, PartitionQueue>,
    in_flight: JoinSet<Outcome>,
    busy_nodes: HashSet<i32>,
    /// Flush waiters with the last serial they cover.
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    buffered_bytes: usize,
    next_serial: u64,
    /// An idempotent batch failed for good: get a new producer id before sending more.
    needs_reset: bool,
    closing: bool,
    /// Earliest time for the next metadata request for topic-less records.
    next_metadata_refresh: Instant,
    /// Earliest time for the next background refresh after leader errors.
    next_background_refresh: Instant,
    /// When the topics' metadata was last refreshed because of its age.
    last_age_refresh: Instant,
}

impl Accumulator {
    async fn run(mut self) {
        loop {
            self.expire();
            if self.needs_reset && self.in_flight.is_empty() {
                self.reset_producer_id().await;
            }
            self.assign_unassigned().await;
            self.refresh_if_old();
            if !self.needs_reset {
                self.drain();
            }
            self.finish_flushes();
            if self.closing && self.is_idle() {
                return;
            }
            let wake = self.next_wakeup();
            let accepting = !self.closing && self.buffered_bytes < self.config.buffer_bytes;
            tokio::select! {
                command = self.rx.recv(), if accepting => match command {
                    Some(Command::Send(record, reply)) => self.append(record, reply),
                    Some(Command::Flush(done)) => {
                        let upto = self.next_serial;
                        self.flushes.push((upto, done));
                    }
                    None => self.closing = true,
                },
                Some(joined) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    match joined {
                        Ok(outcome) => self.complete(outcome),
                        Err(e) => warn!(error = %e, "produce request task failed"),
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
            && self.unassigned.is_empty()
            && self.queues.values().all(|q| q.batches.is_empty())
    }

    fn append(&mut self, record: ProducerRecord, reply: Reply) {
        let size_bytes = record.size_estimate_bytes();
        if size_bytes + BATCH_HEADER_BYTES > self.config.max_request_bytes {
            let _ = reply.send(Err(Error::InvalidArgument(format!(
                "a record of about {size_bytes} bytes exceeds max_request_bytes {}",
                self.config.max_request_bytes
            ))));
            return;
        }
        self.next_serial += 1;
        self.buffered_bytes += size_bytes;
        let unassigned = Unassigned {
            record,
            size_bytes,
            serial: self.next_serial,
            reply,
            since: Instant::now(),
        };
        if self.topics.contains_key(&unassigned.record.topic) {
            self.assign(unassigned);
        } else {
            self.unassigned.push_back(unassigned);
        }
    }

    /// Puts a record whose topic is known into its partition's open batch.
    fn assign(&mut self, u: Unassigned) {
        let Some(topic) = self.topics.get_mut(&u.record.topic) else {
            self.unassigned.push_back(u);
            return;
        };
        let partitions = topic.partitions;
        let partition = match (u.record.partition, &u.record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => topic.null_key.choose(
                self.config.null_key_partitioning,
                partitions,
                u.size_bytes,
                self.config.batch_size_bytes,
            ),
        };
        if partition < 0 || partition >= partitions {
            self.buffered_bytes -= u.size_bytes;
            let _ = u.reply.send(Err(Error::UnknownPartition {
                topic: u.record.topic,
                partition,
                partitions,
            }));
            return;
        }
        let record = BatchRecord {
            key: u.record.key,
            value: u.record.value,
            headers: u.record.headers,
            timestamp_ms: u.record.timestamp_ms.unwrap_or_else(now_ms),
        };
        let pending = Pending {
            record,
            size_bytes: u.size_bytes,
            serial: u.serial,
            reply: u.reply,
        };
        let limit = self.config.batch_size_bytes;
        let request_limit = self.config.max_request_bytes - BATCH_HEADER_BYTES;
        let queue = self.queues.entry((u.record.topic, partition)).or_default();
        let open = queue.batches.back_mut().filter(|b| {
            b.encoded.is_none()
                && b.size_bytes + pending.size_bytes <= limit.max(pending.size_bytes)
                && b.size_bytes + pending.size_bytes <= request_limit
        });
        match open {
            Some(batch) => {
                batch.size_bytes += pending.size_bytes;
                batch.records.push(pending);
            }
            None => queue.batches.push_back(Batch {
                size_bytes: pending.size_bytes,
                records: vec![pending],
                created: Instant::now(),
                attempts: 0,
                encoded: None,
                last_error: None,
            }),
        }
    }

    /// Learns the partition counts of topics that records wait for (rate-limited to one
    /// metadata request per retry backoff), and assigns those records.
    async fn assign_unassigned(&mut self) {
        if self.unassigned.is_empty() || Instant::now() < self.next_metadata_refresh {
            return;
        }
        let mut wanted: Vec<String> = self
            .unassigned
            .iter()
            .map(|u| u.record.topic.clone())
            .collect();
        wanted.sort();
        wanted.dedup();
        self.next_metadata_refresh = Instant::now() + self.config.retry_backoff;
        let refreshed = self
            .cluster
            .refresh_metadata(Some(&wanted), self.config.allow_auto_create_topics)
            .await;
        let metadata = self.cluster.metadata();
        for name in &wanted {
            if let Ok(count) = metadata.partition_count(name) {
                if count > 0 {
                    let start = self.seed.wrapping_add(self.topics.len() as u32);
                    self.topics.entry(name.clone()).or_insert(TopicState {
                        partitions: count,
                        null_key: NullKeyState::starting_at(start),
                    });
                }
            }
        }
        let waiting = std::mem::take(&mut self.unassigned);
        for u in waiting {
            if self.topics.contains_key(&u.record.topic) {
                self.assign(u);
            } else if u.since.elapsed() >= self.config.delivery_timeout {
                self.buffered_bytes -= u.size_bytes;
                let error = match (&refreshed, metadata.topic(&u.record.topic)) {
                    (Err(e), _) => e.clone(),
                    (_, Err(e)) => e,
                    (_, Ok(_)) => Error::UnknownTopic {
                        topic: u.record.topic.clone(),
                    },
                };
                let _ = u.reply.send(Err(error));
            } else {
                self.unassigned.push_back(u);
            }
        }
    }

    /// Whether the front batch of `queue` should go now.
    fn ready(&self, queue: &PartitionQueue, now: Instant) -> bool {
        let Some(batch) = queue.batches.front() else {
            return false;
        };
        if queue.in_flight || queue.backoff_until.is_some_and(|t| now < t) {
            return false;
        }
        batch.encoded.is_some()
            || queue.batches.len() > 1
            || batch.size_bytes >= self.config.batch_size_bytes
            || now >= batch.created + self.config.linger
            || self.closing
            || self
                .flushes
                .iter()
                .any(|(upto, _)| batch.min_serial() <= *upto)
    }

    /// Starts a request for every broker that is not busy and leads a ready partition.
    fn drain(&mut self) {
        let now = Instant::now();
        let metadata = self.cluster.metadata();
        let mut by_node: HashMap<i32, Vec<TopicPartition>> = HashMap::new();
        let mut need_metadata = false;
        let mut ready: Vec<TopicPartition> = self
            .queues
            .iter()
            .filter(|(_, q)| self.ready(q, now))
            .map(|(tp, _)| tp.clone())
            .collect();
        ready.sort();
        for tp in ready {
            match metadata.leader(&tp.0, tp.1) {
                Ok((node, _)) if !self.busy_nodes.contains(&node) => {
                    by_node.entry(node).or_default().push(tp)
                }
                Ok(_) => {}
                Err(_) => need_metadata = true,
            }
        }
        if need_metadata {
            let topics: Vec<String> = self.queues.keys().map(|tp| tp.0.clone()).collect();
            self.refresh_in_background(topics);
        }
        for (node, partitions) in by_node {
            self.send_to(node, partitions);
        }
    }

    /// Encodes (first attempt) and sends the front batches of `partitions` to `node`
    /// in one Produce request within `max_request_bytes`.
    fn send_to(&mut self, node: i32, partitions: Vec<TopicPartition>) {
        let mut request_bytes = 0usize;
        let mut topic_data: Vec<TopicProduceData> = Vec::new();
        let mut sent: Vec<TopicPartition> = Vec::new();
        for tp in partitions {
            let Some(queue) = self.queues.get_mut(&tp) else {
                continue;
            };
            let Some(batch) = queue.batches.front_mut() else {
                continue;
            };
            if batch.encoded.is_none() {
                let base_sequence = queue.next_sequence;
                let records: Vec<BatchRecord> =
                    batch.records.iter().map(|p| p.record.clone()).collect();
                match encode_batch(
                    &records,
                    self.identity,
                    base_sequence,
                    self.config.compression,
                ) {
                    Ok(bytes) => {
                        if self.identity.is_some() {
                            let count = i32::try_from(records.len()).unwrap_or(i32::MAX);
                            queue.next_sequence = base_sequence.wrapping_add(count) & i32::MAX;
                        }
                        batch.encoded = Some(Encoded { bytes });
                    }
                    Err(e) => {
                        if let Some(batch) = queue.batches.pop_front() {
                            self.buffered_bytes -= batch.size_bytes;
                            fail(batch, &e);
                        }
                        continue;
                    }
                }
            }
            let Some(bytes) = batch.encoded.as_ref().map(|e| e.bytes.clone()) else {
                continue;
            };
            if !sent.is_empty() && request_bytes + bytes.len() > self.config.max_request_bytes {
                continue;
            }
            request_bytes += bytes.len();
            queue.in_flight = true;
            batch.attempts += 1;
            let data = PartitionProduceData::default()
                .with_index(tp.1)
                .with_records(Some(bytes));
            match topic_data.iter_mut().find(|t| t.name.0.as_str() == tp.0) {
                Some(t) => t.partition_data.push(data),
                None => topic_data.push(
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(tp.0.clone())))
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
        self.busy_nodes.insert(node);
        self.in_flight.spawn(async move {
            let result = if acks == Acks::None {
                send_without_response(&cluster, node, &request)
                    .await
                    .map(|()| None)
            } else {
                cluster.send_node(node, &request).await.map(Some)
            };
            Outcome {
                node,
                partitions: sent,
                result,
            }
        });
    }

    /// Applies a request's outcome to each of its partitions.
    fn complete(&mut self, outcome: Outcome) {
        self.busy_nodes.remove(&outcome.node);
        for tp in outcome.partitions {
            let result = match &outcome.result {
                Err(e) => Err(e.clone()),
                Ok(None) => Ok(None), // acks=0
                Ok(Some(response)) => partition_result(response, &tp),
            };
            self.complete_partition(&tp, result);
        }
    }

    fn complete_partition(&mut self, tp: &TopicPartition, result: Result<Option<i64>>) {
        let Some(queue) = self.queues.get_mut(tp) else {
            return;
        };
        queue.in_flight = false;
        let Some(batch) = queue.batches.front_mut() else {
            return;
        };
        match result {
            Ok(base_offset) => {
                queue.backoff_until = None;
                if let Some(batch) = queue.batches.pop_front() {
                    self.buffered_bytes -= batch.size_bytes;
                    succeed(batch, tp, base_offset);
                }
            }
            Err(e) => {
                let elapsed = batch.created.elapsed();
                let retry = e.is_retriable()
                    && batch.attempts <= self.config.retries
                    && elapsed < self.config.delivery_timeout;
                if retry {
                    let shift = batch.attempts.saturating_sub(1).min(16);
                    let backoff = self
                        .config
                        .retry_backoff
                        .saturating_mul(1 << shift)
                        .min(self.config.retry_backoff_max);
                    debug!(topic = %tp.0, partition = tp.1, attempts = batch.attempts, error = %e, ?backoff, "retrying batch");
                    batch.last_error = Some(e);
                    queue.backoff_until = Some(Instant::now() + backoff);
                    self.refresh_in_background(vec![tp.0.clone()]);
                } else {
                    let error = if e.is_retriable() {
                        Error::DeliveryTimeout {
                            topic: tp.0.clone(),
                            partition: tp.1,
                            timeout: self.config.delivery_timeout,
                            last_error: e.to_string(),
                        }
                    } else {
                        e
                    };
                    if let Some(batch) = queue.batches.pop_front() {
                        self.buffered_bytes -= batch.size_bytes;
                        // The broker may hold part of this partition's sequence range.
                        if self.identity.is_some() && batch.encoded.is_some() {
                            self.needs_reset = true;
                        }
                        fail(batch, &error);
                    }
                }
            }
        }
    }

    /// Refreshes the topics' metadata every [`METADATA_MAX_AGE`], and takes up partition
    /// counts that grew.
    fn refresh_if_old(&mut self) {
        let metadata = self.cluster.metadata();
        for (name, state) in &mut self.topics {
            if let Ok(count) = metadata.partition_count(name) {
                state.partitions = state.partitions.max(count);
            }
        }
        if self.topics.is_empty() || self.last_age_refresh.elapsed() < METADATA_MAX_AGE {
            return;
        }
        self.last_age_refresh = Instant::now();
        let topics: Vec<String> = self.topics.keys().cloned().collect();
        self.next_background_refresh = Instant::now();
        self.refresh_in_background(topics);
    }

    /// Refreshes metadata for `topics` without holding up the task, at most once per
    /// retry backoff.
    fn refresh_in_background(&mut self, topics: Vec<String>) {
        let now = Instant::now();
        if now < self.next_background_refresh {
            return;
        }
        self.next_background_refresh = now + self.config.retry_backoff;
        let cluster = Arc::clone(&self.cluster);
        tokio::spawn(async move {
            let _ = cluster.refresh_metadata(Some(&topics), false).await;
        });
    }

    /// Fails batches (not in flight) older than the delivery timeout.
    fn expire(&mut self) {
        let timeout = self.config.delivery_timeout;
        let mut reset = false;
        for (tp, queue) in &mut self.queues {
            if queue.in_flight {
                continue;
            }
            while queue
                .batches
                .front()
                .is_some_and(|b| b.created.elapsed() >= timeout)
            {
                let Some(batch) = queue.batches.pop_front() else {
                    break;
                };
                self.buffered_bytes -= batch.size_bytes;
                reset |= batch.encoded.is_some() && self.identity.is_some();
                let error = Error::DeliveryTimeout {
                    topic: tp.0.clone(),
                    partition: tp.1,
                    timeout,
                    last_error: batch
                        .last_error
                        .as_ref()
                        .map_or_else(|| "not sent".to_string(), Error::to_string),
                };
                fail(batch, &error);
            }
        }
        self.needs_reset |= reset;
        self.queues
            .retain(|_, q| !q.batches.is_empty() || q.in_flight || q.next_sequence != 0);
    }

    /// After an idempotent batch failed for good the partition's sequence numbers can
    /// no longer be trusted: take a new producer id and restart every sequence at 0,
    /// re-encoding batches that were encoded but not acknowledged.
    async fn reset_producer_id(&mut self) {
        match init_producer_id(&self.cluster).await {
            Ok(identity) => {
                self.identity = Some(identity);
                for queue in self.queues.values_mut() {
                    queue.next_sequence = 0;
                    for batch in &mut queue.batches {
                        batch.encoded = None;
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

    fn finish_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let oldest = self
            .queues
            .values()
            .flat_map(|q| q.batches.iter().map(Batch::min_serial))
            .chain(self.unassigned.iter().map(|u| u.serial))
            .min()
            .unwrap_or(u64::MAX);
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(upto, _)| *upto < oldest);
        self.flushes = waiting;
        for (_, tx) in done {
            let _ = tx.send(());
        }
    }

    /// The next time something may become due: a linger expiring, a backoff ending, a
    /// metadata retry, a delivery timeout. Batches already due but held by a busy
    /// broker or an in-flight batch are woken by that request's completion; those held
    /// by an unknown leader are looked at again after a retry backoff.
    fn next_wakeup(&self) -> Instant {
        let now = Instant::now();
        let mut wake = now + Duration::from_secs(3600);
        for q in self.queues.values() {
            if let Some(b) = q.batches.front() {
                let linger_end = b.created + self.config.linger;
                wake = wake.min(if linger_end > now {
                    linger_end
                } else {
                    now + self.config.retry_backoff
                });
                wake = wake.min(b.created + self.config.delivery_timeout);
            }
            if let Some(t) = q.backoff_until {
                wake = wake.min(t);
            }
        }
        if !self.unassigned.is_empty() {
            wake = wake.min(self.next_metadata_refresh);
        }
        if self.needs_reset {
            wake = wake.min(now + self.config.retry_backoff);
        }
        wake.max(now + Duration::from_millis(1))
    }
}

/// acks=0: the request goes out on the node's shared connection and nothing comes back.
async fn send_without_response(
    cluster: &Cluster,
    node: i32,
    request: &ProduceRequest,
) -> Result<()> {
    let conn = cluster.node_connection(node).await?;
    let mut guard = conn.lock().await;
    guard.send_no_response(request).await
}

/// The base offset a Produce response gives `tp`, or its error.
fn partition_result(response: &ProduceResponse, tp: &TopicPartition) -> Result<Option<i64>> {
    let p = response
        .responses
        .iter()
        .filter(|t| t.name.0.as_str() == tp.0)
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

fn succeed(batch: Batch, tp: &TopicPartition, base_offset: Option<i64>) {
    for (i, p) in batch.records.into_iter().enumerate() {
        let offset = base_offset.map(|b| b + i as i64);
        let _ = p.reply.send(Ok(RecordMetadata {
            topic: tp.0.clone(),
            partition: tp.1,
            offset,
            timestamp_ms: p.record.timestamp_ms,
        }));
    }
}

fn fail(batch: Batch, error: &Error) {
    for p in batch.records {
        let _ = p.reply.send(Err(error.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };

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
        let tp = ("t".to_string(), 1);
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
        let e = partition_result(&response(0, 0), &("t".to_string(), 2)).unwrap_err();
        assert_eq!(e.kafka_code(), Some(3));
    }

    #[test]
    fn configs_are_checked() {
        assert!(validate(&ProducerConfig::default()).is_ok());
        let c = ProducerConfig {
            acks: Acks::Leader,
            ..ProducerConfig::default()
        };
        assert!(validate(&c).is_err(), "idempotence needs acks=all");
        let c = ProducerConfig {
            acks: Acks::None,
            idempotent: false,
            ..ProducerConfig::default()
        };
        assert!(validate(&c).is_ok());
        let c = ProducerConfig {
            buffer_bytes: 10,
            ..ProducerConfig::default()
        };
        assert!(validate(&c).is_err());
        assert_eq!(Acks::All.value(), -1);
    }
}
