//! Deleting from the front of a log: Kafka's DeleteRecords (the log start moves,
//! closed segments wholly before it go) and retention by time and size (closed segments
//! only, and with a bound, only those a replica's high watermark has passed).

use tracing::info;

use super::{Log, RetentionOutcome};
use crate::checkpoint::sync_dir;
use crate::error::{LogError, Result};
use crate::segment::Segment;

impl Log {
    /// Kafka DeleteRecords: moves the log start to `offset` (never backwards) and deletes
    /// the closed segments wholly before it. Returns the new log start offset.
    pub fn delete_before(&mut self, offset: u64) -> Result<u64> {
        self.check_open()?;
        if offset > self.next_offset() {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset(),
                next: self.next_offset(),
            });
        }
        if offset > self.checkpoint.log_start_offset {
            self.checkpoint.log_start_offset = offset;
            let n = self.closed_segments_ending_by(offset);
            self.delete_oldest(n)?;
        }
        Ok(self.log_start_offset())
    }

    /// How many of the oldest closed segments end at or below `offset` (never the
    /// active one).
    fn closed_segments_ending_by(&self, offset: u64) -> usize {
        self.segments
            .iter()
            .take(self.segments.len() - 1)
            .take_while(|s| s.next_offset() <= offset)
            .count()
    }

    /// Deletes closed segments past `retention.ms` (by their newest timestamp), beyond
    /// `retention.bytes`, or wholly before the log start, oldest first. The active segment
    /// is never deleted. Without `delete` in `cleanup.policy` only the segments wholly
    /// before the log start go.
    pub fn apply_retention(&mut self) -> Result<RetentionOutcome> {
        self.apply_retention_below(u64::MAX)
    }

    /// [`Log::apply_retention`] limited to segments that end at or below `bound` (a
    /// replica passes its commit point: committed entries are never truncated, so
    /// deleting them cannot race the replication protocol, however busy the log's end).
    pub fn apply_retention_below(&mut self, bound: u64) -> Result<RetentionOutcome> {
        self.check_open()?;
        let closed = self.closed_segments_ending_by(bound);
        let now_ms = self.clock.now_ms();
        let delete = self.config.delete;
        let by_time = match self.config.retention_ms.filter(|_| delete) {
            Some(ms) => self.segments[..closed]
                .iter()
                .take_while(|s| now_ms.saturating_sub(s.max_timestamp()) > ms)
                .count(),
            None => 0,
        };
        let by_size = match self.config.retention_bytes.filter(|_| delete) {
            Some(limit) => {
                let mut excess = self.size_bytes().saturating_sub(limit);
                self.segments[..closed]
                    .iter()
                    .take_while(|s| {
                        let fits = s.size_bytes() <= excess;
                        if fits {
                            excess -= s.size_bytes();
                        }
                        fits
                    })
                    .count()
            }
            None => 0,
        };
        // Segments wholly before the log start (after DeleteRecords) go too, as in Kafka.
        let by_start = self
            .closed_segments_ending_by(self.checkpoint.log_start_offset)
            .min(closed);
        let n = by_time.max(by_size).max(by_start);
        if n == 0 {
            return Ok(RetentionOutcome::default());
        }
        let deleted_bytes = self.segments[..n].iter().map(Segment::size_bytes).sum();
        let new_start = self.segments[n].base_offset();
        self.checkpoint.log_start_offset = self.checkpoint.log_start_offset.max(new_start);
        self.delete_oldest(n)?;
        info!(
            segments = n,
            bytes = deleted_bytes,
            log_start = new_start,
            "retention deleted segments"
        );
        Ok(RetentionOutcome {
            deleted_segments: n,
            deleted_bytes,
        })
    }

    pub(super) fn note_deleted(&mut self, seg: &Segment) -> Result<()> {
        if seg.next_raft_index() > seg.base_raft_index() {
            let last = seg.next_raft_index() - 1;
            self.checkpoint.prev_raft_index = last;
            self.checkpoint.prev_raft_term = seg.entry(last)?.term;
        }
        Ok(())
    }

    fn delete_oldest(&mut self, n: usize) -> Result<()> {
        debug_assert!(n < self.segments.len());
        for i in 0..n {
            let (idx, term) = {
                let seg = &self.segments[i];
                if seg.next_raft_index() > seg.base_raft_index() {
                    let last = seg.next_raft_index() - 1;
                    (last, seg.entry(last)?.term)
                } else {
                    (
                        self.checkpoint.prev_raft_index,
                        self.checkpoint.prev_raft_term,
                    )
                }
            };
            self.checkpoint.prev_raft_index = idx;
            self.checkpoint.prev_raft_term = term;
        }
        self.checkpoint.write(&self.dir)?;
        self.crash_point("log.delete.before_segments")?;
        for seg in self.segments.drain(..n).collect::<Vec<_>>() {
            seg.delete()?;
        }
        sync_dir(&self.dir)
    }
}
