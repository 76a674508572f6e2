//! The producer's background task and its buffers: records taken from the queue in
//! bulk, assigned to partitions (waiting for metadata when a topic's partition count is
//! unknown), appended to each partition's open batch, expired past `delivery_timeout`,
//! and flushes answered once every record before them is settled. Sending and settling
//! batches is `sender`'s half of the same task.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use kafka_protocol::messages::TransactionalId;
use tokio::sync::{mpsc, oneshot};

use crate::batch::{BatchBuilder, ProducerIdentity, BATCH_HEADER_BYTES};
use crate::cluster::Cluster;
use crate::delivery::Reply;
use crate::error::Error;
use crate::metadata::Metadata;
use crate::partitioner::{partition_for_key, NullKeyState};
use crate::record::ProducerRecord;

use super::links::Links;
use super::sender::{fail, InFlightRequest};
use super::{Command, ProducerConfig, COMMAND_QUEUE_RECORDS, MAX_GROWN_BATCH_BYTES};

/// Initial room of a batch's buffer, in bytes, when `batch_size_bytes` is larger: big
/// batches grow as records come instead of reserving their whole size up front.
pub(super) const BATCH_INITIAL_CAPACITY_BYTES: usize = 256 * 1024;

/// How often metadata of the topics written to is refreshed even without errors, so
/// added partitions and moved leaders are seen (Java's `metadata.max.age.ms`).
pub(super) const METADATA_MAX_AGE: Duration = Duration::from_secs(300);

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(super) type TopicPartition = (Arc<str>, i32);

/// A record waiting in a batch for its outcome.
pub(super) struct Pending {
    pub(super) reply: Reply,
    pub(super) timestamp_ms: i64,
}

/// A record whose topic's partition count is not known yet.
pub(super) struct Unassigned {
    pub(super) record: ProducerRecord,
    pub(super) size_bytes: usize,
    pub(super) serial: u64,
    pub(super) reply: Reply,
    pub(super) since: Instant,
}

/// A batch's bytes: still taking records, or closed (header and CRC written) and
/// reused verbatim by every retry.
pub(super) enum Body {
    Open(BatchBuilder),
    Sealed {
        bytes: Bytes,
        /// The bytes carry another producer id or base sequence than the batch has now
        /// (the id was renewed, or a gap before the batch was closed): the next send
        /// re-stamps them.
        stale_sequence: bool,
    },
}

pub(super) struct Batch {
    pub(super) body: Body,
    pub(super) records: Vec<Pending>,
    /// The serial of the first record: records of a batch have consecutive serials.
    pub(super) first_serial: u64,
    /// Sum of the records' size estimates: what the batch holds of `buffer_bytes`.
    pub(super) size_bytes: usize,
    pub(super) created: Instant,
    /// Sends so far (a refusal only for an earlier batch's gap is not counted).
    pub(super) attempts: u32,
    pub(super) last_error: Option<Error>,
    /// Sent and not answered yet.
    pub(super) in_flight: bool,
    /// The base sequence the batch has under the current producer id, once stamped
    /// (idempotent producers only).
    pub(super) sequence: Option<i32>,
    /// An attempt of the batch was written to a connection and got no answer (the
    /// connection was lost, the request timed out or its answer did not decode), with
    /// that error: the broker may hold the batch under its sequence numbers, so it is
    /// never re-stamped under another producer id (see `in_flight`).
    pub(super) maybe_stored: Option<Error>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("first_serial", &self.first_serial)
            .field("records", &self.records.len())
            .field("attempts", &self.attempts)
            .field("in_flight", &self.in_flight)
            .field("sequence", &self.sequence)
            .field("maybe_stored", &self.maybe_stored.is_some())
            .field("sealed", &matches!(self.body, Body::Sealed { .. }))
            .finish()
    }
}

impl Batch {
    pub(super) fn open(first_serial: u64, capacity_bytes: usize, created: Instant) -> Batch {
        Batch {
            body: Body::Open(BatchBuilder::with_capacity(capacity_bytes)),
            records: Vec::new(),
            first_serial,
            size_bytes: 0,
            created,
            attempts: 0,
            last_error: None,
            in_flight: false,
            sequence: None,
            maybe_stored: None,
        }
    }

    /// Marks the sealed bytes as carrying an old producer id or base sequence.
    pub(super) fn mark_stale(&mut self) {
        if let Body::Sealed { stale_sequence, .. } = &mut self.body {
            *stale_sequence = true;
        }
    }
}

