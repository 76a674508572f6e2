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
//!
//! This module is the public API ([`Producer`], its configuration and the queue to the
//! task); `accumulator` holds the task's buffers (records into per-partition batches),
//! `sender` turns ready batches into Produce requests and settles their answers (as
//! Kafka's KafkaProducer, RecordAccumulator and Sender).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::InitProducerIdRequest;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::batch::{ProducerIdentity, BATCH_HEADER_BYTES};
use crate::cluster::Cluster;
pub use crate::delivery::Delivery;
use crate::delivery::{Reply, Slots};
use crate::error::{Error, Result};
use crate::partitioner::NullKeyPartitioning;
use crate::record::{Compression, ProducerRecord, RecordMetadata};

mod accumulator;
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
    }
}
