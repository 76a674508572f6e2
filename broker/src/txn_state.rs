//! Transactions as one partition sees them: the producers with a transaction open here
//! (from their first transactional batch to their marker), the transactions that ended
//! by an ABORT marker, and from those the last stable offset (LSO).
//!
//! - A transaction opens at the first transactional data batch of a producer that has
//!   none open, and ends at that producer's control batch (COMMIT or ABORT).
//! - The LSO is the lowest first offset of a transaction not yet stable, capped by the
//!   high watermark. A transaction is stable once the high watermark has passed its
//!   marker: until then a `read_committed` consumer could not tell whether its records
//!   count, so it must not read them.
//! - The aborted transactions are kept in marker order with, for each, the lowest first
//!   offset of the transactions still open after it (`stable_after`, Kafka's per-entry
//!   "last stable offset" in its `.txnindex`). A `read_committed` Fetch asks which
//!   aborted transactions overlap the range it returns; the search starts at the first
//!   marker at or past the fetch offset and stops at the first entry after which no
//!   transaction could still overlap, so it does not walk the whole history.
//!
//! Like the idempotent-producer state, this is rebuilt from the log by the leader of each
//! new term, and applied batch by batch after that. Applying is idempotent by offset: a
//! batch below the last one applied is ignored, so a rebuild that already read a batch
//! and the append that recorded it do not count it twice.

use std::collections::{HashMap, VecDeque};

use log_store::BatchHeader;
use serde::{Deserialize, Serialize};

use crate::control_batch::MarkerKind;

/// A transaction that ended with an ABORT marker in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first batch here.
    pub first_offset: u64,
    /// Offset of its ABORT marker.
    pub last_offset: u64,
    /// No transaction open after the marker started below this offset.
    stable_after: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Ended {
    first_offset: u64,
    marker_offset: u64,
}

/// The transactions of one partition. Not synchronized: the partition keeps it with its
/// producer state, under one lock. Its serialized form (a segment's producer snapshot)
/// leaves the aborted transactions out: each closed segment's `.txnindex` holds those
/// whose marker it holds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TxnState {
    /// First offset of each producer's open transaction.
    open: HashMap<i64, u64>,
    /// Ended transactions whose marker the high watermark had not passed when last
    /// asked, in marker order.
    ending: VecDeque<Ended>,
    #[serde(skip)]
    aborted: VecDeque<AbortedTxn>,
    /// Batches below this offset are applied.
    applied_to: u64,
}

impl TxnState {
    /// Applies the batch with `header` stored at `base..=last`; `marker` is the decoded
    /// marker of a control batch (`None` for a control batch whose marker could not be
    /// read, which then ends nothing).
    pub fn apply(&mut self, h: &BatchHeader, base: u64, last: u64, marker: Option<MarkerKind>) {
        if base < self.applied_to {
            return;
        }
        self.applied_to = last.saturating_add(1);
        if !h.is_transactional() {
            return;
        }
        if !h.is_control() {
            self.open.entry(h.producer_id).or_insert(base);
            return;
        }
        let Some(kind) = marker else { return };
        // A marker for a producer with nothing open here ends nothing: the
        // transaction wrote no data to this partition, or retention removed it.
        let Some(first_offset) = self.open.remove(&h.producer_id) else {
            return;
        };
        self.ending.push_back(Ended {
            first_offset,
            marker_offset: base,
        });
        if kind == MarkerKind::Abort {
            let stable_after = self.lowest_open().unwrap_or(u64::MAX).min(base + 1);
            self.aborted.push_back(AbortedTxn {
                producer_id: h.producer_id,
                first_offset,
                last_offset: base,
                stable_after,
            });
        }
    }

    fn lowest_open(&self) -> Option<u64> {
        self.open.values().copied().min()
    }

    /// The last stable offset under high watermark `hw`: what a `read_committed`
    /// consumer may read up to.
    pub fn last_stable_offset(&mut self, hw: u64) -> u64 {
        while self.ending.front().is_some_and(|e| e.marker_offset < hw) {
            self.ending.pop_front();
        }
        let ending = self.ending.iter().map(|e| e.first_offset).min();
        [self.lowest_open(), ending]
            .into_iter()
            .flatten()
            .fold(hw, u64::min)
    }

