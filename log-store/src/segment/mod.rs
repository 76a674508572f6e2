//! One segment: a `.log` of Kafka batches with its `.index`, `.timeindex`, `.entries`
//! (dense Raft entry table) and optional `.entrydata` (payloads of non-data entries), all
//! named by the segment's base offset.
//!
//! Writes go through `pwrite` at the logical end of the `.log`; reads slice one shared
//! memory map of the file, so they copy nothing and never take the append path's lock.
//! A segment's file never shrinks while a reader still holds bytes of it: truncation
//! shrinks the file only when no slice of the mapping is alive, and otherwise moves the
//! logical end alone (the stale tail beyond it is cut at close or by the next recovery).
//!
//! This module holds the files (create, open, append, truncate); `durability` their
//! flushes and closing; `removal` their deletion; `maps` the memory map's lifecycle and the process-wide account of
//! mapped reads; `indexes` the offset and time indexes and the lookups through them;
//! `recovery` the checks at open and the repair after an unclean stop.

mod durability;
mod indexes;
mod maps;
mod recovery;
mod removal;
mod spare;

pub use maps::MAP_RESIDENT_BYTES;
pub use recovery::RecoveryOutcome;
pub(crate) use removal::rename_aside;
pub use spare::Spare;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use memmap2::Mmap;

use crate::batch::{BatchHeader, BATCH_HEADER_BYTES};
use crate::config::LogConfig;
use crate::entries::{EntryKind, EntryRecord, EntryTable};
use crate::error::{LogError, Result};
use crate::failpoint;
use crate::index::{OffsetIndex, TimeIndex};

/// File name suffixes of a segment's files.
pub const LOG_SUFFIX: &str = "log";
pub const OFFSET_INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";
pub const ENTRIES_SUFFIX: &str = "entries";
pub const ENTRYDATA_SUFFIX: &str = "entrydata";
/// Suffix added to the name of a segment file that was removed from the log but stays on
/// disk until `file.delete.delay.ms` has passed (`B.log.deleted`, …).
pub const DELETED_SUFFIX: &str = "deleted";

/// What a flush prepared by [`Segment::sync_handles`] makes durable: the entry table's
/// first `entries` records and `.entrydata` up to `entrydata_bytes` (nothing of either
/// when the table is rebuildable).
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncCover {
    entries: usize,
    entrydata_bytes: u64,
    /// The table's file is among the synced ones: its header is durable after it.
    header: bool,
}

/// `NNNNNNNNNNNNNNNNNNNN.suffix`: the base offset zero-padded to 20 digits, as Kafka names
/// its segment files.
pub fn segment_file_name(base_offset: u64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// Parses a segment file name back into (base offset, suffix).
pub fn parse_segment_file_name(name: &str) -> Option<(u64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, suffix))
}

/// Handles on a segment's entry files for the cleaner (see [`Segment::clean_handles`]).
#[derive(Debug)]
pub(crate) struct CleanHandles {
    pub table_path: PathBuf,
    pub table: File,
    pub entrydata: Option<(PathBuf, File)>,
}

