//! Opening a segment's files against each other: cheap checks for a segment closed
//! cleanly, and after an unclean stop the longest prefix of entries whose batches and
//! payloads check out, with every file cut after it. In the last segment of a log whose
//! table is rebuildable (see `entries.rs`), the data records a flush did not sync are
//! rebuilt from the `.log` batches after that prefix.

use std::os::unix::fs::FileExt;

use tracing::warn;

use super::Segment;
use crate::batch::{BatchHeader, BATCH_HEADER_BYTES};
use crate::config::LogConfig;
use crate::entries::{EntryKind, EntryRecord};
use crate::error::{LogError, Result};

/// Outcome of validating a segment's files against each other after an unclean stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryOutcome {
    /// Raft entries that checked out.
    pub valid_entries: usize,
    /// Data records rebuilt from the `.log` after them.
    pub rebuilt_entries: usize,
    /// Bytes of `.log` dropped past the last valid batch.
    pub truncated_log_bytes: u64,
    /// True when anything at all was cut (the following segments must go too).
    pub truncated: bool,
}

impl Segment {
    /// Loads a segment that was closed cleanly (or lies before the recovery point): cheap
    /// consistency checks of table and indexes against the `.log`. A table that fails
    /// them is an error (the caller falls back to `recover`); indexes that fail them are
    /// rebuilt.
    pub fn load_clean(&mut self, config: &LogConfig, expect_whole_table: bool) -> Result<()> {
        if expect_whole_table {
            self.check_table_size()?;
        }
        let log_end = self.check_ends()?;
        self.log_size = log_end;
        self.next_offset = self
            .entries
            .last()?
            .map_or(self.base_offset, |r| r.next_offset());
        if !self.entries.is_empty() && self.entries.get(0)?.base_offset != self.base_offset {
            return Err(LogError::corrupt(
                self.entries.path(),
                "first entry does not start at the base offset",
            ));
        }
        self.map_len = self.log_size;
        if let Err(reason) = self.check_indexes() {
            warn!(path = %self.log_path.display(), %reason, "rebuilding segment indexes");
            self.rebuild_indexes(config)?;
        } else {
            let last = self.time_index.last();
            self.max_timestamp = last.map_or(-1, |e| e.timestamp);
            self.offset_of_max_timestamp =
                self.base_offset + last.map_or(0, |e| u64::from(e.relative_offset));
        }
        Ok(())
    }

    /// The entry table holds its header and whole records only.
    fn check_table_size(&self) -> Result<()> {
        let path = self.entries.path();
        let expected = crate::entries::ENTRY_TABLE_HEADER_BYTES as u64
            + self.entries.len() as u64 * crate::entries::ENTRY_RECORD_BYTES as u64;
        let actual = std::fs::metadata(path)
            .map_err(|e| LogError::io(path, e))?
            .len();
        if actual != expected {
            return Err(LogError::corrupt(
                path,
                "entry table size is not whole records",
            ));
        }
        Ok(())
    }

    /// The last data record and the last non-data record of the table.
    fn last_records(&self) -> Result<(Option<EntryRecord>, Option<EntryRecord>)> {
        let (mut last_data, mut last_meta) = (None, None);
        for slot in (0..self.entries.len()).rev() {
            let rec = self.entries.get(slot)?;
            if rec.kind.is_data() && last_data.is_none() {
                last_data = Some(rec);
            } else if !rec.kind.is_data() && last_meta.is_none() {
                last_meta = Some(rec);
            }
            if last_data.is_some() && (last_meta.is_some() || self.entrydata.is_none()) {
                break;
            }
        }
        Ok((last_data, last_meta))
    }

    /// The last data record must end exactly at the end of the `.log` (and agree with
    /// the batch there), the last non-data record at the end of `.entrydata`. Returns
    /// where the data ends.
    fn check_ends(&self) -> Result<u64> {
        let (last_data, last_meta) = self.last_records()?;
        let log_end = last_data.map_or(0, |r| r.end_position());
        if log_end != self.file_size {
            return Err(LogError::corrupt(
                &self.log_path,
                format!(
                    "log is {} bytes but its entries end at {log_end}",
                    self.file_size
                ),
            ));
        }
        let meta_end = last_meta.map_or(0, |r| r.end_position());
        if meta_end != self.entrydata_size {
            return Err(LogError::corrupt(
                &self.entrydata_path,
                format!(
                    "entry data is {} bytes but its entries end at {meta_end}",
                    self.entrydata_size
                ),
            ));
        }
        if let Some(rec) = last_data {
            let header = self.header_at(rec.position)?;
            if header.base_offset as u64 != rec.base_offset
                || header.offset_count() != u64::from(rec.aux)
                || header.size_bytes != rec.length as usize
            {
                return Err(LogError::corrupt(
                    &self.log_path,
                    "last batch disagrees with its entry",
                ));
            }
        }
        Ok(log_end)
    }

