//! A partition's batches in flight: which batch goes next, and what an answer does to
//! the partition (Kafka's and librdkafka's rules for `max.in.flight` > 1).
//!
//! A partition's unacknowledged batches wait in its queue in record order, and are
//! sent in that order. While nothing is refused, its batches in flight are the queue's
//! first `in_flight` ones. An acknowledged batch leaves the queue wherever it is, so
//! after a refusal the batches still in flight may sit behind one that is not (each is
//! marked [`Batch::in_flight`]); the partition then sends nothing (`retrying`) until
//! every batch in flight has come back, and resends from the queue's front, in order,
//! each batch with the sequence numbers it was stamped with. So the broker sees a
//! partition's batches in sequence order, with no gap:
//!
//! - the partition's first batch under a producer id (a new one, or after a renewal)
//!   is sent alone, and the next ones wait until it is acknowledged: a broker with no
//!   state for the producer id takes a batch at any sequence (Kafka and Strata both do),
//!   so a later batch sent beside it could be appended while it is refused with an
//!   error that clears (NOT_ENOUGH_REPLICAS, KAFKA_STORAGE_ERROR), and its retry would
//!   then be out of order for good;
//! - a batch refused with a retriable error is kept and retried after a backoff;
//! - batches behind it come back refused too, typically with OUT_OF_ORDER_SEQUENCE_NUMBER
//!   (the broker saw a gap): with an earlier batch unresolved that is retriable, and
//!   does not count as an attempt of theirs;
//! - a batch acknowledged while one before it is unresolved (the broker appended both
//!   before answering the first with an error) resolves at once; the earlier one's
//!   resend then comes back DUPLICATE_SEQUENCE_NUMBER, which counts as success.
//!
//! A batch fails for good either with nothing of it stored, or with its outcome
//! unknown:
//!
//! - *Nothing stored*: every attempt was answered by the broker with an error (or never
//!   reached a connection), and the last error is not retriable, or retries or the
//!   delivery timeout ran out. The producer id stays: the broker's sequence for the
//!   partition still ends before the batch, so the partition's later batches in flight
//!   come back OUT_OF_ORDER_SEQUENCE_NUMBER (retriable, the gap being ours), and once all
//!   are back the later batches' base sequences move down by the failed batch's record
//!   count (re-stamped) and are resent. Other partitions are untouched.
//! - *Outcome unknown*: an attempt was written to a connection and got no answer (the
//!   connection was lost, the request timed out, the answer did not decode), and the
//!   batch then ran out of retries or time. The broker may hold it, so its sequence
//!   numbers cannot be given to others: the producer takes a new producer id once
//!   nothing is in flight. The same holds when the broker's sequence state disagrees
//!   with ours (OUT_OF_ORDER_SEQUENCE_NUMBER for the first unacknowledged batch,
//!   UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH).
//!
//! At a renewal, every pending batch with an attempt that got no answer fails with
//! that attempt's error (it may be stored under the old id, where the broker could not
//! recognise a resend under the new one); only batches never sent or refused every
//! time are re-stamped with the new id, from sequence 0. So a renewal stores nothing
//! twice.
//!
//! Without idempotence the broker checks no sequence: batches behind a refused one may
//! be appended before its retry (the reordering the module docs describe).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::Error;

use super::accumulator::{Batch, PartitionQueue};
use super::ProducerConfig;

/// Kafka's `OUT_OF_ORDER_SEQUENCE_NUMBER`.
pub(super) const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
/// Kafka's `INVALID_PRODUCER_EPOCH`.
const INVALID_PRODUCER_EPOCH: i16 = 47;
/// Kafka's `UNKNOWN_PRODUCER_ID`.
const UNKNOWN_PRODUCER_ID: i16 = 59;

/// How one attempt of a batch ended.
#[derive(Debug)]
pub(super) enum Attempt {
    /// The broker appended it (or had it already: a duplicate), at this base offset
    /// when known.
    Appended(Option<i64>),
    /// The broker answered with this error for the batch, or the request never reached
    /// a connection: this attempt stored nothing.
    Refused(Error),
    /// Written to a connection, but no answer came (connection lost, timeout, an
    /// answer that did not decode): the broker may have stored it.
    Lost(Error),
}

