//! The producer: records are partitioned and encoded straight into one batch per
//! partition until the batch holds `batch_size_bytes` or is `linger` old, then sent to
//! the partition's leader. Up to `max_in_flight_requests` Produce requests per broker
//! are outstanding at once (each on a connection of the producer's own), but at most one
//! batch per partition; while a partition's batch is in flight (or waits to be
//! retried), its next batch keeps taking records up to `max_request_bytes` (and at most
//! [`MAX_GROWN_BATCH_BYTES`] unless `batch_size_bytes` is larger), so one partition's
//! throughput is not capped at `batch_size_bytes` per round trip.
//!
//! Guarantees:
//! - Per partition, records are written in the order `send`/`enqueue` was called, also
//!   across retries: a partition's next batch is sent only once the broker has
//!   answered its previous one (one batch in flight per partition), so whichever
//!   connection it takes, the broker has already appended (or refused) the one before.
//!   With acks=0 there is no answer, so the producer uses one connection per broker
//!   and a partition's batches reach the broker in that connection's order.
//! - With idempotence (acks=all), a retried batch carries the same producer id, epoch
//!   and sequence, so the broker never stores it twice; DUPLICATE_SEQUENCE_NUMBER counts
//!   as success.
//! - Every record's [`Delivery`] resolves exactly once: with its partition and offset
//!   when acknowledged, or with the error that ended its retries (non-retriable error,
//!   `retries` exhausted, or `delivery_timeout` passed).
//! - Memory is bounded: `send` waits while `buffer_bytes` of records are unacknowledged,
//!   give or take the records in the producer's queue and those it takes from the
//!   queue at once (each at most [`COMMAND_QUEUE_RECORDS`]).
//!
//! Costs: the background task takes records from its queue in bulk, reads the clock
//! once per wake-up (not per record), and does its housekeeping (expiry, metadata age,
//! flushes, sending) per wake-up; a record costs one partition choice and one append
//! to its batch's buffer.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

use crate::batch::{restamp, BatchBuilder, ProducerIdentity, BATCH_HEADER_BYTES};
use crate::cluster::Cluster;
use crate::connection::Connection;
pub use crate::delivery::Delivery;
use crate::delivery::{Reply, Slots};
use crate::error::{Error, Result, DUPLICATE_SEQUENCE_NUMBER};
use crate::metadata::Metadata;
use crate::partitioner::{partition_for_key, NullKeyPartitioning, NullKeyState};
use crate::record::{Compression, ProducerRecord, RecordMetadata};

/// Records that may wait in the channel between `send` and the producer task; also the
/// most the task takes from it per wake-up.
pub const COMMAND_QUEUE_RECORDS: usize = 1024;
/// Initial room of a batch's buffer, in bytes, when `batch_size_bytes` is larger: big
/// batches grow as records come instead of reserving their whole size up front.
const BATCH_INITIAL_CAPACITY_BYTES: usize = 256 * 1024;
/// How far a batch waiting behind a busy one may grow past `batch_size_bytes` (record
/// size estimates; encoded, a batch is at most this plus its header): 1 MiB, so that it
/// stays within a broker's default `message.max.bytes` (1 048 588) even when
/// `max_request_bytes` is set higher for the odd large record.
pub const MAX_GROWN_BATCH_BYTES: usize = 1024 * 1024 - BATCH_HEADER_BYTES;
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

/// Why [`Producer::try_enqueue`] did not take a record.
#[derive(Debug, thiserror::Error)]
pub enum TryEnqueueError {
    /// The queue is full (the producer holds `buffer_bytes` of records): the record,
    /// back to the caller (boxed: this is the slow path, the result stays small).
    #[error("the producer's queue is full")]
    Full(Box<ProducerRecord>),
    /// The producer was closed.
    #[error("the producer is closed")]
    Closed,
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
    /// Produce requests outstanding per broker at once (Kafka's
    /// `max.in.flight.requests.per.connection`); each has a connection of its own, so
    /// this is also the most connections the producer opens to one broker. With acks=0
    /// it is 1 whatever is set (see the ordering guarantee).
    pub max_in_flight_requests: usize,
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
            max_in_flight_requests: 5,
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

enum Command {
    Send(ProducerRecord, Reply),
    Flush(oneshot::Sender<()>),
}

/// An async producer. Cheap to share by reference across tasks; dropping it lets the
/// background task finish what is buffered, [`Producer::close`] waits for that.
#[derive(Debug)]
pub struct Producer {
    tx: mpsc::Sender<Command>,
    slots: Slots,
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
        let task = tokio::spawn(Accumulator::new(cluster, config, rx, identity, seed).run());
        Ok(Producer {
            tx,
            slots: Slots::new(),
            task,
        })
    }

