//! Durability of a log: rolls and flushes.
//!
//! A roll does no I/O that waits for the disk: it closes the active segment without
//! syncing it (indexes and entry table trimmed, the `.log` cut to its end), gives the
//! next segment the files a thread created ahead of time (`segment/spare.rs`; created
//! in place when none are ready), writes the new table's header without syncing it,
//! and appends go on there.
//!
//! Crash order of a roll, step by step (docs/log-store.md says the same):
//! 1. the old segment is closed in the page cache and the new one's files are named
//!    and written;
//! 2. the next flush syncs the closed segments' files, then the directory (the new
//!    names), then the active segment's files with its table's header; only then does
//!    the flushed watermark cover anything appended since the roll;
//! 3. once that flush completes, the recovery point moves to the oldest segment still
//!    unsynced (or the active one), and the checkpoint is written.
//!
//! A crash before step 3 leaves the recovery point at or below the closed segment, so the
//! next open scans it and every later segment entry by entry, cutting at the first torn
//! entry; a new segment whose files a power loss took or emptied is cut away. No step
//! ever counts unsynced bytes as durable.

use std::path::PathBuf;

use tracing::{debug, info_span};

use super::Log;
use crate::checkpoint::sync_dir;
use crate::error::{LogError, Result};
use crate::handle::{duplicate_all, SyncHandle};
use crate::segment::{Segment, SyncCover};

/// A segment closed by a roll whose files are not synced yet.
#[derive(Debug)]
pub(super) struct UnsyncedSegment {
    base_offset: u64,
    files: Vec<SyncHandle>,
}

/// A flush prepared under the log's lock by [`Log::prepare_flush`], whose slow part
/// ([`PendingFlush::sync`]) runs without it, so appends and reads go on during the
/// `fdatasync`; [`Log::complete_flush`] then moves the flushed watermark.
#[derive(Debug)]
pub struct PendingFlush {
    /// Files of segments closed by rolls, synced (with the directory) first.
    rolled: Vec<SyncHandle>,
    /// How many of the log's unsynced closed segments `rolled` covers.
    rolled_segments: usize,
    dir: Option<PathBuf>,
    files: Vec<SyncHandle>,
    cover: SyncCover,
    segment_base_offset: u64,
    offset: u64,
    raft_index: u64,
    generation: u64,
}

impl PendingFlush {
    /// The offset `flushed_offset()` becomes when this flush completes.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Makes the prepared entries durable: the files of segments closed by rolls and
    /// the directory, then each file of the active segment (`fdatasync`). Blocking; call
    /// it off the async runtime's threads.
    pub fn sync(&self) -> Result<()> {
        sync_rolled(&self.rolled, self.dir.as_deref())?;
        for (path, file) in &self.files {
            file.sync_data().map_err(|e| LogError::io(path, e))?;
        }
        Ok(())
    }
}