/// What an answer did to one of a partition's batches.
#[derive(Debug)]
pub(super) enum Settled {
    /// No batch of that serial is in flight on this partition (nothing to do).
    Unknown,
    /// Acknowledged and taken off the queue, with the base offset when known.
    Acknowledged(Batch, Option<i64>),
    /// Kept, to be resent once the partition's batches in flight are back.
    Retry,
    /// Failed for good and taken off the queue, with the last error (a retriable one
    /// when retries or time ran out). `renew_id`: its outcome is unknown (or the
    /// broker's sequence state disagrees with ours), so the producer id must be
    /// renewed; otherwise nothing of it was stored, and the partition closes the gap.
    Failed {
        batch: Batch,
        error: Error,
        renew_id: bool,
    },
}

/// What settling needs beyond the partition.
pub(super) struct SettleContext<'a> {
    pub(super) config: &'a ProducerConfig,
    /// The producer is idempotent.
    pub(super) idempotent: bool,
    /// The producer id is to be renewed: every batch will be re-stamped, so
    /// out-of-order refusals are retried.
    pub(super) renewing: bool,
    pub(super) now: Instant,
}

impl PartitionQueue {
    /// Batches that may be in flight at once: `limit`, or one while the partition's
    /// first batch under the current producer id is unacknowledged.
    pub(super) fn send_limit(&self, limit: usize) -> usize {
        if self.awaiting_first_ack {
            1
        } else {
            limit
        }
    }

    /// Whether the partition may send a batch now (readiness of the batch itself
    /// aside): nothing failed while batches are in flight, no backoff running, fewer
    /// than its send limit in flight, and a batch behind them.
    pub(super) fn may_send(&self, now: Instant, limit: usize) -> bool {
        !self.retrying
            && self.in_flight < self.send_limit(limit)
            && self.backoff_until.is_none_or(|t| now >= t)
            && self.batches.len() > self.in_flight
    }

    /// The batch [`PartitionQueue::may_send`] is about: the first not in flight (while
    /// the partition may send, the batches in flight are the queue's first ones).
    pub(super) fn next_to_send(&self) -> Option<&Batch> {
        self.batches.get(self.in_flight)
    }

    /// Marks the next batch as sent to `node` on its connection `link`.
    pub(super) fn mark_sent(&mut self, node: i32, link: u64) {
        let index = self.in_flight;
        if let Some(batch) = self.batches.get_mut(index) {
            batch.in_flight = true;
            batch.attempts += 1;
            self.in_flight += 1;
            self.backoff_until = None;
            self.pinned = Some((node, link));
        }
    }

    /// Whether batches in flight keep the partition on another node or connection
    /// than `(node, link)`: then it waits for them before sending there.
    pub(super) fn pinned_elsewhere(&self, node: i32, link: Option<u64>) -> bool {
        self.in_flight > 0
            && self
                .pinned
                .is_some_and(|(n, l)| n != node || link.is_some_and(|link| link != l))
    }

    /// Applies how the attempt of the batch in flight whose first record is `serial`
    /// ended.
    pub(super) fn settle(
        &mut self,
        serial: u64,
        attempt: Attempt,
        cx: &SettleContext<'_>,
    ) -> Settled {
        let Some(index) = self
            .batches
            .iter()
            .position(|b| b.in_flight && b.first_serial == serial)
        else {
            return Settled::Unknown;
        };
        self.in_flight -= 1;
        let settled = match attempt {
            Attempt::Appended(base_offset) => match self.batches.remove(index) {
                Some(batch) => {
                    self.awaiting_first_ack = false;
                    Settled::Acknowledged(batch, base_offset)
                }
                None => Settled::Unknown, // `index` came from `position`
            },
            Attempt::Refused(e) => self.refused(index, e, cx),
            Attempt::Lost(e) => {
                if let Some(batch) = self.batches.get_mut(index) {
                    batch.maybe_stored = Some(e.clone());
                }
                self.refused(index, e, cx)
            }
        };
        // Once every batch in flight is back, gaps close and the partition resends
        // from its front.
        if self.in_flight == 0 {
            self.retrying = false;
            self.close_gaps();
        }
        settled
    }