    /// Hands `record` to the producer and returns its [`Delivery`] without waiting for
    /// the broker. Waits only while the buffer is full.
    pub async fn enqueue(&self, record: ProducerRecord) -> Result<Delivery> {
        let (reply, delivery) = self.slots.next();
        self.tx
            .send(Command::Send(record, reply))
            .await
            .map_err(|_| Error::ProducerClosed)?;
        Ok(delivery)
    }

    /// As [`Producer::enqueue`], but never waits: while the producer's queue is full
    /// the record comes back in [`TryEnqueueError::Full`]. For callers that must not
    /// block, or that want to know when they would have.
    pub fn try_enqueue(
        &self,
        record: ProducerRecord,
    ) -> std::result::Result<Delivery, TryEnqueueError> {
        let (reply, delivery) = self.slots.next();
        match self.tx.try_send(Command::Send(record, reply)) {
            Ok(()) => Ok(delivery),
            // The unsent reply resolves its slot, whose delivery is dropped here.
            Err(mpsc::error::TrySendError::Full(Command::Send(record, _))) => {
                Err(TryEnqueueError::Full(Box::new(record)))
            }
            Err(_) => Err(TryEnqueueError::Closed),
        }
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
        let Producer { tx, task, .. } = self;
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
    if config.max_in_flight_requests == 0 {
        return bad("max_in_flight_requests must allow one request");
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

type TopicPartition = (Arc<str>, i32);

/// A record waiting in a batch for its outcome.
struct Pending {
    reply: Reply,
    timestamp_ms: i64,
}

/// A record whose topic's partition count is not known yet.
struct Unassigned {
    record: ProducerRecord,
    size_bytes: usize,
    serial: u64,
    reply: Reply,
    since: Instant,
}

/// A batch's bytes: still taking records, or closed (header and CRC written) and
/// reused verbatim by every retry.
enum Body {
    Open(BatchBuilder),
    Sealed {
        bytes: Bytes,
        /// The producer id was renewed since: the next send re-stamps the batch with
        /// the new id and a new base sequence.
        stale_sequence: bool,
    },
}

struct Batch {
    body: Body,
    records: Vec<Pending>,
    /// The serial of the first record: records of a batch have consecutive serials.
    first_serial: u64,
    /// Sum of the records' size estimates: what the batch holds of `buffer_bytes`.
    size_bytes: usize,
    created: Instant,
    attempts: u32,
    last_error: Option<Error>,
}

impl Batch {
    fn open(first_serial: u64, capacity_bytes: usize, created: Instant) -> Batch {
        Batch {
            body: Body::Open(BatchBuilder::with_capacity(capacity_bytes)),
            records: Vec::new(),
            first_serial,
            size_bytes: 0,
            created,
            attempts: 0,
            last_error: None,
        }
    }

    /// Whether the broker may have seen this batch under its current sequence numbers.
    fn sent_with_sequence(&self) -> bool {
        matches!(
            self.body,
            Body::Sealed {
                stale_sequence: false,
                ..
            }
        )
    }
}

#[derive(Default)]
struct PartitionQueue {
    batches: VecDeque<Batch>,
    in_flight: bool,
    next_sequence: i32,
    backoff_until: Option<Instant>,
    /// Bytes of the batch sent last: the room a new batch behind a busy one reserves.
    last_batch_bytes: usize,
}

impl PartitionQueue {
    /// Whether the front batch cannot go now (in flight, or waiting out a backoff):
    /// then the batch behind it may grow past `batch_size_bytes`.
    fn blocked(&self) -> bool {
        self.in_flight || self.backoff_until.is_some()
    }
}

struct TopicState {
    /// The topic's name, shared by its requests and its records' [`RecordMetadata`].
    name: Arc<str>,
    /// The partition count records are spread over.
    partitions: i32,
    null_key: NullKeyState,
    /// One queue per partition index.
    queues: Vec<PartitionQueue>,
}

impl TopicState {
    fn new(name: &str, partitions: i32, null_key: NullKeyState) -> TopicState {
        let mut state = TopicState {
            name: Arc::from(name),
            partitions: 0,
            null_key,
            queues: Vec::new(),
        };
        state.grow(partitions);
        state
    }

    /// Takes up a partition count that grew (counts never shrink in Kafka).
    fn grow(&mut self, partitions: i32) {
        if partitions > self.partitions {
            self.partitions = partitions;
            let count = usize::try_from(partitions).unwrap_or(0);
            self.queues.resize_with(count, PartitionQueue::default);
        }
    }
}

/// The producer's connections to one broker: idle ones, and how many carry a request.
#[derive(Default)]
struct NodeConnections {
    idle: Vec<Connection>,
    in_flight: usize,
}

/// What one request task reports back.
struct Outcome {
    node: i32,
    partitions: Vec<TopicPartition>,
    result: Result<Option<ProduceResponse>>,
    /// The connection, unless it broke.
    connection: Option<Connection>,
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
    in_flight: JoinSet<Outcome>,
    /// What each request task carries, to settle its batches if the task fails.
    requests: HashMap<tokio::task::Id, (i32, Vec<TopicPartition>)>,
    nodes: HashMap<i32, NodeConnections>,
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
    /// The metadata snapshot whose partition counts were last taken up.
    seen_metadata: Option<Arc<Metadata>>,
    /// The earliest time a batch not in flight reaches its delivery timeout.
    next_expiry: Option<Instant>,
}

impl Accumulator {
    fn new(
        cluster: Arc<Cluster>,
        config: ProducerConfig,
        rx: mpsc::Receiver<Command>,
        identity: Option<ProducerIdentity>,
        seed: u32,
    ) -> Accumulator {
        let now = Instant::now();
        Accumulator {
            cluster,
            config,
            rx,
            identity,
            seed,
            topics: HashMap::new(),
            unassigned: VecDeque::new(),
            in_flight: JoinSet::new(),
            requests: HashMap::new(),
            nodes: HashMap::new(),
            flushes: Vec::new(),
            buffered_bytes: 0,
            next_serial: 0,
            needs_reset: false,
            closing: false,
            next_metadata_refresh: now,
            next_background_refresh: now,
            last_age_refresh: now,
            seen_metadata: None,
            next_expiry: None,
        }
    }

    /// One wake-up per event (records queued, a request answered, a timer): the clock
    /// is read once, then every record taken is appended and housekeeping runs once.
    async fn run(mut self) {
        let mut commands = Vec::with_capacity(COMMAND_QUEUE_RECORDS);
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut timer_at: Option<Instant> = None;
        let mut now = Instant::now();
        loop {
            now = self.housekeeping(now).await;
            if self.closing && self.is_idle() {
                return;
            }
            let wake = self.next_wakeup(now);
            if timer_at != Some(wake) {
                timer.as_mut().reset(wake.into());
                timer_at = Some(wake);
            }
            let accepting = !self.closing && self.buffered_bytes < self.config.buffer_bytes;
            tokio::select! {
                biased;
                Some(joined) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => {
                    now = Instant::now();
                    self.joined(joined, now);
                    while let Some(joined) = self.in_flight.try_join_next_with_id() {
                        self.joined(joined, now);
                    }
                }
                taken = self.rx.recv_many(&mut commands, COMMAND_QUEUE_RECORDS), if accepting => {
                    now = Instant::now();
                    if taken == 0 {
                        self.closing = true;
                    }
                    self.take(&mut commands, now);
                }
                () = &mut timer => {
                    now = Instant::now();
                    timer_at = None;
                }
            }
        }
    }

    /// Expiry, producer id renewal, topic metadata, sending and flushes; returns the
    /// time now (later than `now` only when it had to wait for the network).
    async fn housekeeping(&mut self, mut now: Instant) -> Instant {
        if self.next_expiry.is_some_and(|t| now >= t) {
            self.expire(now);
        }
        if self.needs_reset && self.in_flight.is_empty() {
            self.reset_producer_id().await;
            now = Instant::now();
        }
        if !self.unassigned.is_empty() && now >= self.next_metadata_refresh {
            self.assign_unassigned(now).await;
            now = Instant::now();
        }
        self.refresh_if_old(now);
        if !self.needs_reset {
            self.drain(now);
        }
        self.finish_flushes();
        now
    }

    fn joined(
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

    fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
            && self.unassigned.is_empty()
            && self
                .topics
                .values()
                .all(|t| t.queues.iter().all(|q| q.batches.is_empty()))
    }

    /// Appends the records (and registers the flushes) taken from the queue.
    fn take(&mut self, commands: &mut Vec<Command>, now: Instant) {
        // Read the wall clock only if a record needs stamping, once for all of them.
        let mut stamp_ms = None;
        for command in commands.drain(..) {
            match command {
                Command::Send(record, reply) => self.append(record, reply, now, &mut stamp_ms),
                Command::Flush(done) => self.flushes.push((self.next_serial, done)),
            }
        }
    }

    fn append(
        &mut self,
        record: ProducerRecord,
        reply: Reply,
        now: Instant,
        stamp_ms: &mut Option<i64>,
    ) {
        let size_bytes = record.size_estimate_bytes();
        if size_bytes + BATCH_HEADER_BYTES > self.config.max_request_bytes {
            reply.send(Err(Error::InvalidArgument(format!(
                "a record of about {size_bytes} bytes exceeds max_request_bytes {}",
                self.config.max_request_bytes
            ))));
            return;
        }
        self.next_serial += 1;
        self.buffered_bytes += size_bytes;
        let mut record = record;
        if record.timestamp_ms.is_none() {
            record.timestamp_ms = Some(*stamp_ms.get_or_insert_with(now_ms));
        }
        let u = Unassigned {
            record,
            size_bytes,
            serial: self.next_serial,
            reply,
            since: now,
        };
        self.assign(u, now);
    }

    /// Puts a record into its partition's open batch, or among the unassigned records
    /// while its topic's partition count is unknown.
    fn assign(&mut self, u: Unassigned, now: Instant) {
        let Some(topic) = self.topics.get_mut(&*u.record.topic) else {
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
        let queue = usize::try_from(partition)
            .ok()
            .filter(|_| partition < partitions)
            .and_then(|p| topic.queues.get_mut(p));
        let Some(queue) = queue else {
            self.buffered_bytes -= u.size_bytes;
            u.reply.send(Err(Error::UnknownPartition {
                topic: u.record.topic.to_string(),
                partition,
                partitions,
            }));
            return;
        };
        let request_limit = self.config.max_request_bytes - BATCH_HEADER_BYTES;
        // A batch that cannot go yet keeps growing, up to what one request may carry
        // and a default broker accepts (unless batch_size_bytes itself asks for more).
        let grows = queue.blocked() || queue.batches.len() > 1;
        let limit = if grows {
            self.config
                .batch_size_bytes
                .max(MAX_GROWN_BATCH_BYTES)
                .max(u.size_bytes)
                .min(request_limit)
        } else {
            self.config
                .batch_size_bytes
                .max(u.size_bytes)
                .min(request_limit)
        };
        // Sizes are the records' estimates, as the sticky partitioner counts them.
        let fits =
            |b: &Batch| matches!(b.body, Body::Open(_)) && b.size_bytes + u.size_bytes <= limit;
        if !queue.batches.back().is_some_and(fits) {
            // A batch that may grow past batch_size is likely to grow as big as the one
            // before it: reserve that much rather than copy it while growing.
            let capacity = self
                .config
                .batch_size_bytes
                .min(BATCH_INITIAL_CAPACITY_BYTES)
                .max(if grows { queue.last_batch_bytes } else { 0 })
                .max(u.size_bytes);
            queue
                .batches
                .push_back(Batch::open(u.serial, capacity, now));
        }
        // The back batch is open: checked by `fits` or pushed just above. (Were it
        // not, the record's dropped reply would resolve as ProducerClosed.)
        let Some(batch) = queue
            .batches
            .back_mut()
            .filter(|b| matches!(b.body, Body::Open(_)))
        else {
            self.buffered_bytes -= u.size_bytes;
            return;
        };
        let Body::Open(builder) = &mut batch.body else {
            self.buffered_bytes -= u.size_bytes;
            return;
        };
        let record = u.record;
        let timestamp_ms = record.timestamp_ms.unwrap_or_default(); // stamped in append
        let pushed = builder.push(
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
            timestamp_ms,
        );
        match pushed {
            Ok(()) => {
                batch.size_bytes += u.size_bytes;
                batch.records.push(Pending {
                    reply: u.reply,
                    timestamp_ms,
                });
            }
            Err(e) => {
                self.buffered_bytes -= u.size_bytes;
                u.reply.send(Err(e));
                if batch.records.is_empty() {
                    queue.batches.pop_back();
                }
            }
        }
    }

    /// Learns the partition counts of topics that records wait for (rate-limited to one
    /// metadata request per retry backoff), and assigns those records.
    async fn assign_unassigned(&mut self, now: Instant) {
        let mut wanted: Vec<String> = self
            .unassigned
            .iter()
            .map(|u| u.record.topic.to_string())
            .collect();
        wanted.sort();
        wanted.dedup();
        self.next_metadata_refresh = now + self.config.retry_backoff;
        let refreshed = self
            .cluster
            .refresh_metadata(Some(&wanted), self.config.allow_auto_create_topics)
            .await;
        let now = Instant::now();
        let metadata = self.cluster.metadata();
        for name in &wanted {
            if let Ok(count) = metadata.partition_count(name) {
                if count > 0 && !self.topics.contains_key(name) {
                    let start = self.seed.wrapping_add(self.topics.len() as u32);
                    self.topics.insert(
                        name.clone(),
                        TopicState::new(name, count, NullKeyState::starting_at(start)),
                    );
                }
            }
        }
        let waiting = std::mem::take(&mut self.unassigned);
        for u in waiting {
            if self.topics.contains_key(&*u.record.topic) {
                self.assign(u, now);
            } else if now.saturating_duration_since(u.since) >= self.config.delivery_timeout {
                self.buffered_bytes -= u.size_bytes;
                let error = match (&refreshed, metadata.topic(&u.record.topic)) {
                    (Err(e), _) => e.clone(),
                    (_, Err(e)) => e,
                    (_, Ok(_)) => Error::UnknownTopic {
                        topic: u.record.topic.to_string(),
                    },
                };
                u.reply.send(Err(error));
            } else {
                self.unassigned.push_back(u);
            }
        }
    }

    /// Starts requests for ready partitions, per broker while it has a free slot.
    fn drain(&mut self, now: Instant) {
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
    fn in_flight_limit(&self) -> usize {
        if self.config.acks == Acks::None {
            1
        } else {
            self.config.max_in_flight_requests
        }
    }

    /// Closes (first attempt) or re-stamps (after a producer id renewal) the front
    /// batches of `partitions` and sends as many as fit `max_request_bytes` to `node`
    /// in one Produce request; the rest stay in `partitions`.
    fn send_to(&mut self, node: i32, partitions: &mut VecDeque<TopicPartition>) {
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
    fn prepare(&mut self, tp: &TopicPartition) -> Option<Bytes> {
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

    fn queue_mut(&mut self, tp: &TopicPartition) -> Option<&mut PartitionQueue> {
        let p = usize::try_from(tp.1).ok()?;
        self.topics.get_mut(&*tp.0)?.queues.get_mut(p)
    }

    /// Applies a request's outcome to each of its partitions.
    fn complete(&mut self, outcome: Outcome, now: Instant) {
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

    fn complete_partition(
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

    /// Takes up partition counts that grew in a newer metadata snapshot, and refreshes
    /// the topics' metadata every [`METADATA_MAX_AGE`].
    fn refresh_if_old(&mut self, now: Instant) {
        let metadata = self.cluster.metadata();
        if !self
            .seen_metadata
            .as_ref()
            .is_some_and(|seen| Arc::ptr_eq(seen, &metadata))
        {
            for (name, state) in &mut self.topics {
                if let Ok(count) = metadata.partition_count(name) {
                    state.grow(count);
                }
            }
            self.seen_metadata = Some(metadata);
        }
        if self.topics.is_empty()
            || now.saturating_duration_since(self.last_age_refresh) < METADATA_MAX_AGE
        {
            return;
        }
        self.last_age_refresh = now;
        let topics: Vec<String> = self.topics.keys().cloned().collect();
        self.next_background_refresh = now;
        self.refresh_in_background(topics, now);
    }

    /// Refreshes metadata for `topics` without holding up the task, at most once per
    /// retry backoff.
    fn refresh_in_background(&mut self, topics: Vec<String>, now: Instant) {
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
    fn expire(&mut self, now: Instant) {
        let timeout = self.config.delivery_timeout;
        let mut reset = false;
        for (name, topic) in &mut self.topics {
            for (p, queue) in topic.queues.iter_mut().enumerate() {
                if queue.in_flight {
                    continue;
                }
                while queue
                    .batches
                    .front()
                    .is_some_and(|b| now.saturating_duration_since(b.created) >= timeout)
                {
                    let Some(batch) = queue.batches.pop_front() else {
                        break;
                    };
                    queue.backoff_until = None;
                    self.buffered_bytes -= batch.size_bytes;
                    reset |= batch.sent_with_sequence() && self.identity.is_some();
                    let error = Error::DeliveryTimeout {
                        topic: name.clone(),
                        partition: i32::try_from(p).unwrap_or(i32::MAX),
                        timeout,
                        last_error: batch
                            .last_error
                            .as_ref()
                            .map_or_else(|| "not sent".to_string(), Error::to_string),
                    };
                    fail(batch, &error);
                }
            }
        }
        self.needs_reset |= reset;
    }

    /// After an idempotent batch failed for good the partition's sequence numbers can
    /// no longer be trusted: take a new producer id and restart every sequence at 0,
    /// re-stamping batches that were sent but not acknowledged.
    async fn reset_producer_id(&mut self) {
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

    fn finish_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let oldest = self
            .topics
            .values()
            .flat_map(|t| t.queues.iter())
            .flat_map(|q| q.batches.iter().map(|b| b.first_serial))
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
    /// metadata retry, a delivery timeout (also remembered for [`Accumulator::expire`]).
    /// Batches already due but held by a busy broker or an in-flight batch are woken
    /// by that request's completion; those held by an unknown leader are looked at
    /// again after a retry backoff.
    fn next_wakeup(&mut self, now: Instant) -> Instant {
        let mut wake = now + Duration::from_secs(3600);
        let mut expiry: Option<Instant> = None;
        for q in self.topics.values().flat_map(|t| t.queues.iter()) {
            // A backoff that is over (its retry may be in flight) wakes nothing.
            if let Some(t) = q.backoff_until.filter(|t| *t > now) {
                wake = wake.min(t);
            }
            if q.in_flight {
                continue;
            }
            if let Some(b) = q.batches.front() {
                let linger_end = b.created + self.config.linger;
                wake = wake.min(if linger_end > now {
                    linger_end
                } else {
                    now + self.config.retry_backoff
                });
                let expires = b.created + self.config.delivery_timeout;
                expiry = Some(expiry.map_or(expires, |e| e.min(expires)));
            }
        }
        self.next_expiry = expiry;
        if let Some(e) = expiry {
            wake = wake.min(e);
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

/// Sends `request` to `node` on `connection` (a new one if `None`); returns the result
/// and the connection unless it broke. With acks=0 nothing comes back.
async fn produce(
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
fn partition_result(response: &ProduceResponse, tp: &TopicPartition) -> Result<Option<i64>> {
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

fn succeed(batch: Batch, tp: &TopicPartition, base_offset: Option<i64>) {
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

fn fail(batch: Batch, error: &Error) {
    for p in batch.records {
        p.reply.send(Err(error.clone()));
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
