//! What a `read_committed` consumer sees of a partition (Kafka's READ_COMMITTED
//! isolation): whole batches up to the last stable offset, with the aborted
//! transactions among them, whose records the client skips. A `read_uncommitted`
//! consumer reads up to the high watermark with [`Partition::read`].

use bytes::Bytes;
use log_store::Batches;

use super::replica_state::if_loaded;
use super::{loaded, read_past_empty_batches, Mode, Partition, PartitionError, PartitionResult};
use crate::txn_state::AbortedTxn;

/// A `read_committed` read.
#[derive(Debug, Clone)]
pub struct CommittedRead {
    pub records: Bytes,
    pub last_stable: u64,
    /// The aborted transactions with records in `records`.
    pub aborted: Vec<AbortedTxn>,
}

impl Partition {
    /// The last stable offset on the partition's leader: the high watermark, held back
    /// to the first offset of the earliest transaction not yet stable.
    pub fn last_stable_offset(&self) -> PartitionResult<u64> {
        let Mode::Hosted(h) = &self.mode else {
            return Err(PartitionError::NotLeader);
        };
        let view = *h.view.borrow();
        if !view.is_leader {
            return Err(PartitionError::NotLeader);
        }
        let hw = self.high_watermark();
        Ok(loaded(&h.state, &h.log, view.term, &self.shared.metrics)?
            .txns
            .last_stable_offset(hw))
    }

    /// [`Partition::last_stable_offset`] if this leader already follows its
    /// transactions in the current term (for `/metrics`: a scrape does not make a leader
    /// read its whole log).
    pub fn last_stable_offset_if_loaded(&self) -> Option<u64> {
        let Mode::Hosted(h) = &self.mode else {
            return None;
        };
        let view = *h.view.borrow();
        if !view.is_leader {
            return None;
        }
        let hw = self.high_watermark();
        if_loaded(&h.state, view.term).map(|mut s| s.txns.last_stable_offset(hw))
    }

    /// Whether this leader knows producer `producer_id` to have a transaction open here
    /// (its first batch was verified with the coordinator); false when the state is
    /// not loaded in this term.
    pub fn has_open_transaction(&self, producer_id: i64) -> bool {
        let Mode::Hosted(h) = &self.mode else {
            return false;
        };
        let term = h.view.borrow().term;
        if_loaded(&h.state, term).is_some_and(|s| s.txns.is_open(producer_id))
    }

    /// Whole batches from `offset` as [`Partition::read`] returns them, but never past
    /// the last stable offset, and the aborted transactions among them.
    pub fn read_committed(&self, offset: u64, max_bytes: usize) -> PartitionResult<CommittedRead> {
        let last_stable = self.last_stable_offset()?;
        if offset >= last_stable {
            return Ok(CommittedRead {
                records: Bytes::new(),
                last_stable,
                aborted: Vec::new(),
            });
        }
        let (records, log_start) = self.with_log(|log| {
            let read = read_past_empty_batches(log, offset, max_bytes, last_stable);
            (read, log.log_start_offset())
        })?;
        let records = records.map_err(PartitionError::Log)?;
        let end = Batches::new(records.clone())
            .map_while(Result::ok)
            .last()
            .map_or(offset, |(h, _)| h.last_offset() as u64 + 1);
        let Mode::Hosted(h) = &self.mode else {
            return Err(PartitionError::NotLeader);
        };
        let view = *h.view.borrow();
        let mut state = loaded(&h.state, &h.log, view.term, &self.shared.metrics)?;
        state.txns.forget_before(log_start);
        Ok(CommittedRead {
            aborted: state.txns.aborted_between(offset, end),
            records,
            last_stable,
        })
    }
}
