//! Log compaction (`cleanup.policy=compact`): rewrites closed segments keeping, per key,
//! only the latest record, as Kafka's `LogCleaner` does.
//!
//! ## Driving it
//!
//! A cleaning has three steps, so the log's lock is held only briefly:
//!
//! 1. [`crate::Log::prepare_clean`] (`&self`, cheap): decides whether the log is worth
//!    cleaning (`min.cleanable.dirty.ratio`, or a delete horizon that came due) and
//!    snapshots what to read: zero-copy slices of the segments' `.log` maps and duplicate
//!    handles on their entry tables.
//! 2. [`CleanJob::run`] (no lock; blocking I/O, run it off the async runtime): builds the
//!    offset map (key → latest offset) over the dirty section up to `clean_up_to_offset`,
//!    then writes the cleaned copy of every segment to rewrite into a staging directory.
//! 3. [`crate::Log::complete_clean`] (`&mut self`, short): checks that the segments it
//!    rewrote are still there and unchanged (truncation, reset, retention or DeleteRecords
//!    may have run meanwhile; then the job is discarded) and swaps the files in.
//!
//! ## What is kept
//!
//! - Only closed segments wholly below `clean_up_to_offset` (the high watermark: committed
//!   records are never truncated, so the map never points at a record Raft could remove)
//!   and older than `min.compaction.lag.ms` are rewritten; the map also holds the keys of
//!   later records below `clean_up_to_offset`, the active segment's included.
//! - A keyed record is removed when the map knows a higher offset for its key. Records
//!   without a key are kept (Kafka refuses them on compacted topics at produce time; a log
//!   that got some anyway keeps them). Control and transactional batches are kept as they
//!   are and their records don't enter the map (Strata has no transaction coordinator to
//!   say which were aborted).
//! - **Every batch is kept**, with its base offset, last offset delta, producer id, epoch,
//!   base sequence, partition leader epoch, timestamps and attributes; only its records,
//!   length, record count and CRC-32C change. A batch left without records stays as an
//!   empty batch (61 bytes, uncompressed), as Kafka writes one. So every Raft entry keeps
//!   its index, term, base offset and offset count: the entry table stays dense, lookups
//!   by Raft index stay arithmetic, and a lagging follower that is sent a cleaned entry
//!   derives the same offsets. Offsets inside a batch get gaps, which consumers tolerate.
//! - Compressed batches are decompressed, filtered and recompressed with the same codec.
//!
//! ## Tombstones (KIP-534's delete horizon)
//!
//! A tombstone (a record with a null value) that is the latest for its key is kept, and the
//! first cleaning that rewrites its batch sets the batch's delete horizon (`now +
//! delete.retention.ms`, stored in the base timestamp under attribute bit 6, record
//! timestamps unchanged). A later cleaning removes the tombstone when its batch lies in the
//! clean section (below the first dirty offset) and `now >= horizon`. Removing it is then
//! safe: the cleaning that set the horizon had the key in its map and removed every older
//! record of it. The log remembers the earliest horizon, so a due horizon starts a cleaning
//! on its own.
//!
//! A replicated log adds one condition ([`crate::Log::prepare_clean_below`]): the
//! tombstone's batch must lie below an offset every replica of the group holds. Each
//! replica cleans its own copy; a leader sends a lagging follower its cleaned entries.
//! Were a tombstone gone from one of them, a follower holding an older value of the key
//! but not the tombstone's entry would keep that value for ever.
//!
//! ## On disk and crash safety
//!
//! `run` writes each cleaned segment with the ordinary segment code into `.cleaner/` in the
//! partition directory and fsyncs it. `complete_clean` swaps segments in ascending offset
//! order; for segment `B`: rename `.cleaner/B.entries` to `B.entries.swap` and fsync the
//! directory (the commit point), move `.cleaner/B.{log,index,timeindex,entrydata}` over the
//! old files, rename `B.entries.swap` to `B.entries`, fsync the directory. With a
//! `file.delete.delay.ms` above 0, each old file is renamed `NAME.deleted` just before
//! its replacement moves in, and removed once the delay has passed. `Log::open` completes
//! every committed swap (a `B.entries.swap` exists), removes `.cleaner/` and any
//! `*.deleted` file, so
//! each segment is either wholly old or wholly new. Ascending order means a segment whose
//! tombstone was removed is never newer than an earlier segment still holding an older
//! value of that key; and a removed record always has a newer one at a higher offset that
//! no cleaning removes, so no mix of old and new segments loses a latest value.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, info, info_span, warn};

