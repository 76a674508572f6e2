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
/// Kafka's default `max.compaction.lag.ms`: no limit.
pub const DEFAULT_MAX_COMPACTION_LAG_MS: i64 = i64::MAX;
/// Kafka's default `file.delete.delay.ms` (1 minute).
pub const DEFAULT_FILE_DELETE_DELAY_MS: i64 = 60_000;

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
    /// `max.compaction.lag.ms`: a compacted log holding a dirty record older than this is
    /// due a cleaning whatever its dirty ratio, and its active segment rolls once its first
    /// batch is this old (see [`LogConfig::roll_ms`]). `i64::MAX`: no limit.
    pub max_compaction_lag_ms: i64,
    /// `file.delete.delay.ms`: segment files removed by retention, DeleteRecords or a
    /// cleaning's swap are renamed `*.deleted` and stay on disk this long; 0 removes them
    /// at once.
    pub file_delete_delay_ms: i64,
    /// `audit.enabled`: the log keeps an RFC 9162 Merkle tree over its batches (see
    /// [`crate::log::AuditHead`]).
    pub audit: bool,
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
            max_compaction_lag_ms: DEFAULT_MAX_COMPACTION_LAG_MS,
            file_delete_delay_ms: DEFAULT_FILE_DELETE_DELAY_MS,
            audit: false,
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
        if self.max_compaction_lag_ms < 1 {
            return bad("max.compaction.lag.ms must be at least 1".into());
        }
        if self.max_compaction_lag_ms < self.min_compaction_lag_ms {
            return bad(format!(
                "max.compaction.lag.ms {} must be at least min.compaction.lag.ms {}",
                self.max_compaction_lag_ms, self.min_compaction_lag_ms
            ));
        }
        if self.file_delete_delay_ms < 0 {
            return bad("file.delete.delay.ms must be non-negative".into());
        }
        Ok(())
    }

    /// The age at which the active segment rolls, as in Kafka: `segment.ms`, or for a
    /// compacted log `max.compaction.lag.ms` when that is smaller, so records past the
    /// lag leave the active segment (which is never cleaned) at the next append. `None`:
    /// no roll by age.
    pub fn roll_ms(&self) -> Option<i64> {
        let lag = (self.compact && self.max_compaction_lag_ms < i64::MAX)
            .then_some(self.max_compaction_lag_ms);
        match (self.segment_ms, lag) {
            (Some(segment_ms), Some(lag)) => Some(segment_ms.min(lag)),
            (segment_ms, lag) => segment_ms.or(lag),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(config: LogConfig) -> String {
        match config.validate() {
            Err(LogError::InvalidArgument(msg)) => msg,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn compaction_lags_and_delete_delay_are_validated_by_their_keys() {
        assert!(LogConfig::default().validate().is_ok());
        let lag = |min, max| LogConfig {
            min_compaction_lag_ms: min,
            max_compaction_lag_ms: max,
            ..LogConfig::default()
        };
        assert!(refusal(lag(0, 0)).contains("max.compaction.lag.ms"));
        let msg = refusal(lag(5_000, 4_999));
        assert!(
            msg.contains("max.compaction.lag.ms 4999")
                && msg.contains("min.compaction.lag.ms 5000")
        );
        assert!(lag(5_000, 5_000).validate().is_ok());
        let delay = |ms| LogConfig {
            file_delete_delay_ms: ms,
            ..LogConfig::default()
        };
        assert!(refusal(delay(-1)).contains("file.delete.delay.ms"));
        assert!(delay(0).validate().is_ok());
    }

    #[test]
    fn a_compacted_log_rolls_by_the_smaller_of_segment_ms_and_max_compaction_lag_ms() {
        let config = |compact, segment_ms, max_compaction_lag_ms| LogConfig {
            compact,
            segment_ms,
            max_compaction_lag_ms,
            ..LogConfig::default()
        };
        assert_eq!(config(false, Some(1_000), 10).roll_ms(), Some(1_000));
        assert_eq!(config(true, Some(1_000), 10).roll_ms(), Some(10));
        assert_eq!(config(true, Some(1_000), 10_000).roll_ms(), Some(1_000));
        assert_eq!(config(true, None, 10).roll_ms(), Some(10));
        assert_eq!(config(true, None, i64::MAX).roll_ms(), None);
        assert_eq!(config(false, None, 10).roll_ms(), None);
    }
}
