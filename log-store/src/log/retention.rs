//! Deleting from the front of a log: Kafka's DeleteRecords (the log start moves,
//! closed segments wholly before it go) and retention by time and size (closed segments
//! only, and with a bound, only those a replica's high watermark has passed). Removed
//! segments' files are renamed `*.deleted` and removed from disk once
//! `file.delete.delay.ms` has passed.

use std::path::PathBuf;

use tracing::{debug, info, warn};

use super::{Log, RetentionOutcome};
use crate::checkpoint::sync_dir;
use crate::error::{LogError, Result};
use crate::segment::Segment;

/// Files renamed `*.deleted`, to be removed from disk at `due_ms`.
#[derive(Debug)]
pub(super) struct DeferredDelete {
    due_ms: i64,
    paths: Vec<PathBuf>,
}

impl Log {
    /// Kafka DeleteRecords: moves the log start to `offset` (never backwards) and deletes
    /// the closed segments wholly before it. Returns the new log start offset. An audit
    /// log moves it no further than its seal (`audit_seal.rs`), and goes on to `offset`
    /// when a later seal covers it: a follower may apply a DeleteRecords the leader
    /// checked against its seal before its own seal is durable.
    pub fn delete_before(&mut self, offset: u64) -> Result<u64> {
        self.check_open()?;
        if offset > self.next_offset() {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset(),
                next: self.next_offset(),
            });
        }
        let start = self.removable_below(offset);
        if start < offset {
            self.audit_seal.hold_start(offset);
        }
        if start > self.checkpoint.log_start_offset {
            self.checkpoint.log_start_offset = start;
            let n = self.closed_segments_ending_by(start);
            self.delete_oldest(n)?;
        }
        Ok(self.log_start_offset())
    }

    /// `offset`, or for an audit log the seal's offset when that is lower: an audit log
    /// removes (or compacts) only what a seal covers (`audit_seal.rs`), and its log start
    /// never passes its seal.
    pub(super) fn removable_below(&self, offset: u64) -> u64 {
        match self.config.audit {
            true => offset.min(self.audit_sealed_offset()),
            false => offset,
        }
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
    ///
    /// Also removes from disk the `*.deleted` files whose `file.delete.delay.ms` has
    /// passed (by the log's clock). Call it periodically (Kafka's
    /// `log.retention.check.interval.ms`) for that, whatever the cleanup policy; every
    /// later deletion of segments (retention, DeleteRecords, a cleaning's swap) removes
    /// them too, and the next open removes whatever is left.
    pub fn apply_retention(&mut self) -> Result<RetentionOutcome> {
        self.apply_retention_below(u64::MAX)
    }

    /// [`Log::apply_retention`] limited to segments that end at or below `bound` (a
    /// replica passes its commit point: committed entries are never truncated, so
    /// deleting them cannot race the replication protocol, however busy the log's end).
    pub fn apply_retention_below(&mut self, bound: u64) -> Result<RetentionOutcome> {
        self.check_open()?;
        // A seal whose file could not be written at its flush is tried again here, as
        // the broker calls this periodically whether or not anything is appended.
        self.apply_durable_audit_seal();
        let now_ms = self.clock.now_ms();
        self.purge_deleted(now_ms)?;
        let closed = self.closed_segments_ending_by(self.removable_below(bound));
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

    /// Removes the `n` oldest segments (closed ones). Crash order: the checkpoint that
    /// already excludes them is written; each segment's files are renamed `*.deleted`,
    /// the entry table last; the directory is synced; the segments leave `self`; the
    /// files are removed from disk now or, with `file.delete.delay.ms`, later. A crash
    /// at any step leaves leftovers that the next open removes, never a hole.
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
        let mut retired = Vec::new();
        for seg in &self.segments[..n] {
            retired.extend(seg.retire()?);
        }
        sync_dir(&self.dir)?;
        self.segments.drain(..n);
        self.schedule_delete(retired)
    }

    /// Queues files renamed `*.deleted` for removal from disk after
    /// `file.delete.delay.ms` (at once when it is 0), and removes every queued file whose
    /// delay has passed.
    pub(super) fn schedule_delete(&mut self, paths: Vec<PathBuf>) -> Result<()> {
        let now_ms = self.clock.now_ms();
        if !paths.is_empty() {
            self.deferred_deletes.push(DeferredDelete {
                due_ms: now_ms.saturating_add(self.config.file_delete_delay_ms),
                paths,
            });
        }
        self.purge_deleted(now_ms)
    }

    /// Removes from disk the queued `*.deleted` files due at `now_ms` (crash point
    /// `log.delete.before_purge` first). A file that cannot be removed stays queued for
    /// the next purge; a missing one counts as removed.
    fn purge_deleted(&mut self, now_ms: i64) -> Result<()> {
        if !self.deferred_deletes.iter().any(|d| d.due_ms <= now_ms) {
            return Ok(());
        }
        self.crash_point("log.delete.before_purge")?;
        let (mut removed, mut kept) = (0usize, Vec::new());
        for mut d in std::mem::take(&mut self.deferred_deletes) {
            if d.due_ms <= now_ms {
                d.paths.retain(|p| match std::fs::remove_file(p) {
                    Ok(()) => {
                        removed += 1;
                        false
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                    Err(e) => {
                        warn!(path = %p.display(), error = %e, "deleted file not removed; retrying later");
                        true
                    }
                });
            }
            if !d.paths.is_empty() {
                kept.push(d);
            }
        }
        self.deferred_deletes = kept;
        debug!(dir = %self.dir.display(), files = removed, "deleted segment files removed");
        Ok(())
    }
}