use crate::batch::{BatchHeader, Batches};
use crate::checkpoint::sync_dir;
use crate::config::LogConfig;
use crate::entries::{EntryRecord, ENTRY_RECORD_BYTES, ENTRY_TABLE_HEADER_BYTES};
use crate::error::{LogError, Result};
use crate::offset_map::OffsetMap;
use crate::records::{self, Rebuild, MAX_DECOMPRESSED_BATCH_BYTES};
use crate::segment::{self, Segment};
use crate::throttle::Throttle;

/// The staging directory, inside the partition directory, where `run` writes cleaned
/// segments.
pub const STAGING_DIR: &str = ".cleaner";
/// Suffix of an entry table whose segment swap is committed but not finished.
pub const SWAP_SUFFIX: &str = "entries.swap";
/// Kafka's default `log.cleaner.dedupe.buffer.size` (128 MiB).
pub const DEFAULT_DEDUPE_BUFFER_BYTES: u64 = 128 * 1024 * 1024;
/// Entry-table records read per `pread` while rewriting a segment.
const TABLE_READ_RECORDS: usize = 1024;

/// Broker-wide cleaner settings, Kafka's `log.cleaner.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerConfig {
    /// `log.cleaner.dedupe.buffer.size`: memory for one cleaning's offset map. A dirty
    /// section with more keys is cleaned in several passes, a prefix of segments each.
    pub dedupe_buffer_bytes: u64,
    /// `log.cleaner.io.max.bytes.per.second`: bytes read plus written by all cleanings
    /// sharing the [`Cleaner`]; `None` is unlimited (Kafka's default).
    pub io_max_bytes_per_second: Option<u64>,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            dedupe_buffer_bytes: DEFAULT_DEDUPE_BUFFER_BYTES,
            io_max_bytes_per_second: None,
        }
    }
}

/// What every cleaning of a broker shares: the settings and the I/O throttle. `Sync`;
/// keep one behind an `Arc` and pass it to each [`CleanJob::run`].
#[derive(Debug)]
pub struct Cleaner {
    config: CleanerConfig,
    throttle: Throttle,
}

impl Cleaner {
    pub fn new(config: CleanerConfig) -> Cleaner {
        Cleaner {
            config,
            throttle: Throttle::new(config.io_max_bytes_per_second),
        }
    }

    pub fn config(&self) -> &CleanerConfig {
        &self.config
    }

    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }
}

impl Default for Cleaner {
    fn default() -> Self {
        Cleaner::new(CleanerConfig::default())
    }
}

/// What a cleaning did, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanOutcome {
    /// False when the job was discarded because the log changed under it (truncation,
    /// reset, or retention of a segment it rewrote other than the oldest ones): nothing
    /// on disk changed, counts below describe the work thrown away.
    pub applied: bool,
    /// Segments swapped for their cleaned copies.
    pub segments_cleaned: usize,
    /// Batch bytes read (map pass and rewrite pass).
    pub bytes_read: u64,
    /// Batch bytes written to cleaned segments.
    pub bytes_written: u64,
    /// Size of the rewritten segments before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Records dropped (tombstones included).
    pub records_removed: u64,
    /// Tombstones dropped, superseded or past their delete horizon.
    pub tombstones_removed: u64,
    /// Batches whose bytes changed.
    pub batches_rewritten: u64,
    /// Keys in the offset map.
    pub map_keys: u64,
    /// The first dirty offset after this cleaning.
    pub first_dirty_offset: u64,
    /// Time `run` took.
    pub run_ms: u64,
}

/// Clears the log's "a cleaning is under way" flag when the job and its result are both
/// dropped.
#[derive(Debug)]
pub(crate) struct CleanGuard(pub(crate) Arc<AtomicBool>);