/// One partition's unacknowledged batches, in record order (see `in_flight` for the
/// rules).
#[derive(Default)]
pub(super) struct PartitionQueue {
    pub(super) batches: VecDeque<Batch>,
    /// How many batches are in flight (each marked [`Batch::in_flight`]). While no
    /// refusal is being sorted out (`retrying`) they are the queue's first ones; after
    /// one, those still in flight are wherever acknowledgements left them, and nothing
    /// is sent until they are all back.
    pub(super) in_flight: usize,
    /// A batch was refused (or failed for good) while others were in flight: send
    /// nothing until they are all back, then resend from the front.
    pub(super) retrying: bool,
    /// The node and connection the batches in flight went to.
    pub(super) pinned: Option<(i32, u64)>,
    /// The base sequence of the next batch stamped under the current producer id.
    pub(super) next_sequence: i32,
    /// Batches that failed for good with nothing of them stored, by first serial and
    /// record count: once nothing is in flight, the later batches' sequence numbers
    /// move down to close the gaps (see `in_flight`).
    pub(super) gaps: Vec<(u64, i32)>,
    /// The partition's first batch under the current producer id is not acknowledged
    /// yet: it is the only one in flight (see `in_flight`).
    pub(super) awaiting_first_ack: bool,
    pub(super) backoff_until: Option<Instant>,
    /// Bytes of the batch sent last: the room a new batch behind a busy one reserves.
    pub(super) last_batch_bytes: usize,
}

impl PartitionQueue {
    /// Whether the next batch cannot go now (`limit` batches in flight, a refusal
    /// being sorted out, or a backoff running): then the batch behind it may grow past
    /// `batch_size_bytes`.
    pub(super) fn blocked(&self, limit: usize) -> bool {
        self.in_flight >= self.send_limit(limit) || self.retrying || self.backoff_until.is_some()
    }

    /// When the front batch reaches its delivery timeout, unless batches are in flight
    /// (they are settled by their answers first).
    pub(super) fn expires_at(&self, delivery_timeout: Duration) -> Option<Instant> {
        if self.in_flight > 0 {
            return None;
        }
        self.batches.front().map(|b| b.created + delivery_timeout)
    }

    /// Appends a record to the open batch at the back, starting one if needed. Returns
    /// false when the record was not taken (its reply answered with the error, or
    /// dropped): the caller no longer counts its bytes as buffered.
    fn push_record(&mut self, u: Unassigned, config: &ProducerConfig, now: Instant) -> bool {
        self.make_room(&u, config, now);
        // The back batch is open: checked or pushed by `make_room`. (Were it not, the
        // record's dropped reply would resolve as ProducerClosed.)
        let Some(Batch {
            body: Body::Open(builder),
            records,
            size_bytes,
            ..
        }) = self.batches.back_mut()
        else {
            return false;
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
                *size_bytes += u.size_bytes;
                records.push(Pending {
                    reply: u.reply,
                    timestamp_ms,
                });
                true
            }
            Err(e) => {
                u.reply.send(Err(e));
                if records.is_empty() {
                    self.batches.pop_back();
                }
                false
            }
        }
    }

    /// Starts a new batch at the back unless the last one is open with room for `u`.
    fn make_room(&mut self, u: &Unassigned, config: &ProducerConfig, now: Instant) {
        let request_limit = config.max_request_bytes - BATCH_HEADER_BYTES;
        // A batch that will wait behind another (in flight, or unsent before it), or
        // cannot go yet, keeps growing, up to what one request may carry and a default
        // broker accepts (unless batch_size_bytes itself asks for more). Only the next
        // batch to go while nothing is in flight is cut at batch_size_bytes.
        let in_flight_limit = self.send_limit(config.in_flight_limit());
        let unsent = self.batches.len().saturating_sub(self.in_flight);
        let grows = self.in_flight > 0 || unsent > 1 || self.blocked(in_flight_limit);
        let limit = if grows {
            config
                .batch_size_bytes
                .max(MAX_GROWN_BATCH_BYTES)
                .max(u.size_bytes)
                .min(request_limit)
        } else {
            config.batch_size_bytes.max(u.size_bytes).min(request_limit)
        };
        // Sizes are the records' estimates, as the sticky partitioner counts them.
        let fits =
            |b: &Batch| matches!(b.body, Body::Open(_)) && b.size_bytes + u.size_bytes <= limit;
        if self.batches.back().is_some_and(fits) {
            return;
        }
        // A batch that may grow past batch_size is likely to grow as big as the one
        // before it: reserve that much rather than copy it while growing.
        let capacity = config
            .batch_size_bytes
            .min(BATCH_INITIAL_CAPACITY_BYTES)
            .max(if grows { self.last_batch_bytes } else { 0 })
            .max(u.size_bytes);
        self.batches.push_back(Batch::open(u.serial, capacity, now));
    }
}

