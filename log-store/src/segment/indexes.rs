//! A segment's sparse `.index` and `.timeindex`: kept up as batches are appended
//! (Kafka's `index.interval.bytes`), rebuilt from the entry table, checked at open, and
//! used to find a batch by offset or by timestamp.

use bytes::Bytes;

use super::Segment;
use crate::batch::BATCH_HEADER_BYTES;
use crate::config::LogConfig;
use crate::error::Result;
use crate::index::{OffsetEntry, TimeEntry};

impl Segment {
    /// Kafka's index maintenance: an offset and a time entry once `index.interval.bytes`
    /// have accumulated since the last one; the running max timestamp tracked per batch.
    pub(super) fn index_batch(
        &mut self,
        position: u64,
        last_offset: u64,
        max_timestamp: i64,
        size_bytes: usize,
        config: &LogConfig,
    ) {
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = last_offset;
        }
        if self.bytes_since_index_entry > config.index_interval_bytes {
            let relative_offset = (last_offset - self.base_offset) as u32;
            if self.offset_index.push(OffsetEntry {
                relative_offset,
                position: position as u32,
            }) {
                self.push_time_entry();
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += size_bytes as u64;
    }

    /// Appends the running max timestamp to the time index if it moved forward.
    pub(super) fn push_time_entry(&mut self) {
        if self.max_timestamp < 0 {
            return;
        }
        let newer = self
            .time_index
            .last()
            .is_none_or(|last| self.max_timestamp > last.timestamp);
        if newer {
            self.time_index.push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: (self.offset_of_max_timestamp - self.base_offset) as u32,
            });
        }
    }

    /// Position of the batch holding `offset` (or the first batch after it; `log_size`
    /// when there is none): offset index floor, then a walk over batch headers.
    pub fn position_of(&self, offset: u64) -> Result<u64> {
        let mut position = 0;
        if offset >= self.base_offset {
            let relative = (offset - self.base_offset).min(u32::MAX as u64) as u32;
            let floor = self.offset_index.floor_by(relative, |e| e.relative_offset);
            if let Some(i) = floor {
                let e = self.offset_index.get(i);
                if e.relative_offset == relative {
                    // Entries key batches by their last offset: this batch holds `offset`.
                    return Ok(u64::from(e.position));
                }
                position = u64::from(e.position);
            }
            // The next entry's batch ends at or after `offset`; when it also starts at or
            // before it, it is the batch, found with one header read instead of two.
            let ceil = floor.map_or(0, |i| i + 1);
            if ceil < self.offset_index.len() {
                let e = self.offset_index.get(ceil);
                if self.header_at(u64::from(e.position))?.base_offset as u64 <= offset {
                    return Ok(u64::from(e.position));
                }
            }
        }
        while position < self.log_size {
            let header = self.header_at(position)?;
            if header.last_offset() as u64 >= offset {
                break;
            }
            position += header.size_bytes as u64;
        }
        Ok(position)
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (at least one batch
    /// even if larger, as KIP-74 asks) and stopping before any batch at or past
    /// `limit_offset`.
    pub fn read(&self, offset: u64, max_bytes: usize, limit_offset: u64) -> Result<Bytes> {
        self.map()?;
        let start = self.position_of(offset)?;
        let mut end = start;
        while end < self.log_size {
            // No batch is smaller than a header: stop without touching the next one.
            if end > start && end - start + BATCH_HEADER_BYTES as u64 > max_bytes as u64 {
                break;
            }
            let header = self.header_at(end)?;
            if header.base_offset as u64 >= limit_offset {
                break;
            }
            let next = end + header.size_bytes as u64;
            if end > start && next - start > max_bytes as u64 {
                break;
            }
            end = next;
        }
        self.slice(start, end)
    }

    /// Base offset of the first batch at or after `min_offset` whose max timestamp is at
    /// least `timestamp`, using the time index to skip ahead.
    pub fn offset_for_timestamp(&self, timestamp: i64, min_offset: u64) -> Result<Option<u64>> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        self.map()?;
        let mut from = min_offset.max(self.base_offset);
        if let Some(i) = self
            .time_index
            .floor_by(timestamp.saturating_sub(1), |e| e.timestamp)
        {
            from = from.max(self.base_offset + u64::from(self.time_index.get(i).relative_offset));
        }
        let mut position = self.position_of(from)?;
        while position < self.log_size {
            let header = self.header_at(position)?;
            if header.max_timestamp >= timestamp && header.last_offset() as u64 >= min_offset {
                return Ok(Some(header.base_offset as u64));
            }
            position += header.size_bytes as u64;
        }
        Ok(None)
    }

    /// Rebuilds `.index` and `.timeindex` from the entry table and batch headers.
    pub fn rebuild_indexes(&mut self, config: &LogConfig) -> Result<()> {
        self.offset_index.clear();
        self.time_index.clear();
        self.offset_index
            .ensure_capacity_bytes(config.segment_index_bytes)?;
        self.time_index
            .ensure_capacity_bytes(config.segment_index_bytes)?;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.bytes_since_index_entry = 0;
        for slot in 0..self.entries.len() {
            let rec = self.entries.get(slot)?;
            if !rec.kind.is_data() {
                continue;
            }
            let header = self.header_at(rec.position)?;
            self.index_batch(
                rec.position,
                header.last_offset() as u64,
                header.max_timestamp,
                rec.length as usize,
                config,
            );
        }
        if !self.active {
            self.push_time_entry();
            self.offset_index.trim()?;
            self.time_index.trim()?;
        }
        Ok(())
    }

    /// Checks both indexes against the `.log`: sorted, in range, and pointing at batch
    /// starts that hold the indexed offsets.
    pub(super) fn check_indexes(&self) -> std::result::Result<(), String> {
        let span = self.next_offset - self.base_offset;
        let mut prev: Option<OffsetEntry> = None;
        for i in 0..self.offset_index.len() {
            let e = self.offset_index.get(i);
            if u64::from(e.relative_offset) >= span || u64::from(e.position) >= self.log_size {
                return Err(format!("offset index entry {i} is out of range"));
            }
            if let Some(p) = prev {
                if e.relative_offset <= p.relative_offset || e.position <= p.position {
                    return Err(format!("offset index entry {i} is out of order"));
                }
            }
            prev = Some(e);
        }
        if let Some(e) = prev {
            let h = self
                .header_at(u64::from(e.position))
                .map_err(|e| e.to_string())?;
            if h.last_offset() as u64 != self.base_offset + u64::from(e.relative_offset) {
                return Err("last offset index entry does not match its batch".into());
            }
        }
        let mut prev_ts: Option<TimeEntry> = None;
        for i in 0..self.time_index.len() {
            let e = self.time_index.get(i);
            if u64::from(e.relative_offset) >= span {
                return Err(format!("time index entry {i} is out of range"));
            }
            if let Some(p) = prev_ts {
                if e.timestamp <= p.timestamp || e.relative_offset < p.relative_offset {
                    return Err(format!("time index entry {i} is out of order"));
                }
            }
            prev_ts = Some(e);
        }
        if self.has_data() && self.time_index.is_empty() && !self.active {
            // A closed segment always ends with its max-timestamp entry unless no batch
            // carried a timestamp; rebuilding settles which.
            return Err("time index of a closed segment is empty".into());
        }
        Ok(())
    }
}