impl Drop for CleanGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// What `run` reads of one segment, taken under the log's lock by `prepare_clean`.
#[derive(Debug)]
pub(crate) struct SourceSegment {
    pub base_offset: u64,
    pub next_offset: u64,
    pub base_raft_index: u64,
    pub next_raft_index: u64,
    pub entry_count: usize,
    pub size_bytes: u64,
    pub log_path: PathBuf,
    /// The segment's batches: a zero-copy slice of its map.
    pub log: Bytes,
    /// Entry files, for segments to rewrite.
    pub handles: Option<segment::CleanHandles>,
}

/// A cleaning prepared by [`crate::Log::prepare_clean`]; [`CleanJob::run`] does the work
/// without the log's lock. Dropping it abandons the cleaning.
#[derive(Debug)]
pub struct CleanJob {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) now_ms: i64,
    pub(crate) clean_up_to: u64,
    /// Tombstones past their horizon go only in batches wholly below this offset.
    pub(crate) tombstones_below: u64,
    pub(crate) first_dirty: u64,
    pub(crate) generation: u64,
    pub(crate) old_horizon_ms: Option<i64>,
    /// Segments from the first on, through the last one holding offsets below
    /// `clean_up_to`.
    pub(crate) segments: Vec<SourceSegment>,
    /// The first `rewritable` of `segments` may be rewritten.
    pub(crate) rewritable: usize,
    pub(crate) guard: Arc<CleanGuard>,
}

/// The identity of a segment a job rewrote, checked again before the swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StagedSegment {
    pub base_offset: u64,
    pub next_offset: u64,
    pub base_raft_index: u64,
    pub next_raft_index: u64,
    pub old_size_bytes: u64,
    pub new_size_bytes: u64,
}

/// The result of [`CleanJob::run`]: cleaned segments waiting in the staging directory for
/// [`crate::Log::complete_clean`]. Dropping it abandons them (the next cleaning or open
/// removes them).
#[derive(Debug)]
pub struct Cleaned {
    pub(crate) dir: PathBuf,
    pub(crate) generation: u64,
    pub(crate) segments: Vec<StagedSegment>,
    pub(crate) first_dirty: u64,
    pub(crate) next_delete_horizon_ms: Option<i64>,
    /// The job's `tombstones_below`, when it kept a tombstone whose horizon had passed
    /// only because of that bound.
    pub(crate) held_back_below: Option<u64>,
    pub(crate) outcome: CleanOutcome,
    pub(crate) _guard: Arc<CleanGuard>,
}

impl Cleaned {
    /// The counts of the work done, as `complete_clean` will report them.
    pub fn outcome(&self) -> CleanOutcome {
        self.outcome
    }
}

/// Per-run state shared by the map pass and the rewrite pass.
struct Pass<'a> {
    job: &'a CleanJob,
    throttle: &'a Throttle,
    map: OffsetMap,
    outcome: CleanOutcome,
    /// Earliest delete horizon of the tombstones kept by this pass.
    horizon_ms: Option<i64>,
    /// A tombstone past its horizon was kept only because of `tombstones_below`.
    held_back: bool,
}

fn corrupt_batch(path: &Path, offset: u64, reason: impl std::fmt::Display) -> LogError {
    LogError::corrupt(path, format!("batch at offset {offset}: {reason}"))
}

impl CleanJob {
    /// The offset below which the cleaning looks (the `clean_up_to_offset` given, capped at
    /// the log end).
    pub fn clean_up_to_offset(&self) -> u64 {
        self.clean_up_to
    }

    /// Segments the job may rewrite.
    pub fn segments_to_clean(&self) -> usize {
        self.rewritable
    }