    /// A refusal (or a lost request) of the batch at `index`.
    fn refused(&mut self, index: usize, e: Error, cx: &SettleContext<'_>) -> Settled {
        let config = cx.config;
        let behind_unresolved = index > 0 || cx.renewing || !self.gaps.is_empty();
        let Some(batch) = self.batches.get_mut(index) else {
            return Settled::Unknown;
        };
        batch.in_flight = false;
        let out_of_order = e.kafka_code() == Some(OUT_OF_ORDER_SEQUENCE_NUMBER);
        if out_of_order && cx.idempotent && behind_unresolved {
            // Refused for the gap an earlier batch left: not an attempt of its own.
            batch.attempts = batch.attempts.saturating_sub(1);
            if batch.last_error.is_none() {
                batch.last_error = Some(e);
            }
            self.retrying = self.in_flight > 0;
            return Settled::Retry;
        }
        let elapsed = cx.now.saturating_duration_since(batch.created);
        let retry = e.is_retriable()
            && batch.attempts <= config.retries
            && elapsed < config.delivery_timeout;
        if retry {
            let backoff = backoff(config, batch.attempts);
            batch.last_error = Some(e);
            let until = cx.now + backoff;
            self.backoff_until = Some(self.backoff_until.map_or(until, |t| t.max(until)));
            self.retrying = self.in_flight > 0;
            return Settled::Retry;
        }
        let Some(batch) = self.batches.remove(index) else {
            return Settled::Unknown;
        };
        let sequence_disagrees = matches!(
            e.kafka_code(),
            Some(OUT_OF_ORDER_SEQUENCE_NUMBER | UNKNOWN_PRODUCER_ID | INVALID_PRODUCER_EPOCH)
        );
        let renew_id = cx.idempotent && (batch.maybe_stored.is_some() || sequence_disagrees);
        if cx.idempotent && !renew_id {
            self.leave_gap(&batch);
        }
        Settled::Failed {
            batch,
            error: e,
            renew_id,
        }
    }

    /// `batch`, which had a sequence, failed with nothing of it stored: the later
    /// batches in flight will come back out of order, so nothing is sent until they are
    /// back; then [`PartitionQueue::close_gaps`] renumbers the later batches.
    pub(super) fn leave_gap(&mut self, batch: &Batch) {
        if batch.sequence.is_none() {
            return;
        }
        let records = i32::try_from(batch.records.len()).unwrap_or(i32::MAX);
        self.gaps.push((batch.first_serial, records));
        self.retrying |= self.in_flight > 0;
    }

    /// Once nothing is in flight: moves each stamped batch's base sequence down by the
    /// records of the failed batches before it (its bytes re-stamped on the next send),
    /// and the next sequence by all of them.
    pub(super) fn close_gaps(&mut self) {
        if self.gaps.is_empty() || self.in_flight > 0 {
            return;
        }
        let gaps = std::mem::take(&mut self.gaps);
        let records_before = |serial: u64| {
            gaps.iter()
                .filter(|(s, _)| *s < serial)
                .fold(0i32, |sum, (_, n)| sum.wrapping_add(*n))
        };
        for batch in &mut self.batches {
            let (Some(sequence), shift) = (batch.sequence, records_before(batch.first_serial))
            else {
                continue;
            };
            if shift != 0 {
                batch.sequence = Some(sequence.wrapping_sub(shift) & i32::MAX);
                batch.mark_stale();
            }
        }
        let total = records_before(u64::MAX);
        self.next_sequence = self.next_sequence.wrapping_sub(total) & i32::MAX;
    }

    /// The producer id was renewed (nothing is in flight): takes out the batches whose
    /// outcome is unknown, to be failed, and makes the others take new sequence
    /// numbers, from 0, as they are sent.
    pub(super) fn renew(&mut self) -> VecDeque<Batch> {
        let (unknown, kept): (VecDeque<Batch>, _) = std::mem::take(&mut self.batches)
            .into_iter()
            .partition(|b| b.maybe_stored.is_some());
        self.batches = kept;
        for batch in &mut self.batches {
            if batch.sequence.take().is_some() {
                batch.mark_stale();
            }
        }
        self.next_sequence = 0;
        self.gaps.clear();
        self.awaiting_first_ack = false; // set again as sequence 0 is stamped
        unknown
    }
}