#[derive(Debug)]
pub struct Segment {
    base_offset: u64,
    log_path: PathBuf,
    log_file: File,
    /// Logical size: bytes of the `.log` that belong to the log.
    log_size: u64,
    /// Length of the `.log` file; larger than `log_size` after a truncation that had to
    /// leave the file alone because readers held slices of it.
    file_size: u64,
    log_dirty: bool,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    entries: EntryTable,
    entrydata_path: PathBuf,
    entrydata: Option<File>,
    entrydata_size: u64,
    /// How much of `.entrydata` is known durable: a flush syncs the file only when it
    /// grew past this (most flushes cover data entries only).
    entrydata_synced: u64,
    next_offset: u64,
    /// Largest batch max timestamp in the segment, -1 when none.
    max_timestamp: i64,
    offset_of_max_timestamp: u64,
    /// Max timestamp of the segment's first batch (message time; `None` when it has no
    /// batch or no timestamp). Set for an active segment; read from the `.log` on first
    /// use for a closed one loaded from disk.
    first_batch_ms: OnceLock<Option<i64>>,
    /// Wall-clock time the segment was created or loaded; `segment.ms` counts from here
    /// when batches carry no timestamps.
    created_ms: i64,
    bytes_since_index_entry: u64,
    /// Length to map the `.log` with: past the file's end while the segment is active, so
    /// appends become readable without remapping.
    map_len: u64,
    map: OnceLock<Arc<Mmap>>,
    /// Set by every read through the map; cleared by `release_idle_map`.
    map_used: AtomicBool,
    /// The [`RESIDENT_MAPS`] epoch the map was last registered in (0: not yet).
    map_epoch: AtomicU64,
    /// Mappings replaced while readers still held slices of them.
    retired_maps: Vec<std::sync::Weak<Mmap>>,
    active: bool,
}

/// Cuts the file at `path` to nothing if there is one: an index about to be created
/// must not take entries of an earlier life of the name.
fn empty_if_present(path: &Path) -> Result<()> {
    match OpenOptions::new().write(true).truncate(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(path, e)),
    }
}

fn open_rw(path: &Path, create: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(|e| LogError::io(path, e))
}

impl Segment {
    fn paths(dir: &Path, base_offset: u64) -> [PathBuf; 5] {
        [
            LOG_SUFFIX,
            OFFSET_INDEX_SUFFIX,
            TIME_INDEX_SUFFIX,
            ENTRIES_SUFFIX,
            ENTRYDATA_SUFFIX,
        ]
        .map(|s| dir.join(segment_file_name(base_offset, s)))
    }

    fn active_map_len(config: &LogConfig, log_size: u64) -> u64 {
        log_size.max(config.segment_bytes) + u64::from(config.max_message_bytes)
    }

