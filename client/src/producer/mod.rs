//! The producer: records are partitioned and encoded straight into one batch per
//! partition until the batch holds `batch_size_bytes` or is `linger` old, then sent to
//! the partition's leader on the producer's one connection to that broker, a pipelined
//! one ([`crate::connection::Pipeline`]): up to `max_in_flight_requests` Produce
//! requests per broker are outstanding on it at once, and a partition may have as many
//! batches in flight (one per request), so one partition's throughput is not capped at
//! one batch per round trip. A batch that waits behind another of its partition (in
//! flight, or unsent ahead of it) or cannot go (a refusal being retried) keeps taking
//! records past `batch_size_bytes`, up to `max_request_bytes` (and at most
//! [`MAX_GROWN_BATCH_BYTES`] unless `batch_size_bytes` is larger), and goes once it is
//! that full or nothing of the partition is in flight: under load a partition sends one larger request per
//! round trip rather than many small ones (fewer requests for the broker to append,
//! replicate and sync), and has several in flight only when a grown batch fills
//! within a round trip. Unlike Java's `batch.size`, `batch_size_bytes` is thus the
//! size at which a batch goes when nothing waits ahead of it.
//!
//! Guarantees:
//! - With idempotence (acks=all), per partition, records are written in the order
//!   `send`/`enqueue` was called, exactly once, also across retries. Each batch carries
//!   its producer id, epoch and sequence numbers; a partition's batches are sent in
//!   sequence order on one connection, which the broker applies in order. When a batch
//!   is refused with a retriable error, the batches in flight behind it come back
//!   refused too (OUT_OF_ORDER_SEQUENCE_NUMBER, retriable then); the partition sends
//!   nothing until all of them are back, then resends from its first unacknowledged
//!   batch, in order, each with its original sequence numbers, as the Java client and
//!   librdkafka do. DUPLICATE_SEQUENCE_NUMBER counts as success. The broker remembers
//!   five batches per producer per partition, so idempotence allows at most
//!   [`MAX_IN_FLIGHT_IDEMPOTENT`] requests in flight. A partition's first batch under a
//!   producer id (also after a renewal) is sent alone, its next ones once it is
//!   acknowledged: a broker takes a producer id it has no state for at any sequence, so
//!   a later batch must not reach it first.
//! - Without idempotence (acks=1, or acks=all without it) the order holds while nothing
//!   is retried; with `max_in_flight_requests` above 1, a batch that is refused and
//!   retried may land after batches sent behind it (as the Java client documents).
//!   Set `max_in_flight_requests` to 1 for strict order without idempotence.
//! - With acks=0 there is no answer: one request per broker at a time, each written
//!   before the next, so a partition's batches reach the broker in order.
//! - Every record's [`Delivery`] resolves exactly once: with its partition and offset
//!   when acknowledged, or with the error that ended its retries (non-retriable error,
//!   `retries` exhausted, or `delivery_timeout` passed). Batches of one partition may
//!   resolve out of order when an earlier one is retried.
//! - An idempotent batch the broker refused for good (every attempt answered with an
//!   error, or never sent, and the last error not retriable or retries or time run out)
//!   stored nothing: the producer id stays, and once the partition's batches in flight
//!   are back its later batches' sequence numbers move down to close the gap (other
//!   partitions are untouched). Only a batch whose outcome is unknown (an attempt
//!   written and never answered: connection lost, timeout, unreadable answer) that then
//!   runs out of retries or time, or a broker whose sequence state disagrees with ours
//!   (OUT_OF_ORDER_SEQUENCE_NUMBER for a partition's first unacknowledged batch,
//!   UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH), makes the producer wait for every
//!   request in flight and take a new producer id. At that moment every pending batch
//!   with an unanswered attempt fails too, with that attempt's error: the broker may
//!   hold it under the old id and could not recognise it under the new one. Only
//!   batches never sent or refused on every attempt are re-stamped with the new id,
//!   from sequence 0. So a renewal never writes a record twice; records whose outcome
//!   is unknown at a renewal are reported failed though they may have been written.
//! - Memory is bounded: `send` waits while `buffer_bytes` of records are unacknowledged,
//!   give or take the records in the producer's queue and those it takes from the
//!   queue at once (each at most [`COMMAND_QUEUE_RECORDS`]).
//!
//! Costs: the background task takes records from its queue in bulk, reads the clock
//! once per wake-up (not per record), and does its housekeeping (expiry, metadata age,
//! flushes, sending) per wake-up; a record costs one partition choice and one append
//! to its batch's buffer. Connections are opened by tasks of their own; a request is
//! queued on its broker's pipelined connection and its answer awaited among the
//! task's other events (no task per request, so an answer costs one wake-up of the
//! producer's task). The task never waits for the network (but for InitProducerId and
//! metadata of topics it has not seen).
//!
//! This module is the public API ([`Producer`], its configuration and the queue to the
//! task); `accumulator` holds the task's buffers (records into per-partition batches),
//! `sender` turns ready batches into Produce requests and settles their answers,
//! `in_flight` keeps a partition's batches in flight in order, and `links` holds the
//! connections (as Kafka's KafkaProducer, RecordAccumulator, Sender, TransactionManager
//! and NetworkClient).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::{InitProducerIdRequest, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::batch::{ProducerIdentity, BATCH_HEADER_BYTES};
use crate::cluster::Cluster;
pub use crate::delivery::Delivery;
use crate::delivery::{FirstFailure, Reply, Slots};
use crate::error::{Error, Result};
use crate::partitioner::NullKeyPartitioning;
use crate::record::{Compression, ProducerRecord, RecordMetadata};

