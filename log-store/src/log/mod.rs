//! `Log`: one partition's log, an ordered run of segments of which the last is active.
//!
//! Offsets: every data entry (a Kafka batch) takes `base_offset = next_offset()`, patched
//! into its header, so offsets are strictly increasing and gap-free. Raft: every entry,
//! data or not, takes the next Raft index and a term that never decreases; the batch's
//! `partitionLeaderEpoch` field carries the term (saturated at `i32::MAX`).
//!
//! Durability: `append*` writes to the page cache; `flush` makes everything appended so far
//! durable and moves `flushed_offset`. `close` flushes, seals the active segment and writes
//! a clean-shutdown marker, which lets the next `open` skip the recovery scan. Dropping a
//! `Log` without `close` is an unclean stop, exactly like `kill -9`.
//!
//! Concurrency: mutations take `&mut self`, reads `&self`; a caller shares a `Log` behind a
//! lock of its choice. Bytes returned by reads stay valid after the lock is released and
//! after any later truncation, retention or close.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bytes::Bytes;
use tracing::{info, info_span};

use crate::batch::{self, BatchError, BatchHeader};
use crate::checkpoint::{sync_dir, Checkpoint};
use crate::clean_checkpoint::CleanCheckpoint;
use crate::clock::{Clock, SystemClock};
use crate::config::LogConfig;
use crate::entries::{EntryKind, EntryRecord};
use crate::error::{LogError, Result};
use crate::segment::{Segment, Spare};

mod audit;
mod audit_heads;
mod audit_leaves;
mod audit_seal;
mod clean;
mod flush;
mod load;
mod retention;
mod sidecars;

pub use audit::{AuditHead, InclusionProof};
pub use audit_heads::{AuditDivergence, HeadMark};
pub use audit_leaves::{scrub_audit_leaves, write_audit_leaves};
pub use audit_seal::{AuditSeal, SealFile, SEAL_FILE};
pub use flush::PendingFlush;

pub(crate) use load::list_segments;

/// Marker file written by `close`; its presence at `open` means the previous run ended
/// cleanly and no recovery scan is needed.
pub const CLEAN_SHUTDOWN_FILE: &str = ".clean_shutdown";

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: u64,
    pub last_offset: u64,
    pub raft_index: u64,
    pub term: u64,
    pub max_timestamp: i64,
}

/// A Raft entry as the log holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryInfo {
    pub raft_index: u64,
    pub term: u64,
    pub kind: EntryKind,
    /// Data: the batch's base offset. Non-data: the next offset when it was appended.
    pub base_offset: u64,
    /// The next Kafka offset after this entry.
    pub next_offset: u64,
    /// Byte position of the payload: in the segment's `.log` for data entries, in its
    /// `.entrydata` otherwise.
    pub position: u64,
    pub length: u32,
}

impl From<EntryRecord> for EntryInfo {
    fn from(r: EntryRecord) -> Self {
        EntryInfo {
            raft_index: r.raft_index,
            term: r.term,
            kind: r.kind,
            base_offset: r.base_offset,
            next_offset: r.next_offset(),
            position: r.position,
            length: r.length,
        }
    }
}

/// What retention removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    pub deleted_segments: usize,
    pub deleted_bytes: u64,
}

/// A summary of one segment, for tools, metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base_offset: u64,
    pub next_offset: u64,
    pub base_raft_index: u64,
    pub size_bytes: u64,
    pub max_timestamp: i64,
    pub active: bool,
    pub path: PathBuf,
}

/// How `open` found the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenReport {
    /// The clean-shutdown marker was present.
    pub clean: bool,
    /// Segments validated entry by entry.
    pub recovered_segments: usize,
    /// Log bytes cut as a torn or corrupt tail.
    pub truncated_bytes: u64,
    /// Data entry records rebuilt from the last segment's `.log` (a rebuildable table
    /// leaves them unsynced on data-only flushes).
    pub rebuilt_entries: usize,
    /// Segments removed because they followed a cut, or lay wholly before the log start.
    pub removed_segments: usize,
    /// Segment swaps of an interrupted cleaning that were committed and got finished.
    pub finished_clean_swaps: usize,
}