    /// Validates every entry against the `.log` and `.entrydata` after an unclean stop,
    /// keeping the longest valid prefix: each record's checksum, its Raft index, a term
    /// that never goes back, positions that tile the files, offsets that continue, and a
    /// batch (CRC-32C) or payload (crc32) that checks out. With `rebuild` (the log's last
    /// segment) and a rebuildable table, the data records after that prefix are rebuilt
    /// from the `.log` (see [`Segment::rebuild_data_records`]). Every file is cut after
    /// what stays, the cuts and rebuilt records are synced, and indexes are rebuilt.
    pub fn recover(
        &mut self,
        config: &LogConfig,
        prev_term: u64,
        rebuild: bool,
    ) -> Result<RecoveryOutcome> {
        let slots = self.entries.len();
        let mut end = Tiling {
            log_pos: 0,
            data_pos: 0,
            next_offset: self.base_offset,
            term: prev_term,
        };
        let mut valid = 0usize;
        self.log_size = self.file_size;
        self.map_len = self.file_size;
        self.reset_map();
        let mut payload = Vec::new();
        while valid < slots {
            let Some(rec) = self.entries.slot(valid) else {
                break;
            };
            let ok = rec.raft_index == self.base_raft_index() + valid as u64
                && rec.term >= end.term
                && rec.base_offset == end.next_offset
                && if rec.kind.is_data() {
                    rec.position == end.log_pos && self.batch_matches(&rec)
                } else {
                    rec.position == end.data_pos && self.payload_matches(&rec, &mut payload)
                };
            if !ok {
                break;
            }
            end.take(&rec);
            valid += 1;
        }
        let nonzero_tail = (valid..slots).any(|s| self.entries.slot(s).is_some());
        // A non-data entry whose record or payload is damaged may have stood anywhere
        // among the batches after the prefix: none of them can be numbered.
        let stray_meta = self.entrydata_size > end.data_pos
            || self.entries.slot(valid).is_some_and(|r| !r.kind.is_data());
        let rebuild = rebuild && self.entries.rebuildable() && !stray_meta;
        self.entries.clear_slots_after(valid);
        self.entries.truncate(valid);
        let rebuilt_entries = if rebuild {
            self.rebuild_data_records(&mut end)?
        } else {
            0
        };
        let truncated_log_bytes = self.file_size - end.log_pos;
        let truncated =
            truncated_log_bytes > 0 || nonzero_tail || self.entrydata_size > end.data_pos;
        self.cut_after_recovery(&end)?;
        if truncated || rebuilt_entries > 0 {
            self.entries.sync()?;
        }
        self.map_len = self.log_size;
        self.rebuild_indexes(config)?;
        Ok(RecoveryOutcome {
            valid_entries: valid,
            rebuilt_entries,
            truncated_log_bytes,
            truncated,
        })
    }