/// The wait before a batch's next attempt: `retry_backoff`, doubled per attempt, at
/// most `retry_backoff_max`.
pub(super) fn backoff(config: &ProducerConfig, attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    config
        .retry_backoff
        .saturating_mul(1 << shift)
        .min(config.retry_backoff_max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, ProducerIdentity};
    use crate::delivery::Slots;
    use crate::error::KafkaCode;
    use crate::producer::accumulator::Body;
    use crate::producer::accumulator::Pending;
    use crate::record::Compression;

    const NOT_LEADER: i16 = 6;
    const MESSAGE_TOO_LARGE: i16 = 10;
    const NOT_ENOUGH_REPLICAS: i16 = 19;

    fn kafka(code: i16) -> Error {
        Error::Kafka {
            context: "produce to t-0".into(),
            code: KafkaCode(code),
            message: None,
        }
    }

    /// A queue of `n` batches of one record each (serials 1..=n), sealed with
    /// sequences 0..n as a first send would.
    fn queue(n: u64, now: Instant) -> PartitionQueue {
        let mut q = PartitionQueue::default();
        let identity = Some(ProducerIdentity {
            producer_id: 7,
            producer_epoch: 0,
            transactional: false,
        });
        for serial in 1..=n {
            let mut b = Batch::open(serial, 64, now);
            let mut builder = BatchBuilder::with_capacity(64);
            builder.push(None, Some(b"x"), &[], 0).expect("a record");
            let seq = i32::try_from(serial - 1).expect("small");
            let bytes = builder
                .finish(identity, seq, Compression::None)
                .expect("sealed");
            b.body = Body::Sealed {
                bytes,
                stale_sequence: false,
            };
            b.sequence = Some(seq);
            let (reply, _) = Slots::with_failures(None).next();
            b.records.push(Pending {
                reply,
                timestamp_ms: 0,
            });
            q.batches.push_back(b);
        }
        q.next_sequence = i32::try_from(n).expect("small");
        q
    }

    fn lost() -> Error {
        Error::io("broker", std::io::Error::other("connection reset"))
    }

    /// Each batch's sequence, and whether its bytes must be re-stamped.
    fn sequences(q: &PartitionQueue) -> Vec<(Option<i32>, bool)> {
        let stale = |b: &Batch| {
            matches!(
                b.body,
                Body::Sealed {
                    stale_sequence: true,
                    ..
                }
            )
        };
        q.batches.iter().map(|b| (b.sequence, stale(b))).collect()
    }

    fn config() -> ProducerConfig {
        ProducerConfig {
            retry_backoff: Duration::from_millis(100),
            ..ProducerConfig::default()
        }
    }

    fn cx(config: &ProducerConfig, now: Instant) -> SettleContext<'_> {
        SettleContext {
            config,
            idempotent: true,
            renewing: false,
            now,
        }
    }

    fn send_all(q: &mut PartitionQueue, now: Instant, limit: usize) -> Vec<u64> {
        let mut sent = Vec::new();
        while q.may_send(now, limit) {
            sent.push(q.next_to_send().map(|b| b.first_serial).unwrap_or(0));
            q.mark_sent(0, 1);
        }
        sent
    }

    fn serials(q: &PartitionQueue) -> Vec<u64> {
        q.batches.iter().map(|b| b.first_serial).collect()
    }

    #[test]
    fn up_to_the_limit_in_flight_in_queue_order() {
        let now = Instant::now();
        let mut q = queue(7, now);
        assert_eq!(send_all(&mut q, now, 5), vec![1, 2, 3, 4, 5]);
        assert_eq!(q.in_flight, 5);
        let config = config();
        let ok = Attempt::Appended(Some(0));
        assert!(
            matches!(q.settle(1, ok, &cx(&config, now)), Settled::Acknowledged(b, Some(0)) if b.first_serial == 1)
        );
        assert_eq!(
            send_all(&mut q, now, 5),
            vec![6],
            "a slot freed, the next goes"
        );
        assert!(matches!(
            q.settle(99, Attempt::Appended(None), &cx(&config, now)),
            Settled::Unknown
        ));
    }

    #[test]
    fn a_retried_batch_waits_for_all_in_flight_then_resends_in_order() {
        let now = Instant::now();
        let config = config();
        let mut q = queue(6, now);
        send_all(&mut q, now, 5); // 1..=5 in flight
                                  // Batch 1 acknowledged, batch 2 refused (retriable), 3.. refused out of order.
        assert!(matches!(
            q.settle(1, Attempt::Appended(Some(0)), &cx(&config, now)),
            Settled::Acknowledged(..)
        ));
        assert!(matches!(
            q.settle(2, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, now)),
            Settled::Retry
        ));
        assert!(q.retrying, "held while batches are in flight");
        assert!(!q.may_send(now + Duration::from_secs(10), 5));
        for serial in [3, 4] {
            let r = q.settle(
                serial,
                Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
                &cx(&config, now),
            );
            assert!(matches!(r, Settled::Retry), "{r:?}");
            assert!(!q.may_send(now + Duration::from_secs(10), 5));
        }
        let r = q.settle(
            5,
            Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
            &cx(&config, now),
        );
        assert!(matches!(r, Settled::Retry));
        assert_eq!(q.in_flight, 0);
        assert!(!q.retrying);
        assert!(!q.may_send(now, 5), "the backoff runs");
        let later = now + Duration::from_secs(1);
        // Resent from the first unacknowledged batch, in order, with their bytes.
        assert_eq!(send_all(&mut q, later, 5), vec![2, 3, 4, 5, 6]);
        let kept = sequences(&q);
        assert_eq!(
            kept[..4],
            [
                (Some(1), false),
                (Some(2), false),
                (Some(3), false),
                (Some(4), false)
            ]
        );
        // Out-of-order refusals did not count as attempts: 3..=5 are on their first.
        let attempts: Vec<u32> = q.batches.iter().map(|b| b.attempts).collect();
        assert_eq!(attempts, vec![2, 1, 1, 1, 1]);
    }

    #[test]
    fn out_of_order_for_the_first_unacknowledged_batch_fails_it() {
        let now = Instant::now();
        let config = config();
        let mut q = queue(2, now);
        send_all(&mut q, now, 5);
        let r = q.settle(
            1,
            Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
            &cx(&config, now),
        );
        match r {
            Settled::Failed {
                batch, renew_id, ..
            } => {
                assert_eq!(batch.first_serial, 1);
                assert!(renew_id);
            }
            other => panic!("{other:?}"),
        }
        // Batch 2 is now first, but the producer id is being renewed: retried.
        let renewing = SettleContext {
            renewing: true,
            ..cx(&config, now)
        };
        let r = q.settle(
            2,
            Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
            &renewing,
        );
        assert!(matches!(r, Settled::Retry), "{r:?}");
        assert_eq!(serials(&q), vec![2]);
    }

    #[test]
    fn a_later_batch_acknowledged_before_an_earlier_retry_resolves_at_once() {
        let now = Instant::now();
        let config = config();
        let mut q = queue(3, now);
        send_all(&mut q, now, 5);
        assert!(matches!(
            q.settle(1, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, now)),
            Settled::Retry
        ));
        // The broker appended 2 (it had 1 after all): acknowledged now.
        assert!(matches!(
            q.settle(2, Attempt::Appended(Some(1)), &cx(&config, now)),
            Settled::Acknowledged(..)
        ));
        assert!(matches!(
            q.settle(3, Attempt::Appended(Some(2)), &cx(&config, now)),
            Settled::Acknowledged(..)
        ));
        assert_eq!(serials(&q), vec![1]);
        let later = now + Duration::from_secs(1);
        assert_eq!(
            send_all(&mut q, later, 5),
            vec![1],
            "only the refused one again"
        );
        // Its resend is a duplicate: `partition_result` turns that into success.
        assert!(matches!(
            q.settle(1, Attempt::Appended(Some(0)), &cx(&config, later)),
            Settled::Acknowledged(..)
        ));
        assert!(q.batches.is_empty());
    }

    #[test]
    fn non_retriable_and_exhausted_batches_fail_for_good() {
        let now = Instant::now();
        let config = ProducerConfig {
            retries: 1,
            ..config()
        };
        let mut q = queue(2, now);
        send_all(&mut q, now, 5);
        let r = q.settle(
            1,
            Attempt::Refused(kafka(MESSAGE_TOO_LARGE)),
            &cx(&config, now),
        );
        assert!(
            matches!(r, Settled::Failed { ref error, .. } if error.kafka_code() == Some(MESSAGE_TOO_LARGE))
        );
        assert!(matches!(
            q.settle(2, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, now)),
            Settled::Retry
        ));
        let later = now + Duration::from_secs(1);
        assert_eq!(send_all(&mut q, later, 5), vec![2]);
        let r = q.settle(2, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, later));
        assert!(
            matches!(r, Settled::Failed { ref error, .. } if error.is_retriable()),
            "{r:?}"
        );
    }

    #[test]
    fn in_flight_batches_pin_the_partition_to_their_connection() {
        let now = Instant::now();
        let mut q = queue(2, now);
        assert!(!q.pinned_elsewhere(3, Some(1)), "nothing in flight");
        q.mark_sent(0, 1);
        assert!(!q.pinned_elsewhere(0, Some(1)));
        assert!(q.pinned_elsewhere(0, Some(2)), "a new connection waits");
        assert!(q.pinned_elsewhere(3, None), "a new leader waits");
    }

    #[test]
    fn the_first_batch_under_an_id_goes_alone_until_acknowledged() {
        let now = Instant::now();
        let config = config();
        let mut q = queue(4, now);
        q.awaiting_first_ack = true; // as `prepare` sets on stamping sequence 0
        assert_eq!(send_all(&mut q, now, 5), vec![1], "alone");
        assert!(q.blocked(5), "so the batches behind it may grow");
        // Refused with an error that may clear before the next request: still alone.
        assert!(matches!(
            q.settle(
                1,
                Attempt::Refused(kafka(NOT_ENOUGH_REPLICAS)),
                &cx(&config, now)
            ),
            Settled::Retry
        ));
        let later = now + Duration::from_secs(1);
        assert_eq!(send_all(&mut q, later, 5), vec![1]);
        assert!(matches!(
            q.settle(1, Attempt::Appended(Some(0)), &cx(&config, later)),
            Settled::Acknowledged(..)
        ));
        assert_eq!(
            send_all(&mut q, later, 5),
            vec![2, 3, 4],
            "then up to the limit"
        );
    }

    #[test]
    fn a_definite_refusal_keeps_the_id_and_closes_the_gap() {
        let now = Instant::now();
        let config = config();
        let mut q = queue(5, now);
        send_all(&mut q, now, 5);
        // Batch 1 is retried; batch 2 is refused for good; 3..=5 find the gap.
        assert!(matches!(
            q.settle(1, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, now)),
            Settled::Retry
        ));
        let r = q.settle(
            2,
            Attempt::Refused(kafka(MESSAGE_TOO_LARGE)),
            &cx(&config, now),
        );
        assert!(
            matches!(r, Settled::Failed { ref batch, renew_id: false, .. } if batch.first_serial == 2),
            "{r:?}"
        );
        for serial in [3, 4] {
            let r = q.settle(
                serial,
                Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
                &cx(&config, now),
            );
            assert!(matches!(r, Settled::Retry), "{r:?}");
            assert_eq!(q.gaps.len(), 1, "closed once all are back");
        }
        let r = q.settle(
            5,
            Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
            &cx(&config, now),
        );
        assert!(matches!(r, Settled::Retry), "{r:?}");
        // Batch 1 keeps sequence 0; the later ones move down by batch 2's record.
        assert_eq!(
            sequences(&q),
            vec![
                (Some(0), false),
                (Some(1), true),
                (Some(2), true),
                (Some(3), true)
            ]
        );
        assert_eq!(q.next_sequence, 4);
        assert!(q.gaps.is_empty());
        let later = now + Duration::from_secs(1);
        assert_eq!(send_all(&mut q, later, 5), vec![1, 3, 4, 5]);
    }

    #[test]
    fn a_definite_refusal_of_the_only_batch_in_flight_closes_the_gap_at_once() {
        let now = Instant::now();
        let config = config();
        let mut q = queue(3, now);
        q.awaiting_first_ack = true;
        send_all(&mut q, now, 5);
        let r = q.settle(
            1,
            Attempt::Refused(kafka(MESSAGE_TOO_LARGE)),
            &cx(&config, now),
        );
        assert!(
            matches!(
                r,
                Settled::Failed {
                    renew_id: false,
                    ..
                }
            ),
            "{r:?}"
        );
        assert_eq!(sequences(&q), vec![(Some(0), true), (Some(1), true)]);
        assert!(
            q.awaiting_first_ack,
            "nothing acknowledged under this id yet"
        );
        assert_eq!(send_all(&mut q, now, 5), vec![2]);
    }

    #[test]
    fn only_an_unknown_outcome_renews_and_renewal_fails_every_unknown_batch() {
        let now = Instant::now();
        let config = ProducerConfig {
            retries: 1,
            ..config()
        };
        let mut q = queue(4, now);
        send_all(&mut q, now, 5);
        // The connection is lost after the broker answered batch 1 (retriable) and
        // before batches 3 and 4 were answered: their outcome is unknown.
        assert!(matches!(
            q.settle(1, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, now)),
            Settled::Retry
        ));
        let r = q.settle(
            2,
            Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
            &cx(&config, now),
        );
        assert!(matches!(r, Settled::Retry));
        for serial in [3, 4] {
            assert!(matches!(
                q.settle(serial, Attempt::Lost(lost()), &cx(&config, now)),
                Settled::Retry
            ));
        }
        let later = now + Duration::from_secs(1);
        assert_eq!(send_all(&mut q, later, 5), vec![1, 2, 3, 4]);
        // Batch 3's resend is lost too, and that was its last retry.
        assert!(matches!(
            q.settle(1, Attempt::Appended(Some(0)), &cx(&config, later)),
            Settled::Acknowledged(..)
        ));
        assert!(matches!(
            q.settle(2, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, later)),
            Settled::Retry
        ));
        let r = q.settle(3, Attempt::Lost(lost()), &cx(&config, later));
        assert!(matches!(r, Settled::Failed { renew_id: true, .. }), "{r:?}");
        let renewing = SettleContext {
            renewing: true,
            ..cx(&config, later)
        };
        let r = q.settle(
            4,
            Attempt::Refused(kafka(OUT_OF_ORDER_SEQUENCE_NUMBER)),
            &renewing,
        );
        assert!(matches!(r, Settled::Retry), "{r:?}");
        // At the renewal, batch 4 (an earlier attempt unanswered) comes out to fail;
        // batch 2, refused every time, takes new sequence numbers as it is sent.
        let unknown: Vec<u64> = q.renew().iter().map(|b| b.first_serial).collect();
        assert_eq!(unknown, vec![4]);
        assert_eq!(serials(&q), vec![2]);
        assert_eq!(sequences(&q), vec![(None, true)]);
        assert_eq!(q.next_sequence, 0);
    }

    #[test]
    fn a_batch_refused_every_time_stores_nothing_when_its_retries_run_out() {
        let now = Instant::now();
        let config = ProducerConfig {
            retries: 0,
            ..config()
        };
        let mut q = queue(2, now);
        send_all(&mut q, now, 5);
        let r = q.settle(1, Attempt::Refused(kafka(NOT_LEADER)), &cx(&config, now));
        assert!(
            matches!(
                r,
                Settled::Failed {
                    renew_id: false,
                    ..
                }
            ),
            "{r:?}"
        );
        let r = q.settle(1, Attempt::Lost(lost()), &cx(&config, now));
        assert!(matches!(r, Settled::Unknown), "settled once");
        let r = q.settle(2, Attempt::Lost(lost()), &cx(&config, now));
        assert!(matches!(r, Settled::Failed { renew_id: true, .. }), "{r:?}");
    }
}
