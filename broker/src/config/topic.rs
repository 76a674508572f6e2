//! The settings of one topic: Kafka's topic configs ([`super::topic_keys`]), the honoured
//! ones as typed fields, the stored ones as text.

use std::collections::BTreeMap;

use log_store::config::MIN_SEGMENT_INDEX_BYTES;
use log_store::LogConfig;

use super::topic_keys::{topic_key, Effect, TOPIC_KEYS};

/// The settings a topic can override, with Kafka's names.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<u64>,
    pub segment_bytes: u64,
    pub segment_ms: Option<i64>,
    /// `segment.index.bytes`: each index file's size; a full index rolls the segment.
    /// Kafka accepts 4 and up; the log uses at least its own minimum (1 KiB).
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: log bytes between sparse index entries (0, as in Kafka:
    /// an entry for every batch).
    pub index_interval_bytes: u64,
    pub max_message_bytes: u32,
    pub cleanup_policy: String,
    /// `delete.retention.ms`: how long tombstones outlive the cleaning that first saw them.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: the share of never-cleaned bytes that starts a cleaning.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this are never compacted away.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a record older than this is due a cleaning whatever the
    /// dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `file.delete.delay.ms`: how long a deleted segment's files stay on disk.
    pub file_delete_delay_ms: i64,
    /// `min.insync.replicas`: an acks=all produce is refused with
    /// NOT_ENOUGH_REPLICAS while fewer replicas than this are in sync.
    pub min_insync_replicas: u32,
    /// `message.timestamp.before.max.ms` (KIP-937): how far in the past a produced
    /// record's CreateTime may lie (Kafka's default: no limit).
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future (Kafka 4's default: 1 h).
    pub message_timestamp_after_max_ms: i64,
    /// `message.timestamp.difference.max.ms` (Kafka 3.x, removed in 4): the bound on
    /// either side that `before.max.ms` / `after.max.ms` do not set (left at Long.MAX),
    /// as Kafka 3.9 falls back to it.
    pub message_timestamp_difference_max_ms: i64,
    /// `message.timestamp.type=LogAppendTime`: batches are stamped with the append time.
    pub log_append_time: bool,
    /// `compression.type`: the codec batches are stored in (0 none, 1 gzip, 2 snappy,
    /// 3 lz4, 4 zstd); `None` is `producer`, the producer's own.
    pub compression: Option<u8>,
    /// `write.caching`: acks=all is answered once a majority of replicas holds a batch in
    /// memory; each replica syncs it in the background (`flush.ms`, `flush.bytes`).
    pub write_caching: bool,
    /// `flush.ms`: with write caching, the longest a batch waits for its `fdatasync`.
    pub flush_ms: i64,
    /// `flush.bytes`: with write caching, the written bytes that start a sync at once.
    pub flush_bytes: i64,
    /// `audit.enabled`: an append-only topic. Set when the topic is created, never
    /// changed; retention is unlimited (a finite `retention.*` is refused), and
    /// compaction, DeleteRecords and deleting the topic are refused.
    pub audit: bool,
    /// `audit.head.interval.ms`: how often the leader of an audit topic's partition signs
    /// its committed tree head and logs it (when the tree grew since the last one).
    pub audit_head_interval_ms: i64,
    /// Keys stored without effect, by name, when set (the rest read their default).
    pub stored: BTreeMap<&'static str, String>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        let log = LogConfig::default();
        TopicConfig {
            retention_ms: log.retention_ms,
            retention_bytes: log.retention_bytes,
            segment_bytes: log.segment_bytes,
            segment_ms: log.segment_ms,
            segment_index_bytes: log.segment_index_bytes,
            index_interval_bytes: log.index_interval_bytes,
            max_message_bytes: log.max_message_bytes,
            cleanup_policy: "delete".into(),
            delete_retention_ms: log.delete_retention_ms,
            min_cleanable_dirty_ratio: log.min_cleanable_dirty_ratio,
            min_compaction_lag_ms: log.min_compaction_lag_ms,
            max_compaction_lag_ms: log.max_compaction_lag_ms,
            file_delete_delay_ms: log.file_delete_delay_ms,
            min_insync_replicas: 1,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 3_600_000,
            message_timestamp_difference_max_ms: i64::MAX,
            log_append_time: false,
            compression: None,
            write_caching: false,
            flush_ms: DEFAULT_FLUSH_MS,
            flush_bytes: DEFAULT_FLUSH_BYTES,
            audit: false,
            audit_head_interval_ms: DEFAULT_AUDIT_HEAD_INTERVAL_MS,
            stored: BTreeMap::new(),
        }
    }
}