    /// Builds the offset map and writes the cleaned segments to the staging directory,
    /// fsynced. Blocking I/O, paced by `cleaner`'s throttle; takes no lock. Bytes on disk
    /// are checked as they are read (batch CRC-32C, entry checksums, record framing):
    /// damage is a [`LogError::CorruptFile`] naming the file and offset, and nothing is
    /// swapped.
    pub fn run(&self, cleaner: &Cleaner) -> Result<Cleaned> {
        let started = Instant::now();
        let span = info_span!("log_clean", dir = %self.dir.display());
        let _enter = span.enter();
        let mut pass = Pass {
            job: self,
            throttle: cleaner.throttle(),
            map: OffsetMap::with_buffer_bytes(cleaner.config().dedupe_buffer_bytes),
            outcome: CleanOutcome::default(),
            horizon_ms: None,
            held_back: false,
        };
        let map_end = pass.build_map()?;
        pass.outcome.map_keys = pass.map.len() as u64;
        let n = self.segments[..self.rewritable]
            .iter()
            .take_while(|s| s.next_offset <= map_end)
            .count();
        let covers_dirty = self.segments[..n]
            .last()
            .is_some_and(|s| s.next_offset > self.first_dirty);
        let horizon_due = self.old_horizon_ms.is_some_and(|h| self.now_ms >= h);
        if n == 0 || (!covers_dirty && !horizon_due) {
            return Err(LogError::InvalidArgument(format!(
                "log.cleaner.dedupe.buffer.size {} bytes holds {} keys, too few for the first dirty segment of {} (offset {})",
                cleaner.config().dedupe_buffer_bytes,
                pass.map.capacity(),
                self.dir.display(),
                self.first_dirty
            )));
        }
        let stage = self.dir.join(STAGING_DIR);
        reset_staging_dir(&stage)?;
        let mut staged = Vec::with_capacity(n);
        for source in &self.segments[..n] {
            staged.push(pass.rewrite_segment(source, &stage)?);
        }
        sync_dir(&stage)?;
        let first_dirty = self.first_dirty.max(self.segments[n - 1].next_offset);
        // Horizons of tombstones outside the rewritten segments are unknown here: keep the
        // old one unless the whole clean section was rewritten.
        let mut next_horizon = pass.horizon_ms;
        if self.segments[n - 1].next_offset < self.first_dirty {
            next_horizon = min_opt(next_horizon, self.old_horizon_ms);
        }
        let mut outcome = pass.outcome;
        outcome.first_dirty_offset = first_dirty;
        outcome.bytes_before = staged.iter().map(|s| s.old_size_bytes).sum();
        outcome.bytes_after = staged.iter().map(|s| s.new_size_bytes).sum();
        outcome.run_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        info!(
            segments = n,
            bytes_before = outcome.bytes_before,
            bytes_after = outcome.bytes_after,
            records_removed = outcome.records_removed,
            tombstones_removed = outcome.tombstones_removed,
            map_keys = outcome.map_keys,
            run_ms = outcome.run_ms,
            "cleaned segments staged"
        );
        Ok(Cleaned {
            dir: self.dir.clone(),
            generation: self.generation,
            segments: staged,
            first_dirty,
            next_delete_horizon_ms: next_horizon,
            held_back_below: pass.held_back.then_some(self.tombstones_below),
            outcome,
            _guard: Arc::clone(&self.guard),
        })
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Empties (or creates) the staging directory. Only called while no swap is pending: a
/// committed swap is finished before `complete_clean` returns, or else the log refuses
/// further cleanings until it is reopened.
fn reset_staging_dir(stage: &Path) -> Result<()> {
    match std::fs::remove_dir_all(stage) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(LogError::io(stage, e)),
    }
    std::fs::create_dir(stage).map_err(|e| LogError::io(stage, e))
}

impl Pass<'_> {
    /// Maps every keyed record of the dirty section below `clean_up_to` to its latest
    /// offset. Returns the offset the map is complete up to: `clean_up_to`, or the base of
    /// the segment where the map filled up.
    fn build_map(&mut self) -> Result<u64> {
        let job = self.job;
        for source in job
            .segments
            .iter()
            .filter(|s| s.next_offset > job.first_dirty)
        {
            if source.base_offset >= job.clean_up_to {
                break;
            }
            let mut expected_base = source.base_offset;
            for item in Batches::new(source.log.clone()) {
                let (header, batch) = item.map_err(|e| {
                    LogError::corrupt(&source.log_path, format!("while mapping keys: {e}"))
                })?;
                let base = header.base_offset as u64;
                if header.base_offset < 0 || base != expected_base {
                    return Err(corrupt_batch(
                        &source.log_path,
                        expected_base,
                        format!("header says base offset {}", header.base_offset),
                    ));
                }
                expected_base = base.saturating_add(header.offset_count());
                if base >= job.clean_up_to {
                    break;
                }
                let header = BatchHeader::parse_validated(&batch)
                    .map_err(|e| corrupt_batch(&source.log_path, base, e))?;
                self.account_read(batch.len());
                if header.is_control() || header.is_transactional() {
                    continue;
                }
                let data = records::records_section(&batch, &header, MAX_DECOMPRESSED_BATCH_BYTES)
                    .map_err(|e| corrupt_batch(&source.log_path, base, e))?;
                let recs = records::parse_records(&data, header.records_count)
                    .map_err(|e| corrupt_batch(&source.log_path, base, e))?;
                for r in recs {
                    let offset = record_offset(&header, r.offset_delta).ok_or_else(|| {
                        corrupt_batch(&source.log_path, base, "offset delta out of range")
                    })?;
                    let Some(key) = r.key else { continue };
                    if offset >= job.clean_up_to {
                        break;
                    }
                    if !self.map.put(key, offset) {
                        debug!(
                            keys = self.map.len(),
                            segment = source.base_offset,
                            "offset map full; cleaning the segments before this one"
                        );
                        return Ok(source.base_offset);
                    }
                }
            }
        }
        Ok(job.clean_up_to)
    }