    /// The aborted transactions with records in `from..to`, in marker order.
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        let mut out = Vec::new();
        for a in self.aborted.range(start..) {
            if a.first_offset < to {
                out.push(*a);
            }
            if a.last_offset >= to && a.stable_after >= to {
                break;
            }
        }
        out
    }

    /// Forgets aborted transactions whose marker is below `log_start` (retention or
    /// DeleteRecords removed them).
    pub fn forget_before(&mut self, log_start: u64) {
        while self
            .aborted
            .front()
            .is_some_and(|a| a.last_offset < log_start)
        {
            self.aborted.pop_front();
        }
    }

    /// Aborted transactions recorded (the ones [`TxnState::forget_before`] left).
    pub fn aborted_count(&self) -> usize {
        self.aborted.len()
    }

    /// The aborted transactions recorded after the first `count`, in marker order.
    pub fn aborted_after(&self, count: usize) -> Vec<AbortedTxn> {
        self.aborted.iter().skip(count).copied().collect()
    }

    /// Sets the aborted transactions recorded before this state's open ones (read back
    /// from the segments' `.txnindex` files), in marker order.
    pub fn restore_aborted(&mut self, aborted: Vec<AbortedTxn>) {
        self.aborted = aborted.into();
    }

    /// Whether `producer_id` has a transaction open here.
    pub fn is_open(&self, producer_id: i64) -> bool {
        self.open.contains_key(&producer_id)
    }

    /// The first offset of `producer_id`'s open transaction here, if it has one.
    pub fn open_since(&self, producer_id: i64) -> Option<u64> {
        self.open.get(&producer_id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TXN: i16 = 1 << 4;
    const CONTROL: i16 = 1 << 5;

    fn header(pid: i64, attributes: i16) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            size_bytes: 100,
            partition_leader_epoch: 0,
            crc: 0,
            attributes,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: 0,
            records_count: 1,
        }
    }

    /// Applies a log written as a script: `d` data of producer `pid`, `t` transactional
    /// data, `c`/`a` commit/abort markers, one offset each.
    fn play(s: &mut TxnState, from: u64, script: &[(char, i64)]) {
        for (i, &(what, pid)) in script.iter().enumerate() {
            let at = from + i as u64;
            let (attributes, marker) = match what {
                'd' => (0, None),
                't' => (TXN, None),
                'c' => (TXN | CONTROL, Some(MarkerKind::Commit)),
                'a' => (TXN | CONTROL, Some(MarkerKind::Abort)),
                _ => unreachable!("script letter"),
            };
            s.apply(&header(pid, attributes), at, at, marker);
        }
    }

    #[test]
    fn the_lso_waits_for_open_transactions_and_for_their_markers_to_commit() {
        let mut s = TxnState::default();
        play(
            &mut s,
            0,
            &[('d', -1), ('t', 7), ('t', 8), ('t', 7), ('d', -1)],
        );
        assert_eq!(s.open.len(), 2);
        assert_eq!(s.last_stable_offset(5), 1);
        assert_eq!(s.last_stable_offset(0), 0, "never above the high watermark");
        play(&mut s, 5, &[('c', 7)]);
        assert_eq!(s.last_stable_offset(6), 2, "7 is stable, 8 still open");
        play(&mut s, 6, &[('a', 8)]);
        assert_eq!(
            s.last_stable_offset(6),
            2,
            "both ended, but the high watermark has not passed 8's marker"
        );
        assert_eq!(s.last_stable_offset(7), 7);
        assert_eq!(s.open.len(), 0);
        assert_eq!(
            s.aborted_between(0, 7),
            vec![AbortedTxn {
                producer_id: 8,
                first_offset: 2,
                last_offset: 6,
                stable_after: 7
            }]
        );
    }

    #[test]
    fn applying_a_batch_twice_counts_it_once() {
        let mut s = TxnState::default();
        play(&mut s, 0, &[('t', 7), ('a', 7)]);
        play(&mut s, 0, &[('t', 7), ('a', 7)]);
        assert_eq!(s.open.len(), 0);
        assert_eq!(s.aborted_between(0, 10).len(), 1);
    }

    #[test]
    fn a_marker_without_an_open_transaction_ends_nothing() {
        let mut s = TxnState::default();
        play(&mut s, 0, &[('a', 7), ('t', 8)]);
        assert!(s.aborted_between(0, 10).is_empty());
        assert_eq!(s.last_stable_offset(2), 1);
        let mut unreadable = TxnState::default();
        unreadable.apply(&header(8, TXN), 0, 0, None);
        unreadable.apply(&header(8, TXN | CONTROL), 1, 1, None);
        assert_eq!(unreadable.open.len(), 1);
    }

    #[test]
    fn aborted_transactions_are_found_by_overlap_without_walking_the_history() {
        let mut s = TxnState::default();
        // 9 opens at 0 and stays open across 7's three aborted transactions.
        play(
            &mut s,
            0,
            &[('t', 9), ('t', 7), ('a', 7), ('t', 7), ('a', 7)],
        );
        play(
            &mut s,
            5,
            &[('a', 9), ('t', 7), ('a', 7), ('d', -1), ('t', 7)],
        );
        play(&mut s, 10, &[('a', 7)]);
        let pids_firsts = |s: &TxnState, from, to| -> Vec<(i64, u64)> {
            s.aborted_between(from, to)
                .iter()
                .map(|a| (a.producer_id, a.first_offset))
                .collect()
        };
        assert_eq!(
            pids_firsts(&s, 0, 11),
            vec![(7, 1), (7, 3), (9, 0), (7, 6), (7, 9)]
        );
        assert_eq!(pids_firsts(&s, 3, 4), vec![(7, 3), (9, 0)], "9 spans 3..4");
        assert_eq!(pids_firsts(&s, 8, 9), Vec::<(i64, u64)>::new());
        assert_eq!(pids_firsts(&s, 5, 6), vec![(9, 0)]);
        s.forget_before(5);
        assert_eq!(pids_firsts(&s, 0, 11), vec![(9, 0), (7, 6), (7, 9)]);
    }
}
