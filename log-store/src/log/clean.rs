//! Compaction on a [`Log`]: deciding whether to clean and snapshotting the job
//! (`prepare_clean`), and swapping the cleaned segments in (`complete_clean`). The work
//! between the two is `crate::cleaner`'s.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::{debug, info, info_span};

use super::Log;
use crate::clean_checkpoint::CleanCheckpoint;
use crate::cleaner::{
    self, CleanGuard, CleanJob, CleanOutcome, Cleaned, SourceSegment, Steps, SwapError,
};
use crate::error::{LogError, Result};
use crate::segment::Segment;

/// Why a cleaning is due, and the byte counts behind the ratio.
struct Due {
    first_dirty: u64,
    dirty_bytes: u64,
    total_bytes: u64,
    /// Dirty bytes reached `min.cleanable.dirty.ratio`.
    ratio: bool,
    /// A delete horizon came due.
    horizon: bool,
    /// A dirty record is older than `max.compaction.lag.ms`.
    lag: bool,
}

impl Log {
    /// Where compaction got: offsets below this were cleaned; the rest is dirty.
    pub fn first_dirty_offset(&self) -> u64 {
        self.clean_checkpoint.first_dirty_offset
    }

    /// The earliest delete horizon of the tombstones kept by past cleanings, if known.
    pub fn next_delete_horizon_ms(&self) -> Option<i64> {
        self.clean_checkpoint.next_delete_horizon_ms
    }

    /// Lowers the first dirty offset to `offset` (the log was cut there) and makes it
    /// durable, so records appended after a cut are never mistaken for cleaned ones.
    pub(super) fn lower_first_dirty(&mut self, offset: u64) -> Result<()> {
        if self.clean_checkpoint.first_dirty_offset > offset {
            self.clean_checkpoint.first_dirty_offset = offset;
            self.clean_checkpoint.write(&self.dir)?;
        }
        Ok(())
    }

    /// [`Log::prepare_clean_below`] for a log with one replica: every tombstone whose
    /// delete horizon passed may go.
    pub fn prepare_clean(&self, clean_up_to_offset: u64, now_ms: i64) -> Result<Option<CleanJob>> {
        self.prepare_clean_below(clean_up_to_offset, u64::MAX, now_ms)
    }