    fn account_read(&mut self, bytes: usize) {
        self.outcome.bytes_read += bytes as u64;
        self.throttle.consume(bytes as u64);
    }

    /// Writes the cleaned copy of `source` into `stage` with the ordinary segment code,
    /// entry by entry, seals it (fsync), and re-opens it to check it.
    fn rewrite_segment(&mut self, source: &SourceSegment, stage: &Path) -> Result<StagedSegment> {
        let job = self.job;
        let handles = source.handles.as_ref().ok_or_else(|| {
            LogError::InvalidArgument("segment to rewrite has no entry handles".into())
        })?;
        let mut out = Segment::create(
            stage,
            source.base_offset,
            source.base_raft_index,
            &job.config,
            job.now_ms,
        )?;
        let entrydata_bytes = match &handles.entrydata {
            Some((path, file)) => file.metadata().map_err(|e| LogError::io(path, e))?.len(),
            None => 0,
        };
        let mut table_buf = vec![0u8; TABLE_READ_RECORDS * ENTRY_RECORD_BYTES];
        let mut payload = Vec::new();
        let mut slot = 0usize;
        while slot < source.entry_count {
            let n = (source.entry_count - slot).min(TABLE_READ_RECORDS);
            let buf = &mut table_buf[..n * ENTRY_RECORD_BYTES];
            let at = (ENTRY_TABLE_HEADER_BYTES + slot * ENTRY_RECORD_BYTES) as u64;
            handles
                .table
                .read_exact_at(buf, at)
                .map_err(|e| LogError::io(&handles.table_path, e))?;
            for (i, raw) in buf.chunks_exact(ENTRY_RECORD_BYTES).enumerate() {
                let expected = source.base_raft_index + (slot + i) as u64;
                let rec = EntryRecord::decode(raw)
                    .filter(|r| r.raft_index == expected)
                    .ok_or_else(|| {
                        LogError::corrupt(
                            &handles.table_path,
                            format!("entry for raft index {expected} is damaged"),
                        )
                    })?;
                if rec.kind.is_data() {
                    self.rewrite_entry(source, &rec, &mut out)?;
                } else {
                    read_meta_payload(handles, entrydata_bytes, &rec, &mut payload)?;
                    out.append_meta(rec.kind, rec.term, &payload)?;
                }
            }
            slot += n;
        }
        out.close()?;
        let new_size_bytes = out.size_bytes();
        drop(out);
        check_staged(stage, source, job)?;
        debug!(
            base_offset = source.base_offset,
            bytes_before = source.size_bytes,
            bytes_after = new_size_bytes,
            "segment cleaned"
        );
        Ok(StagedSegment {
            base_offset: source.base_offset,
            next_offset: source.next_offset,
            base_raft_index: source.base_raft_index,
            next_raft_index: source.next_raft_index,
            old_size_bytes: source.size_bytes,
            new_size_bytes,
        })
    }