    /// Cuts the `.log` and `.entrydata` after what recovery kept. The `.entrydata` cut is
    /// synced at once (stale payload bytes coming back would stop a later rebuild); the
    /// `.log` cut by the flush that ends the log's opening.
    fn cut_after_recovery(&mut self, end: &Tiling) -> Result<()> {
        self.log_size = end.log_pos;
        self.next_offset = end.next_offset;
        self.reset_map();
        if self.file_size != end.log_pos {
            self.log_file
                .set_len(end.log_pos)
                .map_err(|e| LogError::io(&self.log_path, e))?;
            self.file_size = end.log_pos;
            self.log_dirty = true;
        }
        if self.entrydata_size > end.data_pos {
            if let Some(f) = &self.entrydata {
                f.set_len(end.data_pos)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| LogError::io(&self.entrydata_path, e))?;
            }
            self.entrydata_size = end.data_pos;
            self.entrydata_synced = self.entrydata_synced.min(end.data_pos);
        }
        Ok(())
    }

    /// Rebuilds the data records a rebuildable table was not made to sync. Each batch of
    /// the `.log` after the kept entries becomes the next Raft entry while it checks out
    /// (CRC-32C), starts at the next offset and carries in its leader epoch a term no
    /// lower than the last: the term it was appended with. Only data entries can follow
    /// the last non-data record (whose every predecessor was synced before it), so the
    /// Raft indexes follow by counting. Returns how many records were rebuilt.
    fn rebuild_data_records(&mut self, end: &mut Tiling) -> Result<usize> {
        let mut rebuilt = 0;
        while let Some(header) = self.batch_to_rebuild(end) {
            let rec = EntryRecord {
                raft_index: self.entries.next_raft_index(),
                // `batch_to_rebuild` took only non-negative epochs.
                term: header.partition_leader_epoch as u64,
                base_offset: end.next_offset,
                position: end.log_pos,
                length: header.size_bytes as u32,
                kind: EntryKind::Data,
                aux: header.offset_count() as u32,
            };
            self.entries.push(&rec)?;
            end.take(&rec);
            rebuilt += 1;
        }
        if rebuilt > 0 {
            warn!(path = %self.log_path.display(), rebuilt, "entry records rebuilt from the log");
        }
        Ok(rebuilt)
    }

    /// The header of the batch at `end.log_pos` if it may be rebuilt as the next entry.
    fn batch_to_rebuild(&self, end: &Tiling) -> Option<BatchHeader> {
        let at = end.log_pos;
        if at + BATCH_HEADER_BYTES as u64 > self.file_size {
            return None;
        }
        let head = self.slice(at, at + BATCH_HEADER_BYTES as u64).ok()?;
        let size = BatchHeader::parse_header(&head).ok()?.size_bytes as u64;
        if at + size > self.file_size || size > u64::from(u32::MAX) {
            return None;
        }
        let header = BatchHeader::parse_validated(&self.slice(at, at + size).ok()?).ok()?;
        let epoch = u64::try_from(header.partition_leader_epoch).ok()?;
        // A saturated epoch does not say the term.
        let term_known = header.partition_leader_epoch < i32::MAX;
        (header.base_offset as u64 == end.next_offset
            && header.offset_count() > 0
            && epoch >= end.term
            && term_known)
            .then_some(header)
    }

    fn batch_matches(&self, rec: &EntryRecord) -> bool {
        let end = rec.end_position();
        if end > self.file_size || (rec.length as usize) < BATCH_HEADER_BYTES {
            return false;
        }
        let Ok(bytes) = self.slice(rec.position, end) else {
            return false;
        };
        match BatchHeader::parse_validated(&bytes) {
            Ok(h) => {
                // baseOffset and partitionLeaderEpoch are outside the CRC: check them
                // against the entry, which wrote them.
                h.size_bytes == rec.length as usize
                    && h.base_offset as u64 == rec.base_offset
                    && h.offset_count() == u64::from(rec.aux)
                    && h.partition_leader_epoch == i32::try_from(rec.term).unwrap_or(i32::MAX)
            }
            Err(_) => false,
        }
    }

    fn payload_matches(&self, rec: &EntryRecord, buf: &mut Vec<u8>) -> bool {
        let Some(file) = &self.entrydata else {
            return false;
        };
        if rec.end_position() > self.entrydata_size {
            return false;
        }
        buf.resize(rec.length as usize, 0);
        file.read_exact_at(buf, rec.position).is_ok() && crc32fast::hash(buf) == rec.aux
    }

    /// Prepares a loaded segment to be the active one.
    pub fn activate(&mut self, config: &LogConfig) -> Result<()> {
        self.active = false;
        self.reactivate(config)
    }
}

/// Where the entries kept so far end: in the `.log`, in `.entrydata`, in offsets, in terms.
struct Tiling {
    log_pos: u64,
    data_pos: u64,
    next_offset: u64,
    term: u64,
}

impl Tiling {
    fn take(&mut self, rec: &EntryRecord) {
        if rec.kind.is_data() {
            self.log_pos = rec.end_position();
        } else {
            self.data_pos = rec.end_position();
        }
        self.next_offset = rec.next_offset();
        self.term = rec.term;
    }
}
