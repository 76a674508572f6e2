//! Per-log settings. Names follow Kafka's topic configs so users carry their knowledge over.

use crate::error::{LogError, Result};

/// Kafka's default `segment.bytes` (1 GiB).
pub const DEFAULT_SEGMENT_BYTES: u64 = 1 << 30;
/// Kafka's default `segment.ms` (7 days).
pub const DEFAULT_SEGMENT_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's default `index.interval.bytes`.
pub const DEFAULT_INDEX_INTERVAL_BYTES: u64 = 4096;
/// Kafka's default `segment.index.bytes` (10 MiB): the preallocated size of each index.
pub const DEFAULT_SEGMENT_INDEX_BYTES: u64 = 10 * 1024 * 1024;
/// Kafka's default `retention.ms` (7 days).
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's default `max.message.bytes` (1 MiB plus record overhead).
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 1_048_588;
/// Kafka's default `delete.retention.ms` (1 day): how long a tombstone outlives the first
/// cleaning that saw it.
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// Kafka's default `min.cleanable.dirty.ratio`.
pub const DEFAULT_MIN_CLEANABLE_DIRTY_RATIO: f64 = 0.5;
/// Kafka's default `min.compaction.lag.ms`.
pub const DEFAULT_MIN_COMPACTION_LAG_MS: i64 = 0;

/// Settings for one partition log. `None` means "unlimited", Kafka's `-1`.
///
/// Kafka's `cleanup.policy` is the pair of flags `delete` and `compact`: `delete` (the
/// default) is `{delete: true, compact: false}`, `compact` is `{delete: false, compact:
/// true}`, `compact,delete` sets both.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment before the active one would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this.
    pub segment_ms: Option<i64>,
    /// `index.interval.bytes`: log bytes between sparse index entries.
    pub index_interval_bytes: u64,
    /// `segment.index.bytes`: preallocated size of each offset/time index file; a full
    /// index rolls the segment.
    pub segment_index_bytes: u64,
    /// `retention.ms`: closed segments whose newest timestamp is older are deleted.
    pub retention_ms: Option<i64>,
    /// `retention.bytes`: oldest closed segments are deleted while the log stays at or
    /// above this size without them.
    pub retention_bytes: Option<u64>,
    /// `max.message.bytes`: the largest batch `append` accepts.
    pub max_message_bytes: u32,
    /// `cleanup.policy` contains `delete`: `apply_retention` deletes closed segments by
    /// `retention.ms` and `retention.bytes`. Without it only segments wholly before the log
    /// start (DeleteRecords) are deleted.
    pub delete: bool,
    /// `cleanup.policy` contains `compact`: `prepare_clean` offers cleanings that keep the
    /// latest record per key (see [`crate::cleaner`]).
    pub compact: bool,
    /// `delete.retention.ms`: a tombstone is kept at least this long after the cleaning
    /// that first saw it (its batch's delete horizon, Kafka's KIP-534).
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: a cleaning starts when the never-cleaned bytes are at
    /// least this fraction of the cleanable bytes (0.0 to 1.0).
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a segment whose newest timestamp is younger than this is
    /// never rewritten, so every record stays uncompacted at least this long.
    pub min_compaction_lag_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_ms: Some(DEFAULT_SEGMENT_MS),
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            segment_index_bytes: DEFAULT_SEGMENT_INDEX_BYTES,
            retention_ms: Some(DEFAULT_RETENTION_MS),
            retention_bytes: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            delete: true,
            compact: false,
            delete_retention_ms: DEFAULT_DELETE_RETENTION_MS,
            min_cleanable_dirty_ratio: DEFAULT_MIN_CLEANABLE_DIRTY_RATIO,
            min_compaction_lag_ms: DEFAULT_MIN_COMPACTION_LAG_MS,
        }
    }
}

/// Segment positions are stored as u32 in the offset index (Kafka's format), so a segment
/// can't exceed `i32::MAX` bytes, as in Kafka.
pub const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;
/// The smallest `segment.index.bytes` that holds at least a few entries of each index.
pub const MIN_SEGMENT_INDEX_BYTES: u64 = 1024;

impl LogConfig {
    /// Rejects values that would make the log misbehave, with the Kafka key in the message.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(LogError::InvalidArgument(msg));
        if self.segment_bytes < crate::batch::BATCH_HEADER_BYTES as u64
            || self.segment_bytes > MAX_SEGMENT_BYTES
        {
            return bad(format!(
                "segment.bytes {} must be between {} and {MAX_SEGMENT_BYTES}",
                self.segment_bytes,
                crate::batch::BATCH_HEADER_BYTES
            ));
        }
        if matches!(self.segment_ms, Some(ms) if ms <= 0) {
            return bad("segment.ms must be positive".into());
        }
        if self.index_interval_bytes == 0 {
            return bad("index.interval.bytes must be positive".into());
        }
        if self.segment_index_bytes < MIN_SEGMENT_INDEX_BYTES
            || self.segment_index_bytes > MAX_SEGMENT_BYTES
        {
            return bad(format!(
                "segment.index.bytes {} must be between {MIN_SEGMENT_INDEX_BYTES} and {MAX_SEGMENT_BYTES}",
                self.segment_index_bytes
            ));
        }
        if matches!(self.retention_ms, Some(ms) if ms < 0) {
            return bad("retention.ms must be -1 (None) or non-negative".into());
        }
        if (self.max_message_bytes as usize) < crate::batch::BATCH_HEADER_BYTES {
            return bad(format!(
                "max.message.bytes {} is smaller than a batch header",
                self.max_message_bytes
            ));
        }
        if self.delete_retention_ms < 0 {
            return bad("delete.retention.ms must be non-negative".into());
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return bad(format!(
                "min.cleanable.dirty.ratio {} must be between 0 and 1",
                self.min_cleanable_dirty_ratio
            ));
        }
        if self.min_compaction_lag_ms < 0 {
            return bad("min.compaction.lag.ms must be non-negative".into());
        }
        Ok(())
    }
}