    /// Sorts a batch's records into those kept and those removed: a keyed record goes
    /// when a later offset holds its key, a tombstone also once `horizon_passed`.
    /// `None` when a record's offset lies outside its batch.
    fn sort_records<'r>(
        &self,
        header: &BatchHeader,
        recs: &[records::RecordView<'r>],
        horizon_passed: bool,
    ) -> Option<Sorted<'r>> {
        let mut sorted = Sorted {
            kept: Vec::with_capacity(recs.len()),
            removed: 0,
            tombstones_removed: 0,
            kept_tombstones: false,
        };
        for r in recs {
            let offset = record_offset(header, r.offset_delta)?;
            let keep = match r.key {
                None => true,
                Some(key) => {
                    let superseded = self.map.get(key).is_some_and(|latest| latest > offset);
                    !superseded && (r.has_value || !horizon_passed)
                }
            };
            if keep {
                sorted.kept_tombstones |= r.key.is_some() && !r.has_value;
                sorted.kept.push(*r);
            } else {
                sorted.removed += 1;
                sorted.tombstones_removed += u64::from(!r.has_value);
            }
        }
        Some(sorted)
    }

    /// Filters the batch of data entry `rec` and appends the result to `out`.
    fn rewrite_entry(
        &mut self,
        source: &SourceSegment,
        rec: &EntryRecord,
        out: &mut Segment,
    ) -> Result<()> {
        let path = &source.log_path;
        let start = usize::try_from(rec.position).unwrap_or(usize::MAX);
        let batch = start
            .checked_add(rec.length as usize)
            .and_then(|end| source.log.get(start..end))
            .ok_or_else(|| corrupt_batch(path, rec.base_offset, "entry points past the log"))?;
        let header = BatchHeader::parse_validated(batch)
            .map_err(|e| corrupt_batch(path, rec.base_offset, e))?;
        if header.base_offset as u64 != rec.base_offset
            || header.offset_count() != u64::from(rec.aux)
            || header.size_bytes != batch.len()
        {
            return Err(corrupt_batch(
                path,
                rec.base_offset,
                "batch disagrees with its raft entry",
            ));
        }
        self.account_read(batch.len());
        let filtered = self.filter_batch(path, batch, &header)?;
        let bytes: &[u8] = filtered.as_deref().unwrap_or(batch);
        let new_header = BatchHeader::parse_validated(bytes)
            .map_err(|e| corrupt_batch(path, rec.base_offset, format!("rebuilt batch: {e}")))?;
        out.append_data([bytes, &[]], &new_header, rec.term, &self.job.config)?;
        if filtered.is_some() {
            self.outcome.batches_rewritten += 1;
        }
        self.outcome.bytes_written += bytes.len() as u64;
        self.throttle.consume(bytes.len() as u64);
        Ok(())
    }

    /// The cleaned batch, or `None` when it stays as it is.
    fn filter_batch(
        &mut self,
        path: &Path,
        batch: &[u8],
        header: &BatchHeader,
    ) -> Result<Option<Vec<u8>>> {
        let job = self.job;
        if header.is_control() || header.is_transactional() {
            return Ok(None);
        }
        let base = header.base_offset as u64;
        let data = records::records_section(batch, header, MAX_DECOMPRESSED_BATCH_BYTES)
            .map_err(|e| corrupt_batch(path, base, e))?;
        let recs = records::parse_records(&data, header.records_count)
            .map_err(|e| corrupt_batch(path, base, e))?;
        let horizon = records::delete_horizon_ms(header);
        // Only batches an earlier cleaning already rewrote (the clean section) lose their
        // tombstones to the horizon: see the module documentation.
        let last = header.last_offset() as u64;
        let due = last < job.first_dirty && horizon.is_some_and(|h| job.now_ms >= h);
        let horizon_passed = due && last < job.tombstones_below;
        let Sorted {
            kept,
            removed,
            tombstones_removed,
            kept_tombstones,
        } = self
            .sort_records(header, &recs, horizon_passed)
            .ok_or_else(|| corrupt_batch(path, base, "offset delta out of range"))?;
        self.held_back |= kept_tombstones && due && !horizon_passed;
        let set_horizon = kept_tombstones && horizon.is_none();
        if removed == 0 && !set_horizon {
            if kept_tombstones {
                self.horizon_ms = min_opt(self.horizon_ms, horizon);
            }
            return Ok(None);
        }
        let new_horizon = job.now_ms.saturating_add(job.config.delete_retention_ms);
        let mut rebuilt = records::rebuild_batch(
            batch,
            header,
            &kept,
            Rebuild {
                delete_horizon_ms: set_horizon.then_some(new_horizon),
            },
        )
        .map_err(|e| corrupt_batch(path, base, e))?;
        let limit = batch.len().max(job.config.max_message_bytes as usize);
        let mut batch_horizon = if set_horizon {
            Some(new_horizon)
        } else {
            horizon
        };
        if set_horizon && rebuilt.len() > limit {
            // Re-encoded timestamp deltas made the batch too big to replicate: keep the
            // tombstones without a horizon (they stay until superseded).
            warn!(
                offset = base,
                "batch too large for a delete horizon; its tombstones stay"
            );
            batch_horizon = None;
            rebuilt = records::rebuild_batch(
                batch,
                header,
                &kept,
                Rebuild {
                    delete_horizon_ms: None,
                },
            )
            .map_err(|e| corrupt_batch(path, base, e))?;
            if removed == 0 {
                return Ok(None);
            }
        }
        if kept_tombstones {
            self.horizon_ms = min_opt(self.horizon_ms, batch_horizon);
        }
        self.outcome.records_removed += removed;
        self.outcome.tombstones_removed += tombstones_removed;
        Ok(Some(rebuilt))
    }
}