/// One partition log. See the module documentation for its guarantees.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    clock: Arc<dyn Clock>,
    /// Ordered by base offset (and Raft index); never empty; the last is active.
    segments: Vec<Segment>,
    checkpoint: Checkpoint,
    flushed_offset: u64,
    flushed_raft_index: u64,
    /// Bumped by every truncation and reset, so a [`PendingFlush`] prepared before one
    /// cannot move the flushed watermark over entries that were replaced.
    generation: u64,
    open_report: OpenReport,
    /// How far compaction got, and when tombstones next come due.
    clean_checkpoint: CleanCheckpoint,
    /// Set while a [`CleanJob`] or its [`Cleaned`] is alive: one cleaning at a time.
    cleaning: Arc<AtomicBool>,
    /// A swap failed midway: the files are consistent (open finishes or drops the swap)
    /// but this `Log` no longer matches them, so it refuses further cleanings.
    clean_poisoned: bool,
    /// The `tombstones_below` of the last cleaning swapped in, when it kept a tombstone
    /// past its horizon only because of that bound: a due horizon starts no new cleaning
    /// until the bound moves.
    tombstones_held_below: Option<u64>,
    /// Segments closed by rolls whose files the next flush syncs, oldest first.
    unsynced: Vec<flush::UnsyncedSegment>,
    /// The next segment's files, created ahead of the roll.
    spare: Spare,
    /// Set by [`Log::seal`]: every change is refused from then on.
    sealed: bool,
    /// Files of removed segments, renamed `*.deleted`, waiting out `file.delete.delay.ms`
    /// (lost on a stop: the next open removes every `*.deleted` file).
    deferred_deletes: Vec<retention::DeferredDelete>,
    /// The Merkle tree over the batches of an audit log (`LogConfig::audit`).
    audit: Option<audit::AuditTree>,
    /// The tree heads an audit log records, and the first one its tree disagrees with.
    audit_heads: audit_heads::LoggedHeads,
    /// The seal in force on an audit log, and one logged since.
    audit_seal: audit_seal::SealState,
}

/// Whether an append computes the batch's CRC-32C.
#[derive(Debug, Clone, Copy)]
enum Crc {
    Check,
    /// The caller checked it ([`Log::append_vouched`]).
    Vouched,
}

