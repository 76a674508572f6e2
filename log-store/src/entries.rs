//! The dense Raft entry table of one segment (`NNNNNNNNNNNNNNNNNNNN.entries`).
//!
//! One fixed-size record per Raft entry, in Raft-index order, so the Raft storage can find
//! an entry's term, kind and bytes by arithmetic. Data entries point into the segment's
//! `.log` (a Kafka batch, which takes Kafka offsets); non-data entries (leader no-ops,
//! configuration changes) keep their small payload in the segment's `.entrydata` file and
//! take no Kafka offset, so clients never see them.
//!
//! The table is the authority on which bytes of the `.log` belong to the log: recovery
//! walks it, checks every record against the `.log` and `.entrydata`, and cuts all three
//! files at the first record that does not check out. A batch in the `.log` without a
//! record is an unacknowledged tail and is dropped.
//!
//! Layout, little-endian (our own format):
//!
//! ```text
//! header (32 bytes): magic "STRE" | version u16 | flags u16 | base_offset u64
//!                    | base_raft_index u64 | reserved u32 | crc32 u32 (of bytes 0..28)
//! record (48 bytes): raft_index u64 | term u64 | base_offset u64 | position u64
//!                    | length u32 | kind u8 | reserved [u8; 3] | aux u32
//!                    | crc32 u32 (crc32fast of bytes 0..44)
//! ```
//!
//! `base_offset` of a data record is its batch's base offset; of a non-data record, the
//! next Kafka offset at the time it was appended. `aux` is the batch's offset count for data
//! records and the crc32 of the payload for non-data records.
//!
//! Flag bit 0, **rebuildable**, is set in every table created since 2026-12-06 and
//! cleared for good by a truncation. In a rebuildable table the data records after the
//! last non-data record are not synced by a flush: recovery rebuilds them from the
//! `.log` batches (which carry their base offset, offset count and term), so a data-only
//! flush costs one `fdatasync` of the `.log`. Every record before a non-data record is
//! synced before the non-data record's payload is written, and that record with its
//! payload before the append returns (see `Segment::append_meta`), so a rebuild never
//! has to guess where a non-data entry stood. Tables without the flag (older ones, or
//! truncated ones) are synced by every flush and never rebuilt.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};

use crate::error::{LogError, Result};
use crate::handle::SyncHandle;

/// Size of the table's header.
pub const ENTRY_TABLE_HEADER_BYTES: usize = 32;
/// Size of one record.
pub const ENTRY_RECORD_BYTES: usize = 48;
const MAGIC: &[u8; 4] = b"STRE";
const VERSION: u16 = 1;
/// Header flag: data records after the last non-data record may be rebuilt from the `.log`.
const FLAG_REBUILDABLE: u16 = 1;
/// Records the file grows by when full (doubling up to this step).
const MAX_GROWTH_RECORDS: usize = 1 << 16;
const INITIAL_CAPACITY_RECORDS: usize = 1024;

/// What a Raft entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A Kafka record batch in the `.log`; takes Kafka offsets.
    Data,
    /// A Raft no-op (an empty normal entry, as a new leader appends).
    Noop,
    /// A raft-rs `ConfChange`.
    ConfChange,
    /// A raft-rs `ConfChangeV2`.
    ConfChangeV2,
    /// A replicated DeleteRecords: moves the log start to the offset in its payload
    /// (8 bytes, big-endian) on every replica that applies it.
    LogStart,
    /// A tree head of an audit log, as its leader logged it (`merkle::LoggedHead`): every
    /// replica that appends it checks it against its own tree.
    AuditHead,
    /// A seal of an audit log's first leaves (`log::AuditSeal`): once applied, the
    /// segments before its offset may be removed.
    AuditSeal,
}

impl EntryKind {
    fn code(self) -> u8 {
        match self {
            EntryKind::Data => 0,
            EntryKind::Noop => 1,
            EntryKind::ConfChange => 2,
            EntryKind::ConfChangeV2 => 3,
            EntryKind::LogStart => 4,
            EntryKind::AuditHead => 5,
            EntryKind::AuditSeal => 6,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => EntryKind::Data,
            1 => EntryKind::Noop,
            2 => EntryKind::ConfChange,
            3 => EntryKind::ConfChangeV2,
            4 => EntryKind::LogStart,
            5 => EntryKind::AuditHead,
            6 => EntryKind::AuditSeal,
            _ => return None,
        })
    }

    /// True for entries whose payload is a Kafka batch in the `.log`.
    pub fn is_data(self) -> bool {
        self == EntryKind::Data
    }
}