/// `flush.ms` by default: Redpanda's, not Kafka's (Long.MAX, never forced). It bounds
/// what a power loss can take from a write-caching topic; without write caching every
/// batch is synced before it is acknowledged anyway.
pub const DEFAULT_FLUSH_MS: i64 = 100;
/// `flush.bytes` by default (Redpanda's): 256 KiB.
pub const DEFAULT_FLUSH_BYTES: i64 = 256 * 1024;

/// `audit.head.interval.ms` by default: a signed head a minute.
pub const DEFAULT_AUDIT_HEAD_INTERVAL_MS: i64 = 60_000;
/// The shortest `audit.head.interval.ms`: each head is a Raft entry on every replica.
pub const MIN_AUDIT_HEAD_INTERVAL_MS: i64 = 100;

/// Why a topic setting was refused (becomes INVALID_CONFIG with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigValueError {
    pub key: String,
    pub reason: String,
}

fn bad(key: &str, reason: impl Into<String>) -> ConfigValueError {
    ConfigValueError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Kafka's `compression.type` names, by codec (`None`: `producer`).
const CODECS: [(&str, Option<u8>); 6] = [
    ("producer", None),
    ("uncompressed", Some(0)),
    ("gzip", Some(1)),
    ("snappy", Some(2)),
    ("lz4", Some(3)),
    ("zstd", Some(4)),
];

/// `-1` means unlimited, as in Kafka.
fn parse_limit(key: &str, value: &str) -> Result<Option<i64>, ConfigValueError> {
    match parse_at_least(key, value, -1)? {
        -1 => Ok(None),
        v => Ok(Some(v)),
    }
}

/// An integer of at least `min`.
fn parse_at_least(key: &str, value: &str, min: i64) -> Result<i64, ConfigValueError> {
    let v: i64 = value
        .trim()
        .parse()
        .map_err(|_| bad(key, format!("{value:?} is not an integer")))?;
    if v < min {
        return Err(bad(key, format!("{v} is below the minimum {min}")));
    }
    Ok(v)
}

/// An integer of at least `min` that fits Kafka's int32.
fn parse_int(key: &str, value: &str, min: i64) -> Result<u32, ConfigValueError> {
    let v = parse_at_least(key, value, min)?;
    u32::try_from(v)
        .ok()
        .filter(|&v| v <= i32::MAX as u32)
        .ok_or_else(|| bad(key, "must fit in an int32"))
}

fn parse_cleanup_policy(key: &str, value: &str) -> Result<String, ConfigValueError> {
    let mut policies: Vec<&str> = value.split(',').map(str::trim).collect();
    policies.sort_unstable();
    policies.dedup();
    match policies.as_slice() {
        ["delete"] => Ok("delete".into()),
        ["compact"] => Ok("compact".into()),
        ["compact", "delete"] => Ok("compact,delete".into()),
        _ => Err(bad(
            key,
            format!("{value:?}: expected delete, compact or compact,delete"),
        )),
    }
}

impl TopicConfig {
    /// Sets one key from its string form (as CreateTopics and AlterConfigs carry it),
    /// checking the value alone. [`TopicConfig::check`] checks the keys together.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigValueError> {
        let spec = topic_key(key).ok_or_else(|| bad(key, "unknown topic config"))?;
        if let Effect::Stored { rule, .. } = spec.effect {
            rule.check(value).map_err(|why| bad(key, why))?;
            self.stored.insert(spec.name, value.trim().to_string());
            return Ok(());
        }
        if self.set_limit_or_size(key, value)? || self.set_time(key, value)? {
            return Ok(());
        }
        match key {
            "min.insync.replicas" => self.min_insync_replicas = parse_int(key, value, 1)?,
            "min.cleanable.dirty.ratio" => {
                self.min_cleanable_dirty_ratio = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|v: &f64| (0.0..=1.0).contains(v))
                    .ok_or_else(|| bad(key, format!("{value:?} is not a ratio from 0 to 1")))?;
            }
            "cleanup.policy" => self.cleanup_policy = parse_cleanup_policy(key, value)?,
            "audit.enabled" => {
                let audit = super::topic_keys::parse_bool(value.trim())
                    .ok_or_else(|| bad(key, format!("{value:?} is not true or false")))?;
                // Keys apply in name order, so this comes before any retention or
                // cleanup key given with it, which then applies to sealed batches.
                if audit {
                    self.make_audit();
                } else {
                    self.audit = false;
                }
            }
            "write.caching" => {
                self.write_caching = super::topic_keys::parse_bool(value.trim())
                    .ok_or_else(|| bad(key, format!("{value:?} is not true or false")))?;
            }
            "compression.type" => {
                let name = value.trim().to_ascii_lowercase();
                self.compression = CODECS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|&(_, c)| c)
                    .ok_or_else(|| {
                        bad(key, format!("{value:?}: expected one of {}", codec_names()))
                    })?;
            }
            "message.timestamp.type" => {
                self.log_append_time = match value.trim() {
                    "CreateTime" => false,
                    "LogAppendTime" => true,
                    _ => {
                        let why = format!("{value:?}: expected CreateTime or LogAppendTime");
                        return Err(bad(key, why));
                    }
                }
            }
            _ => return Err(bad(key, "unknown topic config")),
        }
        Ok(())
    }

    /// Sizes and limits; `false` when `key` is not one.
    fn set_limit_or_size(&mut self, key: &str, value: &str) -> Result<bool, ConfigValueError> {
        match key {
            "retention.ms" => self.retention_ms = parse_limit(key, value)?,
            "retention.bytes" => {
                self.retention_bytes = parse_limit(key, value)?.map(|v| v as u64);
            }
            // -1 (what DescribeConfigs shows for "no age limit") turns rolling by age off.
            "segment.ms" => {
                self.segment_ms = match parse_limit(key, value)? {
                    Some(0) => return Err(bad(key, "must be -1 or at least 1")),
                    v => v,
                };
            }
            "segment.bytes" => self.segment_bytes = parse_int(key, value, 0)?.into(),
            "segment.index.bytes" => self.segment_index_bytes = parse_int(key, value, 4)?.into(),
            "index.interval.bytes" => self.index_interval_bytes = parse_int(key, value, 0)?.into(),
            "max.message.bytes" => self.max_message_bytes = parse_int(key, value, 0)?,
            "flush.ms" => self.flush_ms = parse_at_least(key, value, 0)?,
            "flush.bytes" => self.flush_bytes = parse_at_least(key, value, 1)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Non-negative times in ms; `false` when `key` is not one.
    fn set_time(&mut self, key: &str, value: &str) -> Result<bool, ConfigValueError> {
        let field = match key {
            "delete.retention.ms" => &mut self.delete_retention_ms,
            "min.compaction.lag.ms" => &mut self.min_compaction_lag_ms,
            "file.delete.delay.ms" => &mut self.file_delete_delay_ms,
            "message.timestamp.before.max.ms" => &mut self.message_timestamp_before_max_ms,
            "message.timestamp.after.max.ms" => &mut self.message_timestamp_after_max_ms,
            "message.timestamp.difference.max.ms" => &mut self.message_timestamp_difference_max_ms,
            "max.compaction.lag.ms" => {
                self.max_compaction_lag_ms = parse_at_least(key, value, 1)?;
                return Ok(true);
            }
            "audit.head.interval.ms" => {
                self.audit_head_interval_ms =
                    parse_at_least(key, value, MIN_AUDIT_HEAD_INTERVAL_MS)?;
                return Ok(true);
            }
            _ => return Ok(false),
        };
        *field = parse_at_least(key, value, 0)?;
        Ok(true)
    }

    /// Checks the keys together (a log that could not open with them, or Kafka's rules
    /// between keys); the key named is the one to change.
    pub fn check(&self) -> Result<(), ConfigValueError> {
        if self.max_compaction_lag_ms < self.min_compaction_lag_ms {
            return Err(bad(
                "max.compaction.lag.ms",
                format!(
                    "{} is below min.compaction.lag.ms {}",
                    self.max_compaction_lag_ms, self.min_compaction_lag_ms
                ),
            ));
        }
        self.log_config().validate().map_err(|e| {
            let message = e.to_string();
            let key = TOPIC_KEYS
                .iter()
                .map(|k| k.name)
                .find(|k| message.contains(k))
                .unwrap_or("config");
            bad(key, message)
        })
    }

    /// Makes this an audit topic, whatever the broker's defaults: unlimited retention,
    /// no compaction (either may be set later; they act on sealed batches only).
    pub fn make_audit(&mut self) {
        self.audit = true;
        self.retention_ms = None;
        self.retention_bytes = None;
        self.cleanup_policy = "delete".into();
    }

    /// Resets one key to `defaults`' value (AlterConfigs DELETE).
    pub fn reset(&mut self, key: &str, defaults: &TopicConfig) -> Result<(), ConfigValueError> {
        let value = defaults
            .get(key)
            .ok_or_else(|| bad(key, "unknown topic config"))?;
        self.set(key, &value)
    }

    /// One key's value in Kafka's string form; `None` for unknown keys.
    pub fn get(&self, key: &str) -> Option<String> {
        let spec = topic_key(key)?;
        if let Effect::Stored { default, .. } = spec.effect {
            return Some(
                self.stored
                    .get(key)
                    .map_or(default.to_string(), Clone::clone),
            );
        }
        let limit = |v: Option<i64>| v.unwrap_or(-1).to_string();
        Some(match key {
            "retention.ms" => limit(self.retention_ms),
            "retention.bytes" => limit(self.retention_bytes.map(|v| v as i64)),
            "segment.ms" => limit(self.segment_ms),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "flush.bytes" => self.flush_bytes.to_string(),
            "write.caching" => self.write_caching.to_string(),
            "audit.enabled" => self.audit.to_string(),
            "audit.head.interval.ms" => self.audit_head_interval_ms.to_string(),
            "cleanup.policy" => self.cleanup_policy.clone(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "file.delete.delay.ms" => self.file_delete_delay_ms.to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "message.timestamp.before.max.ms" => self.message_timestamp_before_max_ms.to_string(),
            "message.timestamp.after.max.ms" => self.message_timestamp_after_max_ms.to_string(),
            "message.timestamp.difference.max.ms" => {
                self.message_timestamp_difference_max_ms.to_string()
            }
            "message.timestamp.type" => {
                let name = if self.log_append_time {
                    "LogAppendTime"
                } else {
                    "CreateTime"
                };
                name.to_string()
            }
            "compression.type" => CODECS
                .iter()
                .find(|(_, c)| *c == self.compression)
                .map_or("producer", |(n, _)| n)
                .to_string(),
            _ => return None,
        })
    }

    /// The rules produced records must meet (`now_ms`: the broker's clock). A
    /// LogAppendTime topic ignores the producer's timestamps, so bounds them not at all.
    pub fn record_rules(&self, now_ms: i64) -> log_store::RecordRules {
        let bound = |own: i64| match (self.log_append_time, own) {
            (true, _) => i64::MAX,
            (false, i64::MAX) => self.message_timestamp_difference_max_ms,
            (false, own) => own,
        };
        log_store::RecordRules {
            require_key: self.cleanup_policy.contains("compact"),
            now_ms,
            timestamp_before_max_ms: bound(self.message_timestamp_before_max_ms),
            timestamp_after_max_ms: bound(self.message_timestamp_after_max_ms),
        }
    }

    /// The write-caching policy of the topic's replicas (`None`: off).
    pub fn write_caching(&self) -> Option<replication::group::FlushPolicy> {
        self.write_caching.then(|| replication::group::FlushPolicy {
            flush_after: std::time::Duration::from_millis(
                u64::try_from(self.flush_ms).unwrap_or(0),
            ),
            flush_bytes: u64::try_from(self.flush_bytes).unwrap_or(1),
        })
    }

    /// The partition-log settings these give.
    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            index_interval_bytes: self.index_interval_bytes.max(1),
            segment_index_bytes: self.segment_index_bytes.max(MIN_SEGMENT_INDEX_BYTES),
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            max_message_bytes: self.max_message_bytes,
            delete: self.cleanup_policy.contains("delete"),
            compact: self.cleanup_policy.contains("compact"),
            delete_retention_ms: self.delete_retention_ms,
            min_cleanable_dirty_ratio: self.min_cleanable_dirty_ratio,
            min_compaction_lag_ms: self.min_compaction_lag_ms,
            max_compaction_lag_ms: self.max_compaction_lag_ms,
            file_delete_delay_ms: self.file_delete_delay_ms,
            audit: self.audit,
        }
    }
}

/// Whether topic `overrides` (as the controller stores them) make an audit topic.
pub fn audit_override(overrides: &BTreeMap<String, String>) -> bool {
    overrides
        .get("audit.enabled")
        .and_then(|v| super::topic_keys::parse_bool(v))
        .unwrap_or(false)
}

fn codec_names() -> String {
    CODECS.map(|(n, _)| n).join(", ")
}
