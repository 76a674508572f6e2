//! The topics this broker holds: names, ids, partition counts and config overrides,
//! with partition logs in `<data-dir>/<topic>-<n>/` (Kafka's layout, so `strata log
//! verify` and Kafka's own tools find them).
//!
//! The controller group holds the metadata; the cluster submits changes to it and keeps
//! this map in line with its applied records (`Cluster::reconcile`), opening and
//! closing this node's replicas. The map itself knows nothing of the cluster.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use tracing::warn;
use uuid::Uuid;

use crate::config::{TopicConfig, TopicDefaults};
use crate::error::{BrokerError, Result};
use crate::metrics::Metrics;
use crate::partition::{InSyncReplicas, Partition, Shared};

mod error;

pub use error::TopicError;

/// Kafka's limit on topic name length.
pub const MAX_TOPIC_NAME_CHARS: usize = 249;
/// Kafka's name for the internal topic of group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's name for the internal topic of transaction coordinator state.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";
/// The broker's own audit trail (`audit_trail`), an audit topic.
pub const AUDIT_LOG_TOPIC: &str = "__strata_audit_log";
/// Partitions one topic may have (bounds what one request can make the broker create).
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// One topic and its open partitions.
#[derive(Debug)]
pub struct Topic {
    pub name: Arc<str>,
    pub id: Uuid,
    /// Settings explicitly set on this topic (Kafka's "dynamic topic configs").
    pub overrides: BTreeMap<String, String>,
    /// Defaults with the overrides applied.
    pub config: TopicConfig,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}

/// Topics the broker writes itself (`__consumer_offsets`, `__transaction_state`, the
/// audit trail's `__strata_audit_log`): clients may read them but not produce to,
/// delete or grow them.
pub fn is_internal(name: &str) -> bool {
    is_compacted_internal(name) || name == AUDIT_LOG_TOPIC
}

/// The internal topics that must stay compacted (keyed state, not history).
pub fn is_compacted_internal(name: &str) -> bool {
    name == OFFSETS_TOPIC || name == TXN_STATE_TOPIC
}

pub(crate) fn refuse_internal(name: &str) -> std::result::Result<(), TopicError> {
    if is_internal(name) {
        return Err(TopicError::Internal { name: name.into() });
    }
    Ok(())
}

/// A topic of `have` partitions may grow to `count`: more, and at most
/// [`MAX_PARTITIONS_PER_TOPIC`] (Kafka never shrinks a topic).
pub(crate) fn check_growth(name: &str, have: i32, count: i32) -> Result<(), TopicError> {
    if count <= have || count > MAX_PARTITIONS_PER_TOPIC {
        return Err(TopicError::PartitionGrowth {
            name: name.into(),
            have,
            asked: count,
            max: MAX_PARTITIONS_PER_TOPIC,
        });
    }
    Ok(())
}

/// Kafka's rule: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> std::result::Result<(), TopicError> {
    let invalid = |why: &'static str| {
        Err(TopicError::InvalidName {
            name: name.into(),
            why,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > MAX_TOPIC_NAME_CHARS {
        return invalid("longer than 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are reserved");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// All topics. Lookups are lock-free snapshots (`Arc<Topic>`); changes are serialized.
#[derive(Debug)]
pub struct Topics {
    data_dir: PathBuf,
    defaults: TopicDefaults,
    topics: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    /// What the partitions share (data-changed signal, metrics).
    shared: Arc<Shared>,
}

fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

impl Topics {
    /// The topics of this node: empty until the controller's records are applied
    /// (`Cluster::reconcile`).
    pub fn open(
        data_dir: &Path,
        defaults: TopicDefaults,
        metrics: Arc<Metrics>,
        in_sync: Arc<InSyncReplicas>,
    ) -> Result<Topics> {
        std::fs::create_dir_all(data_dir).map_err(|e| BrokerError::io(data_dir, e))?;
        Ok(Topics {
            data_dir: data_dir.to_path_buf(),
            defaults,
            topics: RwLock::new(HashMap::new()),
            shared: Shared::new(metrics, in_sync),
        })
    }

    /// A receiver that changes whenever any partition's high watermark moves.
    pub fn watch_data(&self) -> watch::Receiver<u64> {
        self.shared.data_changed.subscribe()
    }

    pub fn defaults(&self) -> &TopicDefaults {
        &self.defaults
    }

    /// The topic named `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_map().get(name).cloned()
    }

    /// The topic with id `id`, if it exists.
    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.read_map().values().find(|t| t.id == id).cloned()
    }

    /// Every topic, sorted by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.read_map().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    fn read_map(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Arc<Topic>>> {
        // Writers only swap whole entries; a poisoned lock still holds a consistent map.
        self.topics.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `topic` in the map, replacing the topic of that name.
    pub(crate) fn insert(&self, topic: Arc<Topic>) {
        self.write_map().insert(topic.name.clone(), topic);
    }

    /// Takes the topic named `name` out of the map.
    pub(crate) fn remove(&self, name: &str) -> Option<Arc<Topic>> {
        self.write_map().remove(name)
    }

    /// What the partitions share (data-changed signal, metrics, the ISR table).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The directory of partition `index` of `topic`.
    pub(crate) fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        partition_dir(&self.data_dir, topic, index)
    }

    /// The data directory the partitions live in.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn write_map(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Arc<str>, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The effective config for `overrides` on top of the defaults.
    pub fn config_with(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> std::result::Result<TopicConfig, TopicError> {
        let mut config = self.defaults.log.clone();
        for (k, v) in overrides {
            config.set(k, v)?;
        }
        config.check()?;
        Ok(config)
    }

    /// Every partition of every topic.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.all()
            .iter()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// Closes every partition cleanly (shutdown).
    pub fn close_all(&self) -> Result<()> {
        let mut first_error = None;
        for p in self.partitions() {
            if let Err(e) = p.close() {
                warn!(error = %e, "closing partition");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The `<topic>-<n>` directories that look like partition logs (not empty, holding only
/// a log's files) for which `keep` is false.
pub(crate) fn partition_dirs_except(
    data_dir: &Path,
    keep: impl Fn(&str, i32) -> bool,
) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((topic, index)) = name.rsplit_once('-') else {
            continue;
        };
        let Ok(index) = index.parse::<i32>() else {
            continue;
        };
        if !keep(topic, index) && looks_like_partition(&path) {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn looks_like_partition(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().all(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            ["log.checkpoint", "cleaner.checkpoint", "raft.state"].contains(&name.as_ref())
                || name.starts_with('.')
                || [
                    ".log",
                    ".index",
                    ".timeindex",
                    ".entries",
                    ".entrydata",
                    ".tmp",
                ]
                .iter()
                .any(|s| name.ends_with(s))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::error::ResponseError;

    #[test]
    fn topic_names_follow_kafkas_rule() {
        for ok in ["a", "orders.v1", "A_b-9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "ü", "a/b", &"x".repeat(250)] {
            let e = validate_topic_name(bad).unwrap_err();
            assert_eq!(
                e.code(),
                ResponseError::InvalidTopicException.code(),
                "{bad}"
            );
        }
    }
}