/// Syncs closed segments' files (length included), then `dir` (their successors' names).
fn sync_rolled<'a>(
    files: impl IntoIterator<Item = &'a SyncHandle>,
    dir: Option<&std::path::Path>,
) -> Result<()> {
    for (path, file) in files {
        file.sync_all().map_err(|e| LogError::io(path, e))?;
    }
    match dir {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

impl Log {
    /// Seals the active segment and starts a new one at `next_offset()`, without
    /// waiting for the disk: the next flush makes the closed segment durable (see the
    /// module docs for the crash order).
    pub fn roll(&mut self) -> Result<()> {
        self.check_open()?;
        if !self.active().has_data() {
            return Ok(());
        }
        let (next_offset, next_raft) = (self.next_offset(), self.active().next_raft_index());
        let span = info_span!("log_roll", dir = %self.dir.display(), base_offset = next_offset);
        let _enter = span.enter();
        let base_offset = self.active().base_offset();
        let files = self.active_mut().close_unsynced()?;
        self.unsynced.push(UnsyncedSegment { base_offset, files });
        self.crash_point("log.roll.before_create")?;
        self.spare
            .adopt(&self.dir, next_offset)
            .map_err(|e| LogError::io(&self.dir, e))?;
        let seg = Segment::create_for_roll(
            &self.dir,
            next_offset,
            next_raft,
            &self.config,
            self.clock.now_ms(),
        )?;
        self.segments.push(seg);
        self.spare.make(&self.dir);
        debug!("segment rolled");
        Ok(())
    }

    /// Makes every entry appended so far durable (segments closed by rolls first);
    /// returns the new `flushed_offset()`.
    pub fn flush(&mut self) -> Result<u64> {
        // With `&mut self` the log's own handles serve; no duplicates needed.
        let dir = (!self.unsynced.is_empty()).then_some(self.dir.as_path());
        sync_rolled(self.unsynced.iter().flat_map(|s| s.files.iter()), dir)?;
        self.active_mut().flush()?;
        self.flushed_offset = self.next_offset();
        self.flushed_raft_index = self.last_raft_index();
        let synced = self.unsynced.len();
        self.rolls_synced(synced)?;
        self.apply_durable_audit_seal();
        Ok(self.flushed_offset)
    }

    /// Prepares a flush of everything appended so far, to be synced without `&mut self`
    /// ([`PendingFlush::sync`]) and then recorded with [`Log::complete_flush`]. `None`
    /// when everything is already durable.
    pub fn prepare_flush(&self) -> Result<Option<PendingFlush>> {
        if self.flushed_offset == self.next_offset()
            && self.flushed_raft_index == self.last_raft_index()
            && self.unsynced.is_empty()
        {
            return Ok(None);
        }
        let rolled = duplicate_all(self.unsynced.iter().flat_map(|s| s.files.iter()))?;
        let active = self.active();
        let (files, cover) = active.sync_handles()?;
        Ok(Some(PendingFlush {
            rolled,
            rolled_segments: self.unsynced.len(),
            dir: (!self.unsynced.is_empty()).then(|| self.dir.clone()),
            files,
            cover,
            segment_base_offset: active.base_offset(),
            offset: self.next_offset(),
            raft_index: self.last_raft_index(),
            generation: self.generation,
        }))
    }

    /// Records a [`PendingFlush`] whose `sync` succeeded: the flushed watermark moves to
    /// what it covered (never backwards; not at all when the log was truncated or reset
    /// since it was prepared), and past segments it synced for a roll, the recovery
    /// point. Returns `flushed_offset()`.
    pub fn complete_flush(&mut self, done: PendingFlush) -> Result<u64> {
        if done.generation != self.generation {
            return Ok(self.flushed_offset);
        }
        self.flushed_offset = self.flushed_offset.max(done.offset.min(self.next_offset()));
        self.flushed_raft_index = self
            .flushed_raft_index
            .max(done.raft_index.min(self.last_raft_index()));
        let active = self.active_mut();
        if active.base_offset() == done.segment_base_offset {
            active.mark_synced(done.cover);
        }
        self.rolls_synced(done.rolled_segments)?;
        self.apply_durable_audit_seal();
        Ok(self.flushed_offset)
    }

    /// The first `count` segments closed by rolls are durable: the recovery point moves
    /// to the oldest one still unsynced, or the active segment, and the checkpoint says
    /// so.
    fn rolls_synced(&mut self, count: usize) -> Result<()> {
        let count = count.min(self.unsynced.len());
        if count == 0 {
            return Ok(());
        }
        let point = self
            .unsynced
            .get(count)
            .map_or(self.active().base_offset(), |s| s.base_offset);
        if point > self.checkpoint.recovery_point {
            let span = info_span!("log_recovery_point", dir = %self.dir.display(), point);
            let _enter = span.enter();
            self.crash_point("log.roll.before_checkpoint")?;
            let mut checkpoint = self.checkpoint;
            checkpoint.recovery_point = point;
            checkpoint.write(&self.dir)?;
            self.checkpoint = checkpoint;
        }
        // Only once the checkpoint says so: should it fail, the next flush tries again.
        self.unsynced.drain(..count);
        Ok(())
    }

    /// Forgets the closed segments from `base_offset` on: a truncation or reset removed
    /// them or made one active again (whose own flush then syncs it).
    pub(super) fn forget_unsynced_from(&mut self, base_offset: u64) {
        self.unsynced.retain(|s| s.base_offset < base_offset);
    }
}