mod accumulator;
mod in_flight;
mod links;
mod sender;

use accumulator::Accumulator;

/// Records that may wait in the channel between `send` and the producer task; also the
/// most the task takes from it per wake-up.
pub const COMMAND_QUEUE_RECORDS: usize = 1024;
/// How far a batch waiting behind a busy one may grow past `batch_size_bytes` (record
/// size estimates; encoded, a batch is at most this plus its header): 1 MiB, so that it
/// stays within a broker's default `message.max.bytes` (1 048 588) even when
/// `max_request_bytes` is set higher for the odd large record.
pub const MAX_GROWN_BATCH_BYTES: usize = 1024 * 1024 - BATCH_HEADER_BYTES;
/// The most requests in flight per broker an idempotent producer may have: brokers
/// remember the last five batches of each producer to spot a retried one (Kafka's
/// limit on `max.in.flight.requests.per.connection` with idempotence).
pub const MAX_IN_FLIGHT_IDEMPOTENT: usize = 5;

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
    /// `batch.size`: a batch is sent once it holds this many bytes, when none of its
    /// partition is in flight (otherwise it grows: see the module docs).
    pub batch_size_bytes: usize,
    /// `max.request.size`: bound on one Produce request; larger records are refused.
    pub max_request_bytes: usize,
    /// Produce requests outstanding per broker at once, all on the producer's one
    /// connection to it (Kafka's `max.in.flight.requests.per.connection`); also the
    /// most batches of one partition in flight. At most [`MAX_IN_FLIGHT_IDEMPOTENT`]
    /// with idempotence; with acks=0 it is 1 whatever is set (see the guarantees).
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

impl ProducerConfig {
    /// Requests in flight per broker, and batches per partition: one with acks=0,
    /// whose ordering rests on each being written before the next.
    pub(crate) fn in_flight_limit(&self) -> usize {
        if self.acks == Acks::None {
            1
        } else {
            self.max_in_flight_requests.max(1)
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
    /// A transactional producer's record of failed records.
    failures: Option<Arc<FirstFailure>>,
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
        Ok(Producer::start(cluster, config, identity, None))
    }

    /// The first record that failed since the last call (only noted for a producer
    /// started by [`Producer::with_identity`]).
    pub(crate) fn take_failure(&self) -> Option<Error> {
        self.failures.as_ref().and_then(|f| f.take())
    }

    /// Starts a producer that writes as `identity` of `transactional_id` (see
    /// [`crate::transaction`]): it never takes another producer id itself. Where an
    /// idempotent producer would renew its id, every pending batch fails instead, and
    /// the transaction has to be aborted.
    pub(crate) fn with_identity(
        cluster: Arc<Cluster>,
        config: ProducerConfig,
        identity: ProducerIdentity,
        transactional_id: &str,
    ) -> Result<Producer> {
        validate(&config)?;
        let id = TransactionalId(StrBytes::from_string(transactional_id.to_string()));
        Ok(Producer::start(cluster, config, Some(identity), Some(id)))
    }

    fn start(
        cluster: Arc<Cluster>,
        config: ProducerConfig,
        identity: Option<ProducerIdentity>,
        transactional_id: Option<TransactionalId>,
    ) -> Producer {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE_RECORDS);
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let failures = transactional_id
            .is_some()
            .then(|| Arc::new(FirstFailure::default()));
        let task = tokio::spawn(
            Accumulator::new(cluster, config, rx, identity, transactional_id, seed).run(),
        );
        Producer {
            tx,
            slots: Slots::with_failures(failures.clone()),
            task,
            failures,
        }
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
    if config.idempotent && config.max_in_flight_requests > MAX_IN_FLIGHT_IDEMPOTENT {
        return bad("idempotence allows at most 5 requests in flight (max_in_flight_requests)");
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
        transactional: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let c = ProducerConfig {
            max_in_flight_requests: 6,
            ..ProducerConfig::default()
        };
        assert!(validate(&c).is_err(), "brokers remember five batches");
        let c = ProducerConfig {
            acks: Acks::Leader,
            idempotent: false,
            max_in_flight_requests: 6,
            ..ProducerConfig::default()
        };
        assert!(validate(&c).is_ok());
        assert_eq!(c.in_flight_limit(), 6);
        let c = ProducerConfig {
            acks: Acks::None,
            idempotent: false,
            ..ProducerConfig::default()
        };
        assert_eq!(c.in_flight_limit(), 1);
    }
}
