//! What a single broker's data directory holds beside its logs, as releases from before
//! every broker was a cluster node wrote it, read once by the conversion: the topic
//! registry `topics.toml` (each topic's name, id, partition count and config
//! overrides) and the end of the reserved producer ids in `producer_ids`, both with a
//! checksum line ([`crate::checked_file`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use tracing::warn;
use uuid::Uuid;

use crate::checked_file::{self, Read};
use crate::config::{TopicConfig, TopicDefaults};
use crate::error::{BrokerError, Result};
use crate::topics::{partition_dirs_except, validate_topic_name, MAX_PARTITIONS_PER_TOPIC};

/// The registry's file name, in the data directory.
pub const REGISTRY_FILE: &str = "topics.toml";
/// The producer-id reservation's file name, in the data directory.
const PRODUCER_IDS_FILE: &str = "producer_ids";

#[derive(Debug, Default, Deserialize)]
struct RegistryFile {
    #[serde(default)]
    topics: BTreeMap<String, TopicRecord>,
}

#[derive(Debug, Clone, Deserialize)]
struct TopicRecord {
    id: String,
    partitions: i32,
    #[serde(default)]
    config: BTreeMap<String, String>,
}

/// One topic the registry lists, checked: a valid name and id, a partition count in
/// range, and overrides that apply on top of the defaults.
#[derive(Debug, Clone)]
pub(crate) struct Registered {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// The topic's overrides, as the registry lists them.
    pub overrides: BTreeMap<String, String>,
    /// The defaults with the overrides applied.
    pub config: TopicConfig,
}

/// Reads and checks the registry of `data_dir`. An empty registry beside partition
/// directories is an error naming the file (converting as if there were no topics would
/// lose them all).
pub(crate) fn read(data_dir: &Path, defaults: &TopicDefaults) -> Result<Vec<Registered>> {
    let path = data_dir.join(REGISTRY_FILE);
    let text = match checked_file::read(&path)? {
        Read::Checked(text) | Read::Unchecked(text) => Some(text),
        Read::Missing => None,
    };
    let Some(text) = text.as_deref().filter(|t| !t.trim().is_empty()) else {
        refuse_missing(data_dir, &path, text.is_some())?;
        return Ok(Vec::new());
    };
    let file: RegistryFile = toml::from_str(text).map_err(|e| BrokerError::CorruptFile {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    file.topics
        .into_iter()
        .map(|(name, record)| {
            check(&name, record, defaults).map_err(|reason| BrokerError::CorruptFile {
                path: path.clone(),
                reason: format!("topic {name:?}: {reason}"),
            })
        })
        .collect()
}

fn check(
    name: &str,
    record: TopicRecord,
    defaults: &TopicDefaults,
) -> std::result::Result<Registered, String> {
    validate_topic_name(name).map_err(|e| e.to_string())?;
    let id = Uuid::parse_str(&record.id).map_err(|e| e.to_string())?;
    if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&record.partitions) {
        return Err(format!("{} partitions", record.partitions));
    }
    let mut config = defaults.log.clone();
    for (k, v) in &record.config {
        config.set(k, v).map_err(|e| e.to_string())?;
    }
    config.check().map_err(|e| e.to_string())?;
    Ok(Registered {
        name: name.to_string(),
        id,
        partitions: record.partitions,
        overrides: record.config,
        config,
    })
}

/// Refuses a missing (or, `empty`, an empty) registry beside partition directories.
fn refuse_missing(data_dir: &Path, path: &Path, empty: bool) -> Result<()> {
    let existing = partition_dirs_except(data_dir, |_, _| false);
    let Some(example) = existing.first() else {
        return Ok(());
    };
    let state = if empty { "empty" } else { "missing" };
    Err(BrokerError::CorruptFile {
        path: path.to_path_buf(),
        reason: format!(
            "the topic registry is {state} but {} partition directories exist (e.g. {}); \
             restore it from a backup, or move those directories away to start empty",
            existing.len(),
            example.display()
        ),
    })
}

/// Renames the `<topic>-<n>` directories for which `owned` is false (a topic deleted,
/// or a creation interrupted, before a crash) to `<dir>.<uuid>-stray`: out of the way of
/// a topic created later under the same name, and kept for the operator, as Kafka does
/// with stray partitions. Only directories that look like partition logs are touched.
pub(crate) fn set_aside_strays(data_dir: &Path, owned: impl Fn(&str, i32) -> bool) {
    for dir in partition_dirs_except(data_dir, owned) {
        let mut name = dir.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{}-stray", Uuid::new_v4().simple()));
        let to = dir.with_file_name(name);
        match std::fs::rename(&dir, &to) {
            Ok(()) => warn!(dir = %dir.display(), to = %to.display(),
                "a partition directory no topic owns was set aside"),
            Err(e) => warn!(dir = %dir.display(), error = %e,
                "cannot set aside a partition directory no topic owns"),
        }
    }
}

/// The end of the producer ids the single broker reserved: no id at or above it was
/// ever handed out. A missing file is an error, as ids would start again at 0 and
/// collide with producers the logs still remember.
pub(crate) fn reserved_producer_ids(data_dir: &Path) -> Result<i64> {
    let path = data_dir.join(PRODUCER_IDS_FILE);
    let text = match checked_file::read(&path)? {
        Read::Checked(text) | Read::Unchecked(text) => text,
        Read::Missing => {
            return Err(BrokerError::CorruptFile {
                path,
                reason: "missing: producer ids would be handed out again; restore the file \
                         from a backup"
                    .into(),
            })
        }
    };
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|&v| v >= 0)
        .ok_or_else(|| BrokerError::CorruptFile {
            path: path.clone(),
            reason: format!("expected a non-negative integer, found {:?}", text.trim()),
        })
}
