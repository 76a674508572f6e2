//! Idempotent-producer state of one partition: for each producer id, its epoch and the
//! sequence ranges of its last five batches (Kafka keeps five, matching the clients'
//! `max.in.flight.requests.per.connection` limit under idempotence).
//!
//! A retried batch whose sequence range matches one of those five is a duplicate: it is
//! not appended again, and the client is told where the original landed. A batch that
//! does not continue the last sequence is refused with OUT_OF_ORDER_SEQUENCE_NUMBER. A
//! producer the partition has no state for is accepted at any sequence, as Kafka does:
//! retention or DeleteRecords may have removed its batches before a restart. A new
//! leader rebuilds the state from the newest snapshot beside a segment and the batch
//! headers after it (`partition/sidecars.rs`).

use std::collections::{HashMap, VecDeque};

use log_store::BatchHeader;
use serde::{Deserialize, Serialize};

/// Batches remembered per producer for duplicate detection.
pub const BATCHES_REMEMBERED_PER_PRODUCER: usize = 5;

/// `producerId` of a batch that is not idempotent.
pub const NO_PRODUCER_ID: i64 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct SequencedBatch {
    first_seq: i32,
    last_seq: i32,
    base_offset: u64,
    last_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<SequencedBatch>,
    /// Max timestamp of its last batch (-1 before one).
    last_timestamp: i64,
    /// Epoch of the coordinator that wrote its last transaction marker (-1: none).
    coordinator_epoch: i32,
}

impl ProducerEntry {
    fn new(epoch: i16) -> ProducerEntry {
        ProducerEntry {
            epoch,
            batches: VecDeque::with_capacity(BATCHES_REMEMBERED_PER_PRODUCER),
            last_timestamp: -1,
            coordinator_epoch: -1,
        }
    }
}

/// A producer as DescribeProducers shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// Sequence of the last record of its last batch (-1: none since its epoch began).
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not idempotent, or the next batch in sequence: append it.
    Append,
    /// Already in the log at these offsets: answer success, append nothing.
    Duplicate { base_offset: u64, last_offset: u64 },
    /// Refuse it.
    Refuse(SequenceRefusal),
}

/// Why a batch does not fit its producer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceRefusal {
    /// A producer id with a negative sequence or epoch.
    #[error("producer {producer_id}: negative base sequence or epoch")]
    Malformed { producer_id: i64 },
    /// An epoch older than the producer's current one (a fenced zombie).
    #[error("producer {producer_id}: epoch {epoch} is older than {current}")]
    StaleEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    /// Not the next sequence (a gap, or a new epoch not starting at 0).
    #[error("producer {producer_id}: sequence {sequence} is out of order")]
    OutOfOrder { producer_id: i64, sequence: i32 },
    /// An operator's abort marker for a producer with no transaction open here.
    #[error("producer {producer_id} has no transaction open here")]
    NoOpenTransaction { producer_id: i64 },
    /// An operator's abort marker at an epoch other than the producer's.
    #[error("producer {producer_id}: epoch {epoch} is not its current {current:?}")]
    NotCurrentEpoch {
        producer_id: i64,
        epoch: i16,
        current: Option<i16>,
    },
}

fn out_of_order(h: &BatchHeader) -> SequenceRefusal {
    SequenceRefusal::OutOfOrder {
        producer_id: h.producer_id,
        sequence: h.base_sequence,
    }
}