impl Log {
    /// Opens the log in `dir`, creating it if absent, with the system clock.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log> {
        Self::open_with_clock(dir, config, Arc::new(SystemClock))
    }

    // ------------------------------------------------------------ accessors

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces the log's settings (Kafka AlterConfigs). Size and time limits apply from
    /// the next append, roll or retention pass; existing segments keep the index size they
    /// were created with. Invalid settings are refused and the old ones stay.
    pub fn set_config(&mut self, config: LogConfig) -> Result<()> {
        config.validate()?;
        let audit_was = self.config.audit;
        self.config = config;
        if self.config.audit != audit_was {
            self.build_audit_tree()?;
        }
        Ok(())
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// How the last `open` found the log.
    pub fn open_report(&self) -> OpenReport {
        self.open_report
    }

    fn active(&self) -> &Segment {
        // Invariant: `segments` is never empty after `open`.
        self.segments
            .last()
            .expect("a log always has an active segment")
    }
    fn active_mut(&mut self) -> &mut Segment {
        // Invariant: `segments` is never empty after `open`.
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    /// The first offset readers may see.
    pub fn log_start_offset(&self) -> u64 {
        self.checkpoint.log_start_offset
    }
    /// The offset the next batch will get (the log end offset).
    pub fn next_offset(&self) -> u64 {
        self.active().next_offset()
    }
    /// Every offset below this one is durable (survives power loss).
    pub fn flushed_offset(&self) -> u64 {
        self.flushed_offset
    }
    /// Every Raft entry up to and including this index is durable.
    pub fn flushed_raft_index(&self) -> u64 {
        self.flushed_raft_index
    }
    /// Bytes of batch data across all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size_bytes).sum()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.segments
            .iter()
            .map(|s| SegmentInfo {
                base_offset: s.base_offset(),
                next_offset: s.next_offset(),
                base_raft_index: s.base_raft_index(),
                size_bytes: s.size_bytes(),
                max_timestamp: s.max_timestamp(),
                active: s.is_active(),
                path: s.log_path().to_path_buf(),
            })
            .collect()
    }

    // ------------------------------------------------------------ Raft view

    /// Index of the first Raft entry the log holds (`last_raft_index() + 1` when empty).
    pub fn first_raft_index(&self) -> u64 {
        self.segments[0].base_raft_index()
    }
    /// Index of the last Raft entry (`first_raft_index() - 1` when empty).
    pub fn last_raft_index(&self) -> u64 {
        self.active().next_raft_index() - 1
    }
    /// Term of the last entry, or of the entry before the first when the log is empty.
    pub fn last_term(&self) -> u64 {
        for seg in self.segments.iter().rev() {
            if let Ok(Some(t)) = seg.last_term() {
                return t;
            }
        }
        self.checkpoint.prev_raft_term
    }
    /// Raft index and term of the entry just before `first_raft_index()`.
    pub fn prev_raft_entry(&self) -> (u64, u64) {
        (
            self.checkpoint.prev_raft_index,
            self.checkpoint.prev_raft_term,
        )
    }

    fn segment_for_raft_index(&self, raft_index: u64) -> Result<&Segment> {
        let i = self
            .segments
            .partition_point(|s| s.base_raft_index() <= raft_index);
        if i == 0 || raft_index > self.last_raft_index() {
            return Err(LogError::RaftIndexOutOfRange {
                requested: raft_index,
                first: self.first_raft_index(),
                last: self.last_raft_index(),
            });
        }
        Ok(&self.segments[i - 1])
    }

    /// The entry at `raft_index`.
    pub fn entry(&self, raft_index: u64) -> Result<EntryInfo> {
        self.segment_for_raft_index(raft_index)?
            .entry(raft_index)
            .map(EntryInfo::from)
    }

    /// The term of `raft_index`, including the entry just before the first.
    pub fn term_of(&self, raft_index: u64) -> Result<u64> {
        if raft_index == self.checkpoint.prev_raft_index
            && raft_index + 1 == self.first_raft_index()
        {
            return Ok(self.checkpoint.prev_raft_term);
        }
        Ok(self.entry(raft_index)?.term)
    }

    /// Kafka's end offset of leader epoch `epoch` (the Raft term): `(epoch found, end
    /// offset)`, as a leader answers OffsetForLeaderEpoch. For the latest term, the log
    /// end; for an older one, the first offset written in a later term, with the
    /// largest term at or below `epoch` still in the log (or `epoch` itself when every
    /// entry left is later); `None` when `epoch` is later than every term here. Terms
    /// never decrease along the log, so a binary search over the entry table finds it.
    pub fn end_offset_for_term(&self, epoch: u64) -> Result<Option<(u64, u64)>> {
        let last = self.last_raft_index();
        if last == 0 || last < self.first_raft_index() {
            return Ok(None);
        }
        let last_term = self.last_term();
        if epoch == last_term {
            return Ok(Some((epoch, self.next_offset())));
        }
        if epoch > last_term {
            return Ok(None);
        }
        // The first entry with a term above `epoch`: one exists, the last one is.
        let (mut lo, mut hi) = (self.first_raft_index(), last);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid)?.term > epoch {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let end = self.entry(lo)?.base_offset;
        let floor = if lo > self.first_raft_index() {
            self.entry(lo - 1)?.term
        } else {
            epoch
        };
        Ok(Some((floor, end)))
    }

    /// The bytes of an entry: the Kafka batch of a data entry (zero-copy), the payload of
    /// a non-data entry.
    pub fn entry_payload(&self, raft_index: u64) -> Result<Bytes> {
        let seg = self.segment_for_raft_index(raft_index)?;
        let rec = seg.entry(raft_index)?;
        if rec.kind.is_data() {
            seg.slice(rec.position, rec.end_position())
        } else {
            seg.meta_payload(&rec)
        }
    }

    // ------------------------------------------------------------ appends

    /// Appends a batch under the current term (the term of the last entry).
    pub fn append(&mut self, batch: &[u8]) -> Result<AppendInfo> {
        let term = self.last_term();
        self.append_with_term(term, batch)
    }

    /// Appends a Kafka RecordBatch v2 as the next Raft entry of `term`.
    ///
    /// The batch is validated (magic 2, length, CRC-32C, size ≤ `max.message.bytes`); its
    /// `baseOffset` is written as `next_offset()` and its `partitionLeaderEpoch` as `term`,
    /// both outside the CRC; `batch` itself is not changed. Nothing is written for a batch
    /// that fails validation.
    pub fn append_with_term(&mut self, term: u64, batch: &[u8]) -> Result<AppendInfo> {
        self.append_checked(term, batch, Some(self.config.max_message_bytes), Crc::Check)
    }

    /// [`Log::append_with_term`] for a batch a Raft group's leader accepted: checked the
    /// same but for `max.message.bytes`, which the leader applied when it took the
    /// batch. A follower must take every entry its leader appended (its own limit may
    /// be lower for a moment after a config change), or the group could not go on.
    pub fn append_replicated(&mut self, term: u64, batch: &[u8]) -> Result<AppendInfo> {
        self.append_checked(term, batch, None, Crc::Check)
    }

    /// [`Log::append_replicated`] for a batch whose CRC-32C the caller checked itself (a
    /// Raft leader's own proposal, validated when it was proposed): its header and
    /// length are checked, its CRC is not computed again.
    pub fn append_vouched(&mut self, term: u64, batch: &[u8]) -> Result<AppendInfo> {
        self.append_checked(term, batch, None, Crc::Vouched)
    }

    fn append_checked(
        &mut self,
        term: u64,
        batch: &[u8],
        limit: Option<u32>,
        crc: Crc,
    ) -> Result<AppendInfo> {
        self.check_open()?;
        let header = match crc {
            Crc::Check => BatchHeader::parse_validated(batch)?,
            Crc::Vouched => BatchHeader::parse_header(batch)?,
        };
        if header.size_bytes != batch.len() {
            return Err(LogError::CorruptBatch(BatchError::BadField(
                "bytes follow the batch's declared length",
            )));
        }
        if let Some(limit_bytes) = limit.filter(|&l| batch.len() > l as usize) {
            return Err(LogError::BatchTooLarge {
                size_bytes: batch.len(),
                limit_bytes,
            });
        }
        self.check_term(term)?;
        let base_offset = self.next_offset();
        let last_offset = base_offset
            .checked_add(u64::from(header.last_offset_delta as u32))
            .filter(|o| *o < i64::MAX as u64)
            .ok_or_else(|| LogError::InvalidArgument("offset space exhausted".into()))?;
        let now_ms = self.clock.now_ms();
        if self.active().should_roll(
            &self.config,
            batch.len(),
            last_offset,
            header.max_timestamp,
            now_ms,
        ) {
            self.roll()?;
        }
        let prefix = batch::patched_prefix(batch, base_offset, term);
        let header = BatchHeader {
            base_offset: base_offset as i64,
            partition_leader_epoch: i32::try_from(term).unwrap_or(i32::MAX),
            ..header
        };
        let config = &self.config;
        // Invariant: `segments` is never empty after `open`.
        let seg = self
            .segments
            .last_mut()
            .expect("a log always has an active segment");
        let (_, rest) = batch.split_at(prefix.len());
        let rec = seg.append_data([&prefix, rest], &header, term, config)?;
        if let Some(tree) = &mut self.audit {
            tree.push([&prefix, rest], base_offset, last_offset);
        }
        Ok(AppendInfo {
            base_offset,
            last_offset,
            raft_index: rec.raft_index,
            term,
            max_timestamp: header.max_timestamp,
        })
    }

    /// Appends a non-data Raft entry (no-op, configuration change, logged tree head or
    /// seal). It takes a Raft index but no Kafka offset. Returns its Raft index. An audit
    /// log checks a tree head or seal against its own tree (`audit_heads.rs`,
    /// `audit_seal.rs`).
    pub fn append_meta(&mut self, term: u64, kind: EntryKind, payload: &[u8]) -> Result<u64> {
        self.check_open()?;
        if kind.is_data() {
            return Err(LogError::InvalidArgument(
                "data entries are appended with append_with_term".into(),
            ));
        }
        if payload.len() > self.config.max_message_bytes as usize {
            return Err(LogError::BatchTooLarge {
                size_bytes: payload.len(),
                limit_bytes: self.config.max_message_bytes,
            });
        }
        self.check_term(term)?;
        let raft_index = self
            .active_mut()
            .append_meta(kind, term, payload)?
            .raft_index;
        match kind {
            EntryKind::AuditHead if self.config.audit => self.note_audit_head(raft_index, payload),
            EntryKind::AuditSeal if self.config.audit => self.note_audit_seal(raft_index, payload),
            _ => {}
        }
        Ok(raft_index)
    }

    fn check_term(&self, term: u64) -> Result<()> {
        let last = self.last_term();
        if term < last {
            return Err(LogError::InvalidArgument(format!(
                "term {term} is below the last entry's term {last}"
            )));
        }
        Ok(())
    }

    /// Starts a new, empty active segment at `next_offset` / `next_raft_index` (every
    /// earlier segment gone: a reset) and makes its files' names durable; nothing is
    /// left unflushed.
    fn start_segment(&mut self, next_offset: u64, next_raft_index: u64) -> Result<()> {
        let seg = Segment::create(
            &self.dir,
            next_offset,
            next_raft_index,
            &self.config,
            self.clock.now_ms(),
        )?;
        self.segments.push(seg);
        sync_dir(&self.dir)?;
        self.flushed_offset = next_offset;
        self.flushed_raft_index = next_raft_index - 1;
        Ok(())
    }

    /// Flushes, seals the active segment's files and writes the clean-shutdown marker.
    pub fn close(mut self) -> Result<()> {
        self.seal()
    }

    /// [`Log::close`] for a log others still hold (a Raft group's storage shares it
    /// with its partition): everything is flushed, the active segment's files are
    /// trimmed and synced, the checkpoint and the clean-shutdown marker are written, so
    /// the next open skips the recovery scan. From then on every change is refused
    /// ([`LogError::Closed`]); reads go on. Sealing a sealed log does nothing.
    pub fn seal(&mut self) -> Result<()> {
        if self.sealed {
            return Ok(());
        }
        self.flush()?;
        self.active_mut().close()?;
        self.spare.finish();
        self.sealed = true;
        self.checkpoint.recovery_point = self.next_offset();
        self.checkpoint.write(&self.dir)?;
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        std::fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(|e| LogError::io(&marker, e))?;
        sync_dir(&self.dir)
    }

    /// `Err(Closed)` once the log was sealed: its files must stay as the marker says.
    fn check_open(&self) -> Result<()> {
        if self.sealed {
            return Err(LogError::Closed {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    // ------------------------------------------------------------ reads

    fn check_offset(&self, offset: u64) -> Result<()> {
        let (start, next) = (self.log_start_offset(), self.next_offset());
        if offset < start || offset > next {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: start,
                next,
            });
        }
        Ok(())
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (at least one batch,
    /// however large), from a single segment, as zero-copy bytes. Empty at the log end.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Bytes> {
        self.read_bounded(offset, max_bytes, self.next_offset())
    }

    /// Like `read`, but never returns a batch at or past `limit_offset` (the high
    /// watermark for consumers).
    pub fn read_bounded(&self, offset: u64, max_bytes: usize, limit_offset: u64) -> Result<Bytes> {
        self.check_offset(offset)?;
        if offset >= limit_offset {
            return Ok(Bytes::new());
        }
        let i = self.segments.partition_point(|s| s.next_offset() <= offset);
        match self.segments.get(i) {
            Some(seg) => seg.read(offset, max_bytes, limit_offset),
            None => Ok(Bytes::new()),
        }
    }

    /// The base offset of the earliest batch whose max timestamp is at least
    /// `timestamp_ms`, at or after the log start; `None` when every batch is older.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>> {
        let start = self.log_start_offset();
        for seg in self.segments.iter().filter(|s| s.next_offset() > start) {
            if seg.max_timestamp() >= timestamp_ms {
                if let Some(o) = seg.offset_for_timestamp(timestamp_ms, start)? {
                    return Ok(Some(o.max(start)));
                }
            }
        }
        Ok(None)
    }

    /// Housekeeping: drops the memory maps of closed segments that no read used since
    /// the previous call (call it periodically, e.g. with retention). Keeps the pages of
    /// cold segments from counting as resident memory of the process; reads map a segment
    /// again on demand. Returns how many maps were dropped.
    pub fn release_idle_maps(&mut self) -> usize {
        self.segments
            .iter_mut()
            .map(|s| usize::from(s.release_idle_map()))
            .sum()
    }

    // ------------------------------------------------------------ truncation

    /// Removes every batch that holds an offset at or past `offset` (and the non-data
    /// entries after it); `next_offset()` becomes the base of the first removed batch.
    pub fn truncate_from(&mut self, offset: u64) -> Result<()> {
        self.check_open()?;
        if offset >= self.next_offset() {
            return Ok(());
        }
        self.check_offset(offset)?;
        let i = self.segments.partition_point(|s| s.next_offset() <= offset);
        let raft_index = self.segments[i].raft_index_of_offset(offset)?;
        self.truncate_from_raft_index(raft_index)
    }

    /// Removes the Raft entries from `raft_index` on (Raft conflict resolution). Offsets
    /// rewind with them.
    pub fn truncate_from_raft_index(&mut self, raft_index: u64) -> Result<()> {
        let done = self.truncate_entries(raft_index);
        // An audit tree follows the segments left, even when a step failed midway.
        let next = self.next_offset();
        if let Some(tree) = &mut self.audit {
            tree.truncate_from(next);
        }
        let kept = self.last_raft_index();
        self.audit_heads.truncate_from(kept + 1);
        self.audit_seal.truncate_from(kept + 1);
        done
    }

    fn truncate_entries(&mut self, raft_index: u64) -> Result<()> {
        self.check_open()?;
        if raft_index > self.last_raft_index() {
            return Ok(());
        }
        if raft_index < self.first_raft_index() {
            return Err(LogError::RaftIndexOutOfRange {
                requested: raft_index,
                first: self.first_raft_index(),
                last: self.last_raft_index(),
            });
        }
        self.generation += 1;
        let span = info_span!("log_truncate", dir = %self.dir.display(), raft_index);
        let _enter = span.enter();
        let i = self
            .segments
            .partition_point(|s| s.base_raft_index() <= raft_index)
            - 1;
        for seg in self.segments.drain(i + 1..).rev().collect::<Vec<_>>() {
            seg.delete()?;
        }
        let config = self.config.clone();
        self.forget_unsynced_from(self.segments[i].base_offset());
        // The segment is active again: its `.txnindex` and `.leaves` no longer cover it
        // (a read would refuse them by their anchor; removing them keeps the directory
        // honest).
        let [txnindex, _, leaves] = self.segments[i].sidecar_paths();
        for path in [txnindex, leaves] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(path, e)),
            }
        }
        self.segments[i].truncate_from_raft_index(raft_index, &config)?;
        sync_dir(&self.dir)?;
        let next = self.next_offset();
        self.flushed_offset = self.flushed_offset.min(next);
        self.flushed_raft_index = self.flushed_raft_index.min(self.last_raft_index());
        self.checkpoint.log_start_offset = self.checkpoint.log_start_offset.min(next);
        let base = self.active().base_offset();
        if self.checkpoint.recovery_point > base {
            self.checkpoint.recovery_point = base;
        }
        self.checkpoint.write(&self.dir)?;
        self.lower_first_dirty(next)?;
        info!(next_offset = next, "log truncated");
        Ok(())
    }

    /// Empties the log and restarts it at `next_offset` / `next_raft_index`, with
    /// `prev_term` as the term of entry `next_raft_index - 1` (installing a Raft snapshot).
    pub fn reset(&mut self, next_offset: u64, next_raft_index: u64, prev_term: u64) -> Result<()> {
        self.check_open()?;
        if next_raft_index == 0 {
            return Err(LogError::InvalidArgument("raft indexes start at 1".into()));
        }
        self.checkpoint = Checkpoint {
            log_start_offset: next_offset,
            recovery_point: next_offset,
            prev_raft_index: next_raft_index - 1,
            prev_raft_term: prev_term,
        };
        self.generation += 1;
        // The checkpoint goes first: old segments left by a crash are then below the log
        // start and removed at the next open.
        self.checkpoint.write(&self.dir)?;
        self.crash_point("log.reset.before_segments")?;
        for seg in std::mem::take(&mut self.segments) {
            seg.delete()?;
        }
        self.forget_unsynced_from(0);
        self.start_segment(next_offset, next_raft_index)?;
        self.lower_first_dirty(next_offset)?;
        self.build_audit_tree()
    }

    /// A crash test's point of interruption (see [`crate::failpoint`]); `Ok` in normal
    /// runs.
    fn crash_point(&self, point: &'static str) -> Result<()> {
        crate::failpoint::check(point).map_err(|e| LogError::io(&self.dir, e))
    }
}