/// One Raft entry's place in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRecord {
    pub raft_index: u64,
    pub term: u64,
    /// Data: the batch's base offset. Non-data: the next Kafka offset when appended.
    pub base_offset: u64,
    /// Byte position in `.log` (data) or `.entrydata` (non-data).
    pub position: u64,
    pub length: u32,
    pub kind: EntryKind,
    /// Data: offsets the batch occupies. Non-data: crc32 of the payload.
    pub aux: u32,
}

impl EntryRecord {
    /// The next Kafka offset after this entry.
    pub fn next_offset(&self) -> u64 {
        if self.kind.is_data() {
            self.base_offset + u64::from(self.aux)
        } else {
            self.base_offset
        }
    }

    /// End position in its file.
    pub fn end_position(&self) -> u64 {
        self.position + u64::from(self.length)
    }

    fn encode(&self, buf: &mut [u8]) {
        buf[0..8].copy_from_slice(&self.raft_index.to_le_bytes());
        buf[8..16].copy_from_slice(&self.term.to_le_bytes());
        buf[16..24].copy_from_slice(&self.base_offset.to_le_bytes());
        buf[24..32].copy_from_slice(&self.position.to_le_bytes());
        buf[32..36].copy_from_slice(&self.length.to_le_bytes());
        buf[36] = self.kind.code();
        buf[37..40].copy_from_slice(&[0, 0, 0]);
        buf[40..44].copy_from_slice(&self.aux.to_le_bytes());
        let crc = crc32fast::hash(&buf[0..44]);
        buf[44..48].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes a record from `ENTRY_RECORD_BYTES` bytes, or `None` when its checksum or
    /// kind is wrong.
    pub fn decode(buf: &[u8]) -> Option<Self> {
        if buf.len() < ENTRY_RECORD_BYTES {
            return None;
        }
        let u64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&buf[at..at + 8]);
            u64::from_le_bytes(a)
        };
        let u32_at =
            |at: usize| u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        if crc32fast::hash(&buf[0..44]) != u32_at(44) {
            return None;
        }
        Some(EntryRecord {
            raft_index: u64_at(0),
            term: u64_at(8),
            base_offset: u64_at(16),
            position: u64_at(24),
            length: u32_at(32),
            kind: EntryKind::from_code(buf[36])?,
            aux: u32_at(40),
        })
    }
}

/// What a table's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableHeader {
    pub base_offset: u64,
    pub base_raft_index: u64,
    /// Flag bit 0: see the module documentation.
    pub rebuildable: bool,
}

impl TableHeader {
    fn encode(&self) -> [u8; ENTRY_TABLE_HEADER_BYTES] {
        let mut header = [0u8; ENTRY_TABLE_HEADER_BYTES];
        header[0..4].copy_from_slice(MAGIC);
        header[4..6].copy_from_slice(&VERSION.to_le_bytes());
        let flags = if self.rebuildable {
            FLAG_REBUILDABLE
        } else {
            0
        };
        header[6..8].copy_from_slice(&flags.to_le_bytes());
        header[8..16].copy_from_slice(&self.base_offset.to_le_bytes());
        header[16..24].copy_from_slice(&self.base_raft_index.to_le_bytes());
        let crc = crc32fast::hash(&header[0..28]);
        header[28..32].copy_from_slice(&crc.to_le_bytes());
        header
    }
}

/// Parses and checks a table header.
pub fn parse_header(header: &[u8]) -> std::result::Result<TableHeader, String> {
    if header.len() < ENTRY_TABLE_HEADER_BYTES {
        return Err("entry table shorter than its header".into());
    }
    let stored_crc = u32::from_le_bytes([header[28], header[29], header[30], header[31]]);
    if &header[0..4] != MAGIC || crc32fast::hash(&header[0..28]) != stored_crc {
        return Err("entry table header checksum mismatch".into());
    }
    let version = u16::from_le_bytes([header[4], header[5]]);
    if version != VERSION {
        return Err(format!("entry table version {version} is not {VERSION}"));
    }
    let flags = u16::from_le_bytes([header[6], header[7]]);
    if flags & !FLAG_REBUILDABLE != 0 {
        return Err(format!("entry table flags {flags:#06x} are not known"));
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&header[8..16]);
    let base_offset = u64::from_le_bytes(a);
    a.copy_from_slice(&header[16..24]);
    Ok(TableHeader {
        base_offset,
        base_raft_index: u64::from_le_bytes(a),
        rebuildable: flags & FLAG_REBUILDABLE != 0,
    })
}