    /// Decides whether the log should be compacted now and, if so, snapshots what a
    /// [`CleanJob`] needs. Needs only `&self` and is cheap (no file is read, but with a
    /// `max.compaction.lag.ms` the first batch header of each dirty segment, once per
    /// segment): call it under a read lock, then [`CleanJob::run`] without the lock, then
    /// [`Log::complete_clean`] under the write lock.
    ///
    /// `clean_up_to_offset` is the high watermark: nothing at or above it is read, so the
    /// offset map never counts a record Raft could still truncate. `now_ms` is the
    /// wall-clock time used for `min.compaction.lag.ms`, `max.compaction.lag.ms` and
    /// delete horizons.
    ///
    /// `tombstones_below_offset` bounds where a tombstone may be removed once its delete
    /// horizon passed: only in batches wholly below it. A replicated log passes the offset
    /// every replica of its group holds: a replica that still lacks a tombstone's batch
    /// may hold an older value of its key, and would keep that value forever if it were
    /// later sent the batch without the tombstone. Superseded records and tombstones go
    /// whatever the bound.
    ///
    /// `None` unless `cleanup.policy` includes `compact` and either the dirty bytes (never
    /// cleaned, in closed segments wholly below `clean_up_to_offset` and older than
    /// `min.compaction.lag.ms`) are at least `min.cleanable.dirty.ratio` of all such bytes,
    /// or a segment holding some of them began longer than `max.compaction.lag.ms` ago
    /// (by its first batch's max timestamp), or a delete horizon came due (unless the last
    /// cleaning kept a due tombstone only because of a `tombstones_below_offset` that has
    /// not moved since). Errors when another cleaning of this log is under way (its job or
    /// result is alive) or an earlier swap failed midway (reopen the log).
    pub fn prepare_clean_below(
        &self,
        clean_up_to_offset: u64,
        tombstones_below_offset: u64,
        now_ms: i64,
    ) -> Result<Option<CleanJob>> {
        if !self.config.compact {
            return Ok(None);
        }
        if self.clean_poisoned {
            return Err(LogError::InvalidArgument(format!(
                "a cleaning of {} failed midway; reopen the log before cleaning it again",
                self.dir.display()
            )));
        }
        // An audit log compacts only what a seal covers (`audit_seal.rs`).
        let clean_up_to = self.removable_below(clean_up_to_offset.min(self.next_offset()));
        let rewritable = self.rewritable_segments(clean_up_to, now_ms);
        if rewritable == 0 {
            return Ok(None);
        }
        let due = self.cleaning_due(rewritable, tombstones_below_offset, now_ms);
        if !due.ratio && !due.horizon && !due.lag {
            return Ok(None);
        }
        if self
            .cleaning
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(LogError::InvalidArgument(format!(
                "a cleaning of {} is already under way",
                self.dir.display()
            )));
        }
        let guard = Arc::new(CleanGuard(Arc::clone(&self.cleaning)));
        let segments = self.source_segments(clean_up_to, rewritable)?;
        debug!(
            dir = %self.dir.display(),
            rewritable,
            dirty_bytes = due.dirty_bytes,
            total_bytes = due.total_bytes,
            horizon_due = due.horizon,
            lag_due = due.lag,
            "cleaning prepared"
        );
        Ok(Some(CleanJob {
            dir: self.dir.clone(),
            config: self.config.clone(),
            now_ms,
            clean_up_to,
            tombstones_below: tombstones_below_offset,
            first_dirty: due.first_dirty,
            generation: self.generation,
            old_horizon_ms: self.clean_checkpoint.next_delete_horizon_ms,
            segments,
            rewritable,
            guard,
        }))
    }

    /// How many closed segments, from the first, a cleaning may rewrite: wholly below
    /// `clean_up_to` and older than `min.compaction.lag.ms`.
    fn rewritable_segments(&self, clean_up_to: u64, now_ms: i64) -> usize {
        let closed = self.segments.len() - 1;
        let lag_ms = self.config.min_compaction_lag_ms;
        self.segments[..closed]
            .iter()
            .take_while(|s| {
                s.next_offset() <= clean_up_to
                    && (lag_ms == 0 || s.max_timestamp() <= now_ms.saturating_sub(lag_ms))
            })
            .count()
    }

    /// Whether the first `rewritable` segments are due a cleaning, by dirty ratio, by
    /// `max.compaction.lag.ms` or by a delete horizon.
    fn cleaning_due(&self, rewritable: usize, tombstones_below: u64, now_ms: i64) -> Due {
        let first_dirty = self
            .clean_checkpoint
            .first_dirty_offset
            .max(self.segments[0].base_offset());
        let (mut dirty_bytes, mut total_bytes) = (0u64, 0u64);
        for s in &self.segments[..rewritable] {
            total_bytes += s.size_bytes();
            if s.next_offset() > first_dirty {
                dirty_bytes += s.size_bytes();
            }
        }
        let ratio = dirty_bytes > 0
            && dirty_bytes as f64 >= self.config.min_cleanable_dirty_ratio * total_bytes as f64;
        let horizon = self
            .clean_checkpoint
            .next_delete_horizon_ms
            .is_some_and(|h| {
                now_ms >= h
                    && self
                        .tombstones_held_below
                        .is_none_or(|below| tombstones_below > below)
            });
        let lag = dirty_bytes > 0 && self.dirty_past_max_lag(first_dirty, rewritable, now_ms);
        Due {
            first_dirty,
            dirty_bytes,
            total_bytes,
            ratio,
            horizon,
            lag,
        }
    }

    /// Whether one of the first `rewritable` segments that hold dirty offsets began more
    /// than `max.compaction.lag.ms` before `now_ms`. As in Kafka, a segment's age is the
    /// max timestamp of its first batch (read once per segment, from its header): a
    /// segment whose first batch is already clean counts from that batch, and batches
    /// without a timestamp give no age.
    fn dirty_past_max_lag(&self, first_dirty: u64, rewritable: usize, now_ms: i64) -> bool {
        let max_lag_ms = self.config.max_compaction_lag_ms;
        if max_lag_ms == i64::MAX {
            return false;
        }
        let clean_until = now_ms.saturating_sub(max_lag_ms);
        self.segments[..rewritable]
            .iter()
            .filter(|s| s.next_offset() > first_dirty)
            .any(|s| match s.first_batch_ms() {
                Ok(first) => first.is_some_and(|ms| ms < clean_until),
                Err(e) => {
                    debug!(base = s.base_offset(), error = %e, "first batch timestamp unreadable");
                    false
                }
            })
    }

    /// The segments a cleaning reads: every one holding offsets below `clean_up_to`
    /// feeds the key map; the first `rewritable` are also rewritten (their handles
    /// kept open for the swap).
    fn source_segments(&self, clean_up_to: u64, rewritable: usize) -> Result<Vec<SourceSegment>> {
        let mapped = self
            .segments
            .partition_point(|s| s.base_offset() < clean_up_to);
        self.segments[..mapped.max(rewritable)]
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(SourceSegment {
                    base_offset: s.base_offset(),
                    next_offset: s.next_offset(),
                    base_raft_index: s.base_raft_index(),
                    next_raft_index: s.next_raft_index(),
                    entry_count: s.entry_count(),
                    size_bytes: s.size_bytes(),
                    log_path: s.log_path().to_path_buf(),
                    log: s.slice(0, s.size_bytes())?,
                    handles: if i < rewritable {
                        Some(s.clean_handles()?)
                    } else {
                        None
                    },
                })
            })
            .collect()
    }

    /// Swaps in the segments a [`CleanJob`] cleaned. Short: a few renames and directory
    /// fsyncs per segment, plus cheap checks of each new segment.
    ///
    /// Discards the job (`applied: false`, nothing changed) when the log was truncated or
    /// reset since `prepare_clean`, or a rewritten segment changed or disappeared other
    /// than by retention of the oldest segments. Each segment is swapped atomically with
    /// respect to crashes (see [`crate::cleaner`]); reads that hold bytes of an old segment
    /// keep them. An error midway leaves valid files (the next open finishes or drops the
    /// swap) and makes this `Log` refuse further cleanings until reopened.
    pub fn complete_clean(&mut self, cleaned: Cleaned) -> Result<CleanOutcome> {
        match self.complete_clean_steps(cleaned, None)? {
            Some(outcome) => Ok(outcome),
            None => Err(LogError::InvalidArgument(
                "cleaning stopped without a failpoint".into(),
            )),
        }
    }

    /// `complete_clean` with a failpoint: stops (as if the process died) before step
    /// `stop_after` of the on-disk swap, returning `None`. For the crash tests.
    pub(crate) fn complete_clean_steps(
        &mut self,
        cleaned: Cleaned,
        stop_after: Option<usize>,
    ) -> Result<Option<CleanOutcome>> {
        self.check_open()?;
        if cleaned.dir != self.dir {
            return Err(LogError::InvalidArgument(format!(
                "a cleaning of {} can't complete on {}",
                cleaned.dir.display(),
                self.dir.display()
            )));
        }
        let span = info_span!("log_clean_swap", dir = %self.dir.display());
        let _enter = span.enter();
        let mut outcome = cleaned.outcome;
        let plan = self.swap_plan(&cleaned);
        let Some(plan) = plan else {
            let stage = self.dir.join(cleaner::STAGING_DIR);
            if let Err(e) = std::fs::remove_dir_all(&stage) {
                debug!(error = %e, "staging directory not removed; the next cleaning or open will");
            }
            info!("log changed during the cleaning; result discarded");
            return Ok(Some(outcome));
        };
        let mut steps = Steps::new(stop_after);
        let Some(retired) = self.swap_in(&plan, &mut steps)? else {
            return Ok(None);
        };
        if steps.next().is_err() {
            return Ok(None);
        }
        let checkpoint = CleanCheckpoint {
            first_dirty_offset: cleaned.first_dirty.min(self.next_offset()),
            next_delete_horizon_ms: cleaned.next_delete_horizon_ms,
        };
        checkpoint.write(&self.dir)?;
        self.clean_checkpoint = checkpoint;
        self.tombstones_held_below = cleaned.held_back_below;
        self.schedule_delete(retired)?;
        outcome.applied = true;
        outcome.segments_cleaned = plan.len();
        info!(
            segments = plan.len(),
            bytes_before = outcome.bytes_before,
            bytes_after = outcome.bytes_after,
            first_dirty = checkpoint.first_dirty_offset,
            "cleaned segments swapped in"
        );
        Ok(Some(outcome))
    }

    /// Swaps each planned segment in and loads it. Returns the old files kept as
    /// `*.deleted` (with a `file.delete.delay.ms`), or `None` when `steps` stopped it. An
    /// error poisons the log for cleanings.
    fn swap_in(
        &mut self,
        plan: &[(usize, cleaner::StagedSegment)],
        steps: &mut Steps,
    ) -> Result<Option<Vec<PathBuf>>> {
        let keep_old = self.config.file_delete_delay_ms > 0;
        let now_ms = self.clock.now_ms();
        let mut retired = Vec::new();
        for (j, staged) in plan {
            let base = staged.base_offset;
            match cleaner::swap_segment(&self.dir, base, keep_old, steps) {
                Ok(old) => retired.extend(old),
                Err(SwapError::Stopped) => return Ok(None),
                Err(SwapError::Failed(e)) => {
                    self.clean_poisoned = true;
                    return Err(e);
                }
            }
            let reopened = Segment::open_files(&self.dir, base, now_ms)
                .and_then(|mut seg| seg.load_clean(&self.config, true).map(|()| seg));
            match reopened {
                Ok(seg) => self.segments[*j] = seg,
                Err(e) => {
                    self.clean_poisoned = true;
                    return Err(e);
                }
            }
        }
        Ok(Some(retired))
    }

    /// Where each staged segment goes in `self.segments`, or `None` when the job no longer
    /// fits the log.
    fn swap_plan(&self, cleaned: &Cleaned) -> Option<Vec<(usize, cleaner::StagedSegment)>> {
        if cleaned.generation != self.generation {
            return None;
        }
        let first_base = self.segments[0].base_offset();
        let closed = self.segments.len() - 1;
        let mut plan = Vec::with_capacity(cleaned.segments.len());
        for staged in &cleaned.segments {
            if staged.base_offset < first_base {
                // Deleted by retention meanwhile; the ones after it are still valid.
                continue;
            }
            let j = self.segments[..closed]
                .iter()
                .position(|s| s.base_offset() == staged.base_offset)?;
            let s = &self.segments[j];
            let same = s.next_offset() == staged.next_offset
                && s.base_raft_index() == staged.base_raft_index
                && s.next_raft_index() == staged.next_raft_index
                && s.size_bytes() == staged.old_size_bytes;
            if !same {
                return None;
            }
            plan.push((j, *staged));
        }
        (!plan.is_empty()).then_some(plan)
    }
}