pub(super) struct TopicState {
    /// The topic's name, shared by its requests and its records' [`RecordMetadata`].
    pub(super) name: Arc<str>,
    /// The partition count records are spread over.
    pub(super) partitions: i32,
    pub(super) null_key: NullKeyState,
    /// One queue per partition index.
    pub(super) queues: Vec<PartitionQueue>,
}

impl TopicState {
    pub(super) fn new(name: &str, partitions: i32, null_key: NullKeyState) -> TopicState {
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
    pub(super) fn grow(&mut self, partitions: i32) {
        if partitions > self.partitions {
            self.partitions = partitions;
            let count = usize::try_from(partitions).unwrap_or(0);
            self.queues.resize_with(count, PartitionQueue::default);
        }
    }

    /// The partition a record goes to: the one it names, its key's hash, or the
    /// null-key partitioner's choice.
    fn partition_for(&mut self, u: &Unassigned, config: &ProducerConfig) -> i32 {
        match (u.record.partition, &u.record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, self.partitions),
            (None, None) => self.null_key.choose(
                config.null_key_partitioning,
                self.partitions,
                u.size_bytes,
                config.batch_size_bytes,
            ),
        }
    }

    /// The queue of `partition`, if the topic has that partition.
    fn queue_mut(&mut self, partition: i32) -> Option<&mut PartitionQueue> {
        usize::try_from(partition)
            .ok()
            .filter(|_| partition < self.partitions)
            .and_then(|p| self.queues.get_mut(p))
    }
}

/// The producer's background task: owns every buffered record.
pub(super) struct Accumulator {
    pub(super) cluster: Arc<Cluster>,
    pub(super) config: ProducerConfig,
    pub(super) rx: mpsc::Receiver<Command>,
    pub(super) identity: Option<ProducerIdentity>,
    /// A transactional producer's id, sent with every Produce request.
    pub(super) transactional_id: Option<TransactionalId>,
    pub(super) seed: u32,
    pub(super) topics: HashMap<String, TopicState>,
    pub(super) unassigned: VecDeque<Unassigned>,
    /// The answers awaited, polled on this task (no task per request: an answer
    /// wakes the producer directly).
    pub(super) in_flight: FuturesUnordered<InFlightRequest>,
    /// The producer's connection to each broker.
    pub(super) links: Links,
    /// Flush waiters with the last serial they cover.
    pub(super) flushes: Vec<(u64, oneshot::Sender<()>)>,
    pub(super) buffered_bytes: usize,
    pub(super) next_serial: u64,
    /// An idempotent batch whose outcome is unknown failed (or the broker's sequence
    /// state disagrees with ours): get a new producer id before sending more.
    pub(super) needs_reset: bool,
    pub(super) closing: bool,
    /// Earliest time for the next metadata request for topic-less records.
    pub(super) next_metadata_refresh: Instant,
    /// Earliest time for the next background refresh after leader errors.
    pub(super) next_background_refresh: Instant,
    /// When the topics' metadata was last refreshed because of its age.
    pub(super) last_age_refresh: Instant,
    /// The metadata snapshot whose partition counts were last taken up.
    pub(super) seen_metadata: Option<Arc<Metadata>>,
    /// The earliest time a batch not in flight reaches its delivery timeout (lowered
    /// when a partition's last batch in flight comes back).
    pub(super) next_expiry: Option<Instant>,
}