/// The last sequence number a batch covers (sequences wrap at `i32::MAX` to 0).
fn last_sequence(h: &BatchHeader) -> i32 {
    let delta = h.last_offset_delta.max(0) as i64;
    ((h.base_sequence as i64 + delta) % (i32::MAX as i64 + 1)) as i32
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// Per-partition producer state. Not synchronized: the partition holds it under the same
/// lock as its log, so the check and the append are one step.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStates {
    /// How a batch with this header fits the producer's sequence.
    pub fn check(&self, h: &BatchHeader) -> SequenceCheck {
        if h.producer_id == NO_PRODUCER_ID {
            return SequenceCheck::Append;
        }
        if h.base_sequence < 0 || h.producer_epoch < 0 {
            return SequenceCheck::Refuse(SequenceRefusal::Malformed {
                producer_id: h.producer_id,
            });
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // Unknown here: new, or its batches were deleted by retention or
            // DeleteRecords before a restart. Kafka accepts any sequence then.
            return SequenceCheck::Append;
        };
        if h.producer_epoch < entry.epoch {
            return SequenceCheck::Refuse(SequenceRefusal::StaleEpoch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current: entry.epoch,
            });
        }
        if h.producer_epoch > entry.epoch {
            // A bumped epoch restarts the sequence.
            return if h.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Refuse(out_of_order(h))
            };
        }
        let last = last_sequence(h);
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last)
        {
            return SequenceCheck::Duplicate {
                base_offset: b.base_offset,
                last_offset: b.last_offset,
            };
        }
        match entry.batches.back() {
            Some(b) if h.base_sequence != next_sequence(b.last_seq) => {
                SequenceCheck::Refuse(out_of_order(h))
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Records a batch appended at `base_offset..=last_offset` (also used when rebuilding
    /// from the log, where every batch was accepted once).
    pub fn record(&mut self, h: &BatchHeader, base_offset: u64, last_offset: u64) {
        if h.producer_id == NO_PRODUCER_ID || h.base_sequence < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry::new(h.producer_epoch));
        entry.last_timestamp = h.max_timestamp;
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_REMEMBERED_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(SequencedBatch {
            first_seq: h.base_sequence,
            last_seq: last_sequence(h),
            base_offset,
            last_offset,
        });
    }

    /// Notes a transaction marker of `producer_id` at `epoch`, written by the
    /// coordinator at `coordinator_epoch`: a newer epoch (the coordinator fenced the
    /// producer) replaces the producer's, so its batches with an older epoch are
    /// refused from now on; its sequence starts again.
    pub fn end_transaction(&mut self, producer_id: i64, epoch: i16, coordinator_epoch: i32) {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry::new(epoch));
        entry.coordinator_epoch = coordinator_epoch;
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
    }

    /// The current epoch of `producer_id`, if tracked.
    pub fn epoch_of(&self, producer_id: i64) -> Option<i16> {
        self.producers.get(&producer_id).map(|e| e.epoch)
    }

    /// Every producer tracked, by producer id.
    pub fn active(&self) -> Vec<ActiveProducer> {
        let mut all: Vec<ActiveProducer> = self
            .producers
            .iter()
            .map(|(&producer_id, e)| ActiveProducer {
                producer_id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
            })
            .collect();
        all.sort_by_key(|p| p.producer_id);
        all
    }

    /// Producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// No producer tracked.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            size_bytes: 100,
            partition_leader_epoch: 0,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: records,
        }
    }

    #[test]
    fn active_producers_show_last_sequence_timestamp_and_marker() {
        let mut s = ProducerStates::default();
        let mut h = header(9, 0, 0, 3);
        h.max_timestamp = 1234;
        s.record(&h, 10, 12);
        s.record(&header(4, 1, 0, 1), 13, 13);
        s.end_transaction(9, 0, 7);
        let all = s.active();
        assert_eq!(
            all.iter().map(|p| p.producer_id).collect::<Vec<_>>(),
            [4, 9]
        );
        let nine = all[1];
        assert_eq!((nine.epoch, nine.last_sequence), (0, 2));
        assert_eq!((nine.last_timestamp, nine.coordinator_epoch), (1234, 7));
        assert_eq!(all[0].coordinator_epoch, -1);
        // A fencing marker moves the epoch on and forgets the sequence.
        s.end_transaction(9, 1, 8);
        assert_eq!(s.epoch_of(9), Some(1));
        assert_eq!(s.active()[1].last_sequence, -1);
        assert_eq!(s.epoch_of(5), None);
    }

    #[test]
    fn in_order_duplicates_gaps_and_epochs() {
        let mut s = ProducerStates::default();
        let out_of_order = |c: SequenceCheck| {
            matches!(c, SequenceCheck::Refuse(SequenceRefusal::OutOfOrder { .. }))
        };
        assert_eq!(s.check(&header(-1, -1, -1, 3)), SequenceCheck::Append);
        assert_eq!(
            s.check(&header(8, 0, 5, 3)),
            SequenceCheck::Append,
            "a producer without state (retention removed it) may continue anywhere"
        );
        let mut offset = 0;
        for seq in (0..30).step_by(3) {
            let h = header(7, 0, seq, 3);
            assert_eq!(s.check(&h), SequenceCheck::Append, "seq {seq}");
            s.record(&h, offset, offset + 2);
            offset += 3;
        }
        // The last five batches are duplicates; older ones are not remembered.
        assert_eq!(
            s.check(&header(7, 0, 27, 3)),
            SequenceCheck::Duplicate {
                base_offset: 27,
                last_offset: 29
            }
        );
        assert_eq!(
            s.check(&header(7, 0, 15, 3)),
            SequenceCheck::Duplicate {
                base_offset: 15,
                last_offset: 17
            }
        );
        assert!(out_of_order(s.check(&header(7, 0, 12, 3))));
        assert!(out_of_order(s.check(&header(7, 0, 31, 3))), "a gap");
        assert_eq!(s.check(&header(7, 0, 30, 1)), SequenceCheck::Append);
        assert_eq!(
            s.check(&header(7, -1, 30, 1)),
            SequenceCheck::Refuse(SequenceRefusal::Malformed { producer_id: 7 })
        );
        // Epochs: older refused, newer restarts at 0.
        s.record(&header(7, 2, 0, 1), 100, 100);
        assert_eq!(
            s.check(&header(7, 1, 1, 1)),
            SequenceCheck::Refuse(SequenceRefusal::StaleEpoch {
                producer_id: 7,
                epoch: 1,
                current: 2
            })
        );
        assert!(out_of_order(s.check(&header(7, 3, 4, 1))));
        assert_eq!(s.check(&header(7, 3, 0, 1)), SequenceCheck::Append);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn sequences_wrap_at_int32_max() {
        let mut s = ProducerStates::default();
        let h = header(9, 0, 0, 1);
        s.record(&h, 0, 0);
        let near_max = header(9, 0, i32::MAX - 1, 2);
        s.producers
            .get_mut(&9)
            .unwrap()
            .batches
            .back_mut()
            .unwrap()
            .last_seq = i32::MAX - 2;
        assert_eq!(s.check(&near_max), SequenceCheck::Append);
        s.record(&near_max, 1, 2);
        assert_eq!(s.check(&header(9, 0, 0, 1)), SequenceCheck::Append);
    }
}