/// The memory-mapped entry table of one segment.
#[derive(Debug)]
pub struct EntryTable {
    path: PathBuf,
    file: File,
    map: MmapMut,
    base_offset: u64,
    base_raft_index: u64,
    /// Records considered part of the log.
    len: usize,
    /// Records the file can hold.
    capacity: usize,
    /// Records `[0, synced)` are known durable.
    synced: usize,
    /// The header's rebuildable flag.
    rebuildable: bool,
    /// The header is known durable (a table made for a roll leaves its sync to the
    /// log's next flush).
    header_durable: bool,
}

impl EntryTable {
    /// Creates a new, empty, rebuildable table with its header, synced when `sync_header`
    /// (a flush that leaves the records to a rebuild relies on the header being there:
    /// otherwise the next [`EntryTable::sync`], [`EntryTable::sync_header`] or sync of
    /// [`EntryTable::sync_handle`] makes it durable). The caller syncs the directory.
    pub fn create(
        path: &Path,
        base_offset: u64,
        base_raft_index: u64,
        sync_header: bool,
    ) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| LogError::io(path, e))?;
        let header = TableHeader {
            base_offset,
            base_raft_index,
            rebuildable: true,
        };
        file.write_all(&header.encode())
            .and_then(|()| {
                if sync_header {
                    file.sync_data()
                } else {
                    Ok(())
                }
            })
            .map_err(|e| LogError::io(path, e))?;
        let mut table = Self::map_file(path, file, header, 0)?;
        table.header_durable = sync_header;
        table.ensure_capacity(INITIAL_CAPACITY_RECORDS)?;
        Ok(table)
    }

    /// Opens an existing table and checks its header. `len()` starts at the number of whole
    /// record slots in the file; the caller validates records (all of them after an
    /// unclean stop, the last one after a clean one) and `truncate`s.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| LogError::io(path, e))?;
        let mut header = [0u8; ENTRY_TABLE_HEADER_BYTES];
        std::io::Read::read_exact(&mut file, &mut header)
            .map_err(|_| LogError::corrupt(path, "entry table shorter than its header"))?;
        let header = parse_header(&header).map_err(|reason| LogError::corrupt(path, reason))?;
        let file_len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
        let slots = (file_len.saturating_sub(ENTRY_TABLE_HEADER_BYTES as u64)
            / ENTRY_RECORD_BYTES as u64) as usize;
        let mut table = Self::map_file(path, file, header, slots)?;
        table.len = slots;
        table.synced = slots;
        Ok(table)
    }

    fn map_file(path: &Path, file: File, header: TableHeader, capacity: usize) -> Result<Self> {
        let bytes = ENTRY_TABLE_HEADER_BYTES + capacity * ENTRY_RECORD_BYTES;
        // SAFETY: the table file is private to its segment; it is only shrunk in `trim`,
        // which replaces this mapping first.
        let map = unsafe { MmapOptions::new().len(bytes).map_mut(&file) }
            .map_err(|e| LogError::io(path, e))?;
        Ok(EntryTable {
            path: path.to_path_buf(),
            file,
            map,
            base_offset: header.base_offset,
            base_raft_index: header.base_raft_index,
            len: 0,
            capacity,
            synced: 0,
            rebuildable: header.rebuildable,
            header_durable: true,
        })
    }

    fn ensure_capacity(&mut self, records: usize) -> Result<()> {
        if records <= self.capacity {
            return Ok(());
        }
        let bytes = (ENTRY_TABLE_HEADER_BYTES + records * ENTRY_RECORD_BYTES) as u64;
        // Allocated for real: a write through the map into a hole of a full disk would
        // be a SIGBUS (prealloc.rs).
        crate::prealloc::allocate(&self.file, &self.path, bytes)?;
        // SAFETY: as in `map_file`; the old mapping is dropped on assignment.
        self.map = unsafe { MmapOptions::new().len(bytes as usize).map_mut(&self.file) }
            .map_err(|e| LogError::io(&self.path, e))?;
        self.capacity = records;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }
    pub fn base_raft_index(&self) -> u64 {
        self.base_raft_index
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether data records past the last non-data record may be left to a rebuild
    /// (the header's flag; see the module documentation).
    pub fn rebuildable(&self) -> bool {
        self.rebuildable
    }

    /// Whether records were pushed since the last sync.
    pub fn has_unsynced(&self) -> bool {
        self.synced < self.len
    }

    /// Makes the table authoritative for good: every record is synced, then the
    /// rebuildable flag is cleared and the header synced. From then on every flush syncs
    /// the table. A truncation calls it before cutting, so bytes of the `.log` it cuts
    /// can never come back as rebuilt records.
    pub fn stop_rebuilds(&mut self) -> Result<()> {
        if !self.rebuildable {
            return Ok(());
        }
        self.sync()?;
        crate::failpoint::check("log.truncate.before_flag")
            .map_err(|e| LogError::io(&self.path, e))?;
        let header = TableHeader {
            base_offset: self.base_offset,
            base_raft_index: self.base_raft_index,
            rebuildable: false,
        };
        self.map[..ENTRY_TABLE_HEADER_BYTES].copy_from_slice(&header.encode());
        self.map
            .flush_range(0, ENTRY_TABLE_HEADER_BYTES)
            .map_err(|e| LogError::io(&self.path, e))?;
        self.rebuildable = false;
        Ok(())
    }

    /// The Raft index the next appended record must have.
    pub fn next_raft_index(&self) -> u64 {
        self.base_raft_index + self.len as u64
    }

    /// The record in slot `i`, or `None` when its checksum or kind is bad. `i` must be
    /// below the number of slots.
    pub fn slot(&self, i: usize) -> Option<EntryRecord> {
        if i >= self.capacity {
            return None;
        }
        let at = ENTRY_TABLE_HEADER_BYTES + i * ENTRY_RECORD_BYTES;
        EntryRecord::decode(&self.map[at..at + ENTRY_RECORD_BYTES])
    }

    /// The record `i` of the log, checked.
    pub fn get(&self, i: usize) -> Result<EntryRecord> {
        if i >= self.len {
            return Err(LogError::corrupt(
                &self.path,
                format!("record {i} is past the end"),
            ));
        }
        let rec = self.slot(i).ok_or_else(|| {
            LogError::corrupt(&self.path, format!("record {i} checksum mismatch"))
        })?;
        if rec.raft_index != self.base_raft_index + i as u64 {
            return Err(LogError::corrupt(
                &self.path,
                format!(
                    "record {i} holds raft index {} instead of {}",
                    rec.raft_index,
                    self.base_raft_index + i as u64
                ),
            ));
        }
        Ok(rec)
    }

    pub fn last(&self) -> Result<Option<EntryRecord>> {
        if self.len == 0 {
            return Ok(None);
        }
        self.get(self.len - 1).map(Some)
    }

    /// Makes room for one more record (growing the file when full). Appends call it
    /// before writing their bytes, so a full disk fails the append before anything of it
    /// is written, and [`EntryTable::push`] cannot fail.
    pub fn make_room(&mut self) -> Result<()> {
        if self.len == self.capacity {
            let grow = self
                .capacity
                .clamp(INITIAL_CAPACITY_RECORDS, MAX_GROWTH_RECORDS);
            self.ensure_capacity(self.capacity + grow)?;
        }
        Ok(())
    }

    /// Appends a record; its raft index must be `next_raft_index()`.
    pub fn push(&mut self, rec: &EntryRecord) -> Result<()> {
        debug_assert_eq!(rec.raft_index, self.next_raft_index());
        self.make_room()?;
        let at = ENTRY_TABLE_HEADER_BYTES + self.len * ENTRY_RECORD_BYTES;
        rec.encode(&mut self.map[at..at + ENTRY_RECORD_BYTES]);
        self.len += 1;
        Ok(())
    }

    /// Gives every record of term `from` the term `to` (with its checksum), last record
    /// first, then syncs the table. Returns how many records changed.
    pub fn restamp_terms(&mut self, from: u64, to: u64) -> Result<usize> {
        let mut changed = 0;
        for i in (0..self.len).rev() {
            let mut rec = self.get(i)?;
            if rec.term != from {
                continue;
            }
            rec.term = to;
            let at = ENTRY_TABLE_HEADER_BYTES + i * ENTRY_RECORD_BYTES;
            rec.encode(&mut self.map[at..at + ENTRY_RECORD_BYTES]);
            changed += 1;
        }
        self.map.flush().map_err(|e| LogError::io(&self.path, e))?;
        Ok(changed)
    }

    /// Keeps the first `len` records. The dropped slots are zeroed so that a later crash
    /// can't resurrect them.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            self.len = len.min(self.len);
            return;
        }
        let from = ENTRY_TABLE_HEADER_BYTES + len * ENTRY_RECORD_BYTES;
        let to = ENTRY_TABLE_HEADER_BYTES + self.len * ENTRY_RECORD_BYTES;
        self.map[from..to].fill(0);
        self.len = len;
        self.synced = self.synced.min(len);
    }

    /// Forgets every slot past `len` as well (zeroing the slots beyond the valid records
    /// found by recovery).
    pub fn clear_slots_after(&mut self, len: usize) {
        let from = ENTRY_TABLE_HEADER_BYTES + len * ENTRY_RECORD_BYTES;
        let to = ENTRY_TABLE_HEADER_BYTES + self.capacity * ENTRY_RECORD_BYTES;
        if from < to {
            self.map[from..to].fill(0);
        }
        self.len = len.min(self.len);
        self.synced = self.synced.min(self.len);
    }

    /// Makes every record written so far durable.
    pub fn sync(&mut self) -> Result<()> {
        self.sync_header()?;
        // The header and any zeroed slots are included: flush from the first unsynced
        // record to the end of the written ones, plus one slot for a zeroed tail.
        let from = ENTRY_TABLE_HEADER_BYTES + self.synced.min(self.len) * ENTRY_RECORD_BYTES;
        let to =
            (ENTRY_TABLE_HEADER_BYTES + (self.len + 1) * ENTRY_RECORD_BYTES).min(self.map.len());
        if to > from {
            self.map
                .flush_range(from, to - from)
                .map_err(|e| LogError::io(&self.path, e))?;
        }
        self.synced = self.len;
        Ok(())
    }

    /// A duplicate handle on the table's file, for a sync done without `&mut self`
    /// (`Log::prepare_flush`). On Linux `fdatasync` of the file writes back the pages
    /// dirtied through the shared map, as `msync` would.
    pub fn sync_handle(&self) -> Result<SyncHandle> {
        crate::handle::duplicate(&self.path, &self.file)
    }

    /// Records that the first `len` records are durable (a sync through
    /// [`EntryTable::sync_handle`] finished).
    pub fn mark_synced(&mut self, len: usize) {
        self.synced = self.synced.max(len.min(self.len));
    }

    /// Whether the header is known durable.
    pub fn header_durable(&self) -> bool {
        self.header_durable
    }

    /// Makes the header durable if it is not known to be (`fdatasync` of the file).
    pub fn sync_header(&mut self) -> Result<()> {
        if !self.header_durable {
            self.file
                .sync_data()
                .map_err(|e| LogError::io(&self.path, e))?;
            self.header_durable = true;
        }
        Ok(())
    }

    /// Records that a sync through [`EntryTable::sync_handle`] made the header durable.
    pub fn mark_header_durable(&mut self) {
        self.header_durable = true;
    }

    /// Shrinks the file to its records and syncs it (segment close).
    pub fn trim(&mut self) -> Result<()> {
        self.trim_unsynced()?;
        self.file
            .sync_all()
            .map_err(|e| LogError::io(&self.path, e))?;
        self.synced = self.len;
        Ok(())
    }

    /// Shrinks the file as [`EntryTable::trim`] does, leaving the sync to whoever syncs
    /// the handle from [`EntryTable::sync_handle`] (a roll's next flush); records
    /// written through the map stay in the page cache when it is replaced.
    pub fn trim_unsynced(&mut self) -> Result<()> {
        let bytes = (ENTRY_TABLE_HEADER_BYTES + self.len * ENTRY_RECORD_BYTES) as u64;
        // Replace the mapping with one that fits the shrunk file before shrinking it.
        // SAFETY: as in `map_file`.
        self.map = unsafe {
            MmapOptions::new()
                .len(ENTRY_TABLE_HEADER_BYTES)
                .map_mut(&self.file)
        }
        .map_err(|e| LogError::io(&self.path, e))?;
        self.file
            .set_len(bytes)
            .map_err(|e| LogError::io(&self.path, e))?;
        // SAFETY: as in `map_file`.
        self.map = unsafe { MmapOptions::new().len(bytes as usize).map_mut(&self.file) }
            .map_err(|e| LogError::io(&self.path, e))?;
        self.capacity = self.len;
        Ok(())
    }

    /// Grows the file again so the segment can take appends (it became active).
    pub fn reserve_for_appends(&mut self) -> Result<()> {
        self.ensure_capacity(self.len + INITIAL_CAPACITY_RECORDS)
    }

    /// Index of the first record whose `next_offset() > offset`, i.e. the entry that
    /// holds `offset` or the first one after it, by binary search over the records'
    /// base offsets (non-decreasing in a valid table).
    pub fn first_ending_after(&self, offset: u64) -> Result<usize> {
        let (mut lo, mut hi) = (0usize, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid)?.next_offset() <= offset {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}