/// A batch's records, sorted by [`Pass::sort_records`].
struct Sorted<'r> {
    kept: Vec<records::RecordView<'r>>,
    removed: u64,
    tombstones_removed: u64,
    kept_tombstones: bool,
}

/// The offset of a record, checked to lie within its batch.
fn record_offset(header: &BatchHeader, offset_delta: i32) -> Option<u64> {
    if offset_delta < 0 || offset_delta > header.last_offset_delta {
        return None;
    }
    (header.base_offset as u64).checked_add(offset_delta as u64)
}

mod swap;
pub(crate) use swap::{finish_interrupted, swap_segment, Steps, SwapError};

/// Reads the payload of non-data entry `rec` from the segment's `.entrydata` file
/// into `payload`, checking it lies within the file's `entrydata_bytes` and matches
/// its checksum.
fn read_meta_payload(
    handles: &segment::CleanHandles,
    entrydata_bytes: u64,
    rec: &EntryRecord,
    payload: &mut Vec<u8>,
) -> Result<()> {
    let (path, file) = handles
        .entrydata
        .as_ref()
        .ok_or_else(|| LogError::corrupt(&handles.table_path, "entry data file is missing"))?;
    if rec.end_position() > entrydata_bytes {
        let why = format!(
            "payload of raft entry {} runs past the file",
            rec.raft_index
        );
        return Err(LogError::corrupt(path, why));
    }
    payload.resize(rec.length as usize, 0);
    file.read_exact_at(payload, rec.position)
        .map_err(|e| LogError::io(path, e))?;
    if crc32fast::hash(payload) != rec.aux {
        let why = format!(
            "payload of raft entry {} fails its checksum",
            rec.raft_index
        );
        return Err(LogError::corrupt(path, why));
    }
    Ok(())
}

/// Re-opens the sealed copy of `source` in `stage` and checks it ends where the
/// original did, in offsets and in Raft indexes.
fn check_staged(stage: &Path, source: &SourceSegment, job: &CleanJob) -> Result<()> {
    let mut check = Segment::open_files(stage, source.base_offset, job.now_ms)?;
    check.load_clean(&job.config, true)?;
    if check.next_offset() != source.next_offset
        || check.next_raft_index() != source.next_raft_index
    {
        return Err(LogError::corrupt(
            check.log_path(),
            format!(
                "cleaned segment ends at offset {} / raft index {}, the original at {} / {}",
                check.next_offset(),
                check.next_raft_index(),
                source.next_offset,
                source.next_raft_index
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