    /// Creates a new, empty active segment, its table's header synced. The entry table
    /// is written first, so a crash can never leave a `.log` without its table. The
    /// caller syncs the directory. Files already there under its names (a roll's spare
    /// ones, or stale ones) are emptied and reused.
    pub fn create(
        dir: &Path,
        base_offset: u64,
        base_raft_index: u64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Segment> {
        Self::create_with(dir, base_offset, base_raft_index, config, now_ms, true)
    }

    /// [`Segment::create`] for a roll: the table's header is left to the log's next
    /// flush, which syncs it with the closed segment and the directory.
    pub fn create_for_roll(
        dir: &Path,
        base_offset: u64,
        base_raft_index: u64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Segment> {
        Self::create_with(dir, base_offset, base_raft_index, config, now_ms, false)
    }

    fn create_with(
        dir: &Path,
        base_offset: u64,
        base_raft_index: u64,
        config: &LogConfig,
        now_ms: i64,
        sync_header: bool,
    ) -> Result<Segment> {
        let [log_path, index_path, time_path, entries_path, entrydata_path] =
            Self::paths(dir, base_offset);
        let entries = EntryTable::create(&entries_path, base_offset, base_raft_index, sync_header)?;
        let log_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(|e| LogError::io(&log_path, e))?;
        empty_if_present(&index_path)?;
        empty_if_present(&time_path)?;
        let _ = std::fs::remove_file(&entrydata_path);
        let offset_index = OffsetIndex::open(&index_path, Some(config.segment_index_bytes))?;
        let time_index = TimeIndex::open(&time_path, Some(config.segment_index_bytes))?;
        Ok(Segment {
            base_offset,
            log_path,
            log_file,
            log_size: 0,
            file_size: 0,
            log_dirty: false,
            offset_index,
            time_index,
            entries,
            entrydata_path,
            entrydata: None,
            entrydata_size: 0,
            entrydata_synced: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_ms: OnceLock::from(None),
            created_ms: now_ms,
            bytes_since_index_entry: 0,
            map_len: Self::active_map_len(config, 0),
            map: OnceLock::new(),
            map_used: AtomicBool::new(false),
            map_epoch: AtomicU64::new(0),
            retired_maps: Vec::new(),
            active: true,
        })
    }

    /// Opens an existing segment's files without judging their content; follow with
    /// `load_clean` or `recover`. Fails when the entry table is missing or its header is
    /// bad: such a segment can't say which bytes are part of the log.
    pub fn open_files(dir: &Path, base_offset: u64, now_ms: i64) -> Result<Segment> {
        let [log_path, index_path, time_path, entries_path, entrydata_path] =
            Self::paths(dir, base_offset);
        let entries = EntryTable::open(&entries_path)?;
        if entries.base_offset() != base_offset {
            return Err(LogError::corrupt(
                &entries_path,
                format!(
                    "entry table says base offset {} but the file is named for {base_offset}",
                    entries.base_offset()
                ),
            ));
        }
        let log_file = open_rw(&log_path, true)?;
        let file_size = log_file
            .metadata()
            .map_err(|e| LogError::io(&log_path, e))?
            .len();
        // An index whose size is not whole entries is rebuilt later; open it empty.
        let offset_index = match OffsetIndex::open(&index_path, None) {
            Ok(i) => i,
            Err(_) => {
                let _ = std::fs::remove_file(&index_path);
                OffsetIndex::open(&index_path, None)?
            }
        };
        let time_index = match TimeIndex::open(&time_path, None) {
            Ok(i) => i,
            Err(_) => {
                let _ = std::fs::remove_file(&time_path);
                TimeIndex::open(&time_path, None)?
            }
        };
        let (entrydata, entrydata_size) = match std::fs::metadata(&entrydata_path) {
            Ok(m) => (Some(open_rw(&entrydata_path, false)?), m.len()),
            Err(_) => (None, 0),
        };
        Ok(Segment {
            base_offset,
            log_path,
            log_file,
            log_size: file_size,
            file_size,
            log_dirty: false,
            offset_index,
            time_index,
            entries,
            entrydata_path,
            entrydata,
            entrydata_size,
            entrydata_synced: entrydata_size,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_ms: OnceLock::new(),
            created_ms: now_ms,
            bytes_since_index_entry: 0,
            map_len: file_size,
            map: OnceLock::new(),
            map_used: AtomicBool::new(false),
            map_epoch: AtomicU64::new(0),
            retired_maps: Vec::new(),
            active: false,
        })
    }

    // ---------------------------------------------------------------- accessors

    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }
    pub fn base_raft_index(&self) -> u64 {
        self.entries.base_raft_index()
    }
    pub fn next_raft_index(&self) -> u64 {
        self.entries.next_raft_index()
    }
    pub fn size_bytes(&self) -> u64 {
        self.log_size
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn is_active(&self) -> bool {
        self.active
    }
    pub fn has_data(&self) -> bool {
        self.next_offset > self.base_offset
    }
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    pub fn offset_index_len(&self) -> usize {
        self.offset_index.len()
    }
    pub fn time_index_len(&self) -> usize {
        self.time_index.len()
    }

    /// Raft index of the data entry whose batch holds `offset` (or the first batch after
    /// it), by binary search of the entry table; `next_raft_index()` when there is none.
    pub fn raft_index_of_offset(&self, offset: u64) -> Result<u64> {
        let mut slot = self.entries.first_ending_after(offset)?;
        while slot < self.entries.len() && !self.entries.get(slot)?.kind.is_data() {
            slot += 1;
        }
        Ok(self.base_raft_index() + slot as u64)
    }

    /// The term of the last entry, if any.
    pub fn last_term(&self) -> Result<Option<u64>> {
        Ok(self.entries.last()?.map(|r| r.term))
    }

    /// The entry record for `raft_index`, which must lie in this segment.
    pub fn entry(&self, raft_index: u64) -> Result<EntryRecord> {
        let slot = raft_index
            .checked_sub(self.base_raft_index())
            .filter(|s| (*s as usize) < self.entries.len())
            .ok_or_else(|| LogError::RaftIndexOutOfRange {
                requested: raft_index,
                first: self.base_raft_index(),
                last: self.next_raft_index().saturating_sub(1),
            })?;
        self.entries.get(slot as usize)
    }

    /// True when the segment should roll before taking a batch of `size_bytes` ending at
    /// `last_offset` with max timestamp `batch_max_timestamp`, at wall time `now_ms`.
    ///
    /// Age follows Kafka: message time of the new batch minus that of the segment's first
    /// batch, or wall time since creation when the first batch had no timestamp, against
    /// [`LogConfig::roll_ms`] (`segment.ms`, or `max.compaction.lag.ms` when a compacted
    /// log's is smaller).
    pub fn should_roll(
        &self,
        config: &LogConfig,
        size_bytes: usize,
        last_offset: u64,
        batch_max_timestamp: i64,
        now_ms: i64,
    ) -> bool {
        if !self.has_data() {
            // Rolling an empty segment would create a second one with the same name.
            return false;
        }
        let too_big = self.log_size + size_bytes as u64 > config.segment_bytes;
        // Keep one slot of each index for the final time entry written at close.
        let index_full = self.offset_index.len() + 2 > self.offset_index.capacity()
            || self.time_index.len() + 2 > self.time_index.capacity();
        let offset_overflow = last_offset - self.base_offset > i32::MAX as u64;
        // Always set for the active segment (by `create`, `reactivate` and appends).
        let first_batch_ms = self.first_batch_ms.get().copied().flatten();
        let too_old = match (config.roll_ms(), first_batch_ms) {
            (Some(ms), Some(base)) => batch_max_timestamp.saturating_sub(base) >= ms,
            (Some(ms), None) => now_ms.saturating_sub(self.created_ms) >= ms,
            (None, _) => false,
        };
        too_big || index_full || offset_overflow || too_old
    }

    // ---------------------------------------------------------------- appends

    /// Writes an already validated and patched batch at the end of the `.log` and records
    /// it as Raft entry `raft_index` of `term`. The batch comes in two parts, written one
    /// after the other: its patched first bytes and the rest, so an append never copies
    /// the caller's batch (a torn write between them is a short frame to recovery).
    pub fn append_data(
        &mut self,
        [head, rest]: [&[u8]; 2],
        header: &BatchHeader,
        term: u64,
        config: &LogConfig,
    ) -> Result<EntryRecord> {
        debug_assert!(self.active);
        // Room for the entry first: a full disk fails here, before any byte is written.
        self.entries.make_room()?;
        let position = self.log_size;
        let len = head.len() + rest.len();
        for (part, at) in [(head, position), (rest, position + head.len() as u64)] {
            if !part.is_empty() {
                self.log_file
                    .write_all_at(part, at)
                    .map_err(|e| LogError::io(&self.log_path, e))?;
            }
        }
        self.log_size += len as u64;
        self.file_size = self.file_size.max(self.log_size);
        self.log_dirty = true;
        let rec = EntryRecord {
            raft_index: self.entries.next_raft_index(),
            term,
            base_offset: self.next_offset,
            position,
            length: len as u32,
            kind: EntryKind::Data,
            aux: header.offset_count() as u32,
        };
        self.entries.push(&rec)?;
        self.next_offset = rec.next_offset();
        if self.log_size == len as u64 && header.max_timestamp >= 0 {
            self.first_batch_ms = OnceLock::from(Some(header.max_timestamp));
        }
        self.index_batch(
            position,
            header.last_offset() as u64,
            header.max_timestamp,
            len,
            config,
        );
        if self.log_size > self.map_len {
            // Only reachable when the config changed under an active segment.
            self.map_len = Self::active_map_len(config, self.log_size);
            self.reset_map();
        }
        Ok(rec)
    }

    /// Records a non-data entry (no-op, configuration change) whose payload goes to
    /// `.entrydata`; it takes no Kafka offset.
    ///
    /// In a rebuildable table (see `entries.rs`) the entry is durable before this returns,
    /// in this order: the records before it are synced (so a payload without its record
    /// can only follow records that are all on disk), the payload and record are written,
    /// then `.entrydata` and the table are synced. The `.log` is not: a crash may still
    /// cut this entry with a batch before it that never reached the disk.
    pub fn append_meta(
        &mut self,
        kind: EntryKind,
        term: u64,
        payload: &[u8],
    ) -> Result<EntryRecord> {
        debug_assert!(self.active && !kind.is_data());
        self.entries.make_room()?;
        let rebuildable = self.entries.rebuildable();
        if rebuildable && self.entries.has_unsynced() {
            self.entries.sync()?;
        }
        failpoint::check("log.meta.before_write").map_err(|e| LogError::io(&self.log_path, e))?;
        let file = match &mut self.entrydata {
            Some(f) => f,
            None => {
                let f = open_rw(&self.entrydata_path, true)?;
                f.set_len(0)
                    .map_err(|e| LogError::io(&self.entrydata_path, e))?;
                self.entrydata_size = 0;
                self.entrydata_synced = 0;
                self.entrydata.insert(f)
            }
        };
        let position = self.entrydata_size;
        file.write_all_at(payload, position)
            .map_err(|e| LogError::io(&self.entrydata_path, e))?;
        self.entrydata_size += payload.len() as u64;
        let rec = EntryRecord {
            raft_index: self.entries.next_raft_index(),
            term,
            base_offset: self.next_offset,
            position,
            length: payload.len() as u32,
            kind,
            aux: crc32fast::hash(payload),
        };
        self.entries.push(&rec)?;
        failpoint::check("log.meta.before_sync").map_err(|e| LogError::io(&self.log_path, e))?;
        if rebuildable {
            self.sync_entrydata()?;
            self.entries.sync()?;
        }
        Ok(rec)
    }

    // ---------------------------------------------------------------- reads
    // (slices of the map: `maps`; offset and time lookups: `indexes`)

    /// The header of the batch at `position` (which must be a batch start), parsed in
    /// place from the memory map: no allocation, no copy.
    fn header_at(&self, position: u64) -> Result<BatchHeader> {
        let end = (position + BATCH_HEADER_BYTES as u64).min(self.log_size);
        // Use the map only if it exists: checks at open read a header or two per segment
        // and must not map (and fault in) every segment of the log.
        let parsed = match self.map.get() {
            Some(map) if end <= map.len() as u64 => {
                BatchHeader::parse_header(&map[position as usize..end as usize])
            }
            _ => {
                let mut buf = [0u8; BATCH_HEADER_BYTES];
                let buf = &mut buf[..(end - position) as usize];
                self.log_file
                    .read_exact_at(buf, position)
                    .map_err(|e| LogError::io(&self.log_path, e))?;
                BatchHeader::parse_header(buf)
            }
        };
        parsed
            .map_err(|e| LogError::corrupt(&self.log_path, format!("at position {position}: {e}")))
    }

    /// The payload of a non-data entry.
    pub fn meta_payload(&self, rec: &EntryRecord) -> Result<Bytes> {
        let file = self
            .entrydata
            .as_ref()
            .ok_or_else(|| LogError::corrupt(&self.entrydata_path, "entry data file is missing"))?;
        let mut buf = BytesMut::zeroed(rec.length as usize);
        file.read_exact_at(&mut buf, rec.position)
            .map_err(|e| LogError::io(&self.entrydata_path, e))?;
        if crc32fast::hash(&buf) != rec.aux {
            return Err(LogError::corrupt(
                &self.entrydata_path,
                format!(
                    "payload of raft entry {} fails its checksum",
                    rec.raft_index
                ),
            ));
        }
        Ok(buf.freeze())
    }

    /// Makes a closed segment take appends again (after a truncation reached into it).
    pub fn reactivate(&mut self, config: &LogConfig) -> Result<()> {
        if self.active {
            return Ok(());
        }
        self.offset_index
            .ensure_capacity_bytes(config.segment_index_bytes)?;
        self.time_index
            .ensure_capacity_bytes(config.segment_index_bytes)?;
        self.entries.reserve_for_appends()?;
        let want = Self::active_map_len(config, self.log_size);
        if want != self.map_len {
            self.map_len = want;
            self.reset_map();
        }
        self.first_batch_ms = OnceLock::from(self.first_batch_timestamp()?);
        self.active = true;
        Ok(())
    }

    /// Max timestamp of the segment's first batch (Kafka's rolling base), `None` when it
    /// has no batch or the batch no timestamp. A closed segment loaded from disk reads its
    /// first batch header once, on the first call.
    pub fn first_batch_ms(&self) -> Result<Option<i64>> {
        if let Some(ms) = self.first_batch_ms.get() {
            return Ok(*ms);
        }
        let ms = self.first_batch_timestamp()?;
        Ok(*self.first_batch_ms.get_or_init(|| ms))
    }

    fn first_batch_timestamp(&self) -> Result<Option<i64>> {
        if self.log_size == 0 {
            return Ok(None);
        }
        let h = self.header_at(0)?;
        Ok((h.max_timestamp >= 0).then_some(h.max_timestamp))
    }

    // ---------------------------------------------------------------- truncation

    /// Drops Raft entries from `raft_index` on (and their batches and payloads). The
    /// segment becomes the active one; the caller deletes the segments after it.
    pub fn truncate_from_raft_index(&mut self, raft_index: u64, config: &LogConfig) -> Result<()> {
        let keep = raft_index.saturating_sub(self.base_raft_index()) as usize;
        let keep = keep.min(self.entries.len());
        let mut log_end = self.log_size;
        let mut data_end = self.entrydata_size;
        let mut next_offset = self.next_offset;
        let mut found_data = false;
        let mut found_meta = false;
        for slot in keep..self.entries.len() {
            let rec = self.entries.get(slot)?;
            if slot == keep {
                next_offset = rec.base_offset;
            }
            if rec.kind.is_data() && !found_data {
                log_end = rec.position;
                found_data = true;
            } else if !rec.kind.is_data() && !found_meta {
                data_end = rec.position;
                found_meta = true;
            }
        }
        self.reactivate(config)?;
        if keep < self.entries.len() {
            // Cut bytes must never come back as rebuilt records (a reader may keep the
            // `.log`'s stale tail in place, and a replacing entry may carry a lower term).
            self.entries.stop_rebuilds()?;
            failpoint::check("log.truncate.before_cut")
                .map_err(|e| LogError::io(&self.log_path, e))?;
        }
        self.entries.truncate(keep);
        self.entries.sync()?;
        self.log_size = log_end;
        self.next_offset = next_offset;
        if let Some(f) = &self.entrydata {
            f.set_len(data_end)
                .map_err(|e| LogError::io(&self.entrydata_path, e))?;
        }
        self.entrydata_size = data_end;
        self.entrydata_synced = self.entrydata_synced.min(data_end);
        self.cut_file_synced()?;
        if self.map.get().is_none() {
            self.map_len = Self::active_map_len(config, self.log_size);
        }
        self.rebuild_indexes(config)?;
        self.first_batch_ms = OnceLock::from(self.first_batch_timestamp()?);
        Ok(())
    }
}

/// Reads the whole of a small file, for tools and tests.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let mut f = File::open(path).map_err(|e| LogError::io(path, e))?;
    let mut v = Vec::new();
    f.seek(SeekFrom::Start(0))
        .map_err(|e| LogError::io(path, e))?;
    f.read_to_end(&mut v).map_err(|e| LogError::io(path, e))?;
    Ok(v)
}
