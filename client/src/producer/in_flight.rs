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
mod tests;