impl Accumulator {
    pub(super) fn new(
        cluster: Arc<Cluster>,
        config: ProducerConfig,
        rx: mpsc::Receiver<Command>,
        identity: Option<ProducerIdentity>,
        transactional_id: Option<TransactionalId>,
        seed: u32,
    ) -> Accumulator {
        let now = Instant::now();
        Accumulator {
            cluster,
            config,
            rx,
            identity,
            transactional_id,
            seed,
            topics: HashMap::new(),
            unassigned: VecDeque::new(),
            in_flight: FuturesUnordered::new(),
            links: Links::default(),
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
    pub(super) async fn run(mut self) {
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
                Some(outcome) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    now = Instant::now();
                    self.complete(outcome, now);
                    // Other answers that are in already, without another wake-up.
                    while let Some(Some(outcome)) = self.in_flight.next().now_or_never() {
                        self.complete(outcome, now);
                    }
                }
                Some(connected) = self.links.connecting.join_next_with_id(), if !self.links.connecting.is_empty() => {
                    now = Instant::now();
                    self.connected(connected, now);
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
    pub(super) async fn housekeeping(&mut self, mut now: Instant) -> Instant {
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

    pub(super) fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
            && self.unassigned.is_empty()
            && self
                .topics
                .values()
                .all(|t| t.queues.iter().all(|q| q.batches.is_empty()))
    }

    /// Appends the records (and registers the flushes) taken from the queue.
    pub(super) fn take(&mut self, commands: &mut Vec<Command>, now: Instant) {
        // Read the wall clock only if a record needs stamping, once for all of them.
        let mut stamp_ms = None;
        for command in commands.drain(..) {
            match command {
                Command::Send(record, reply) => self.append(record, reply, now, &mut stamp_ms),
                Command::Flush(done) => self.flushes.push((self.next_serial, done)),
            }
        }
    }

    pub(super) fn append(
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
    pub(super) fn assign(&mut self, u: Unassigned, now: Instant) {
        let Some(topic) = self.topics.get_mut(&*u.record.topic) else {
            self.unassigned.push_back(u);
            return;
        };
        let partitions = topic.partitions;
        let partition = topic.partition_for(&u, &self.config);
        let Some(queue) = topic.queue_mut(partition) else {
            self.buffered_bytes -= u.size_bytes;
            u.reply.send(Err(Error::UnknownPartition {
                topic: u.record.topic.to_string(),
                partition,
                partitions,
            }));
            return;
        };
        let size_bytes = u.size_bytes;
        if !queue.push_record(u, &self.config, now) {
            self.buffered_bytes -= size_bytes;
        }
    }

    /// Learns the partition counts of topics that records wait for (rate-limited to one
    /// metadata request per retry backoff), and assigns those records.
    pub(super) async fn assign_unassigned(&mut self, now: Instant) {
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

    /// Takes up partition counts that grew in a newer metadata snapshot, and refreshes
    /// the topics' metadata every [`METADATA_MAX_AGE`].
    pub(super) fn refresh_if_old(&mut self, now: Instant) {
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
    pub(super) fn refresh_in_background(&mut self, topics: Vec<String>, now: Instant) {
        if now < self.next_background_refresh {
            return;
        }
        self.next_background_refresh = now + self.config.retry_backoff;
        let cluster = Arc::clone(&self.cluster);
        tokio::spawn(async move {
            let _ = cluster.refresh_metadata(Some(&topics), false).await;
        });
    }

    /// Fails batches (not in flight) older than the delivery timeout. One whose outcome
    /// is unknown makes the producer renew its id; one that stored nothing leaves a gap
    /// that the partition's later batches close (see `in_flight`).
    pub(super) fn expire(&mut self, now: Instant) {
        let timeout = self.config.delivery_timeout;
        let idempotent = self.identity.is_some();
        let mut reset = false;
        for (name, topic) in &mut self.topics {
            for (p, queue) in topic.queues.iter_mut().enumerate() {
                if queue.in_flight > 0 {
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
                    if idempotent && batch.maybe_stored.is_some() {
                        reset = true;
                    } else if idempotent {
                        queue.leave_gap(&batch);
                    }
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
                queue.close_gaps();
            }
        }
        self.needs_reset |= reset;
    }

    pub(super) fn finish_flushes(&mut self) {
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
    /// Batches already due but held by a busy broker, a connection being opened or the
    /// partition's batches in flight are woken by that request's completion or that
    /// connection; those held by an unknown leader are looked at again after a retry
    /// backoff.
    pub(super) fn next_wakeup(&mut self, now: Instant) -> Instant {
        let mut wake = now + Duration::from_secs(3600);
        let mut expiry: Option<Instant> = None;
        let limit = self.config.in_flight_limit();
        for q in self.topics.values().flat_map(|t| t.queues.iter()) {
            // A backoff that is over (its retry may be in flight) wakes nothing.
            if let Some(t) = q.backoff_until.filter(|t| *t > now) {
                wake = wake.min(t);
            }
            if let Some(expires) = q.expires_at(self.config.delivery_timeout) {
                expiry = Some(expiry.map_or(expires, |e| e.min(expires)));
            }
            if q.retrying || q.in_flight >= q.send_limit(limit) {
                continue;
            }
            if let Some(b) = q.next_to_send() {
                let linger_end = b.created + self.config.linger;
                wake = wake.min(if linger_end > now {
                    linger_end
                } else {
                    now + self.config.retry_backoff
                });
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
