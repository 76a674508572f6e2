//! Opening a segment's files against each other: cheap checks for a segment closed
//! cleanly, and after an unclean stop the longest prefix of entries whose batches and
//! payloads check out, with every file cut after it.

use std::os::unix::fs::FileExt;

use tracing::warn;

use super::Segment;
use crate::batch::{BatchHeader, BATCH_HEADER_BYTES};
use crate::config::LogConfig;
use crate::entries::EntryRecord;
use crate::error::{LogError, Result};

/// Outcome of validating a segment's files against each other after an unclean stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryOutcome {
    /// Raft entries that checked out.
    pub valid_entries: usize,
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
        let path = self.entries.path().to_path_buf();
        if expect_whole_table {
            let expected = crate::entries::ENTRY_TABLE_HEADER_BYTES as u64
                + self.entries.len() as u64 * crate::entries::ENTRY_RECORD_BYTES as u64;
            let actual = std::fs::metadata(&path)
                .map_err(|e| LogError::io(&path, e))?
                .len();
            if actual != expected {
                return Err(LogError::corrupt(
                    &path,
                    "entry table size is not whole records",
                ));
            }
        }
        // The last data record must end exactly at the end of the `.log`, and the last
        // non-data record at the end of `.entrydata`.
        let mut last_data: Option<EntryRecord> = None;
        let mut last_meta: Option<EntryRecord> = None;
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
        self.log_size = log_end;
        self.next_offset = self
            .entries
            .last()?
            .map_or(self.base_offset, |r| r.next_offset());
        if !self.entries.is_empty() && self.entries.get(0)?.base_offset != self.base_offset {
            return Err(LogError::corrupt(
                &path,
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

    /// Validates every entry against the `.log` and `.entrydata` after an unclean stop,
    /// keeping the longest valid prefix: each record's checksum, its Raft index, a term
    /// that never goes back, positions that tile the files, offsets that continue, and a
    /// batch (CRC-32C) or payload (crc32) that checks out. Indexes are rebuilt.
    pub fn recover(&mut self, config: &LogConfig, prev_term: u64) -> Result<RecoveryOutcome> {
        let slots = self.entries.len();
        let mut log_pos = 0u64;
        let mut data_pos = 0u64;
        let mut next_offset = self.base_offset;
        let mut term = prev_term;
        let mut valid = 0usize;
        self.log_size = self.file_size;
        self.map_len = self.file_size;
        self.reset_map();
        let mut payload = Vec::new();
        for slot in 0..slots {
            let Some(rec) = self.entries.slot(slot) else {
                break;
            };
            let ok = rec.raft_index == self.base_raft_index() + slot as u64
                && rec.term >= term
                && rec.base_offset == next_offset
                && if rec.kind.is_data() {
                    rec.position == log_pos && self.batch_matches(&rec)
                } else {
                    rec.position == data_pos && self.payload_matches(&rec, &mut payload)
                };
            if !ok {
                break;
            }
            if rec.kind.is_data() {
                log_pos = rec.end_position();
            } else {
                data_pos = rec.end_position();
            }
            next_offset = rec.next_offset();
            term = rec.term;
            valid += 1;
        }
        let nonzero_tail = (valid..slots).any(|s| self.entries.slot(s).is_some());
        self.entries.clear_slots_after(valid);
        self.entries.truncate(valid);
        let truncated_log_bytes = self.file_size - log_pos;
        let truncated = truncated_log_bytes > 0 || nonzero_tail || self.entrydata_size > data_pos;
        self.log_size = log_pos;
        self.next_offset = next_offset;
        self.reset_map();
        if self.file_size != log_pos {
            self.log_file
                .set_len(log_pos)
                .map_err(|e| LogError::io(&self.log_path, e))?;
            self.file_size = log_pos;
        }
        if self.entrydata_size > data_pos {
            if let Some(f) = &self.entrydata {
                f.set_len(data_pos)
                    .map_err(|e| LogError::io(&self.entrydata_path, e))?;
            }
            self.entrydata_size = data_pos;
            self.entrydata_synced = self.entrydata_synced.min(data_pos);
        }
        self.map_len = self.log_size;
        self.rebuild_indexes(config)?;
        Ok(RecoveryOutcome {
            valid_entries: valid,
            truncated_log_bytes,
            truncated,
        })
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
