//! The topics this broker holds: names, ids, partition counts and config overrides,
//! with partition logs in `<data-dir>/<topic>-<n>/` (Kafka's layout, so `strata log
//! verify` and Kafka's own tools find them).
//!
//! The controller group holds the metadata: changes are submitted to it, and the map is
//! rebuilt from its applied records ([`Topics::reconcile`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use crate::cluster::metadata::{Change, MetaRecord, PartitionMeta, TopicMeta};
use crate::cluster::{Cluster, CONTROLLER_TIMEOUT};
use crate::config::{TopicConfig, TopicDefaults};
use crate::error::{BrokerError, Result};
use crate::metrics::Metrics;
use crate::partition::{Partition, Shared};

mod error;

pub use error::TopicError;

/// Kafka's limit on topic name length.
pub const MAX_TOPIC_NAME_CHARS: usize = 249;
/// Kafka's name for the internal topic of group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
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

/// Topics the broker writes itself (`__consumer_offsets`): clients may read them but
/// not produce to, delete or grow them.
pub fn is_internal(name: &str) -> bool {
    name == OFFSETS_TOPIC
}

fn refuse_internal(name: &str) -> std::result::Result<(), TopicError> {
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
    /// Serializes create/delete/alter: one change at a time goes to the controller.
    change: tokio::sync::Mutex<()>,
    /// Where metadata changes go, and what the map follows.
    cluster: Arc<Cluster>,
}

fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

impl Topics {
    /// The topics of this node: empty until the controller's records are applied
    /// ([`Topics::reconcile`]).
    pub fn open(
        data_dir: &Path,
        defaults: TopicDefaults,
        metrics: Arc<Metrics>,
        cluster: Arc<Cluster>,
    ) -> Result<Topics> {
        std::fs::create_dir_all(data_dir).map_err(|e| BrokerError::io(data_dir, e))?;
        Ok(Topics {
            data_dir: data_dir.to_path_buf(),
            defaults,
            topics: RwLock::new(HashMap::new()),
            shared: Shared::new(metrics, cluster.in_sync_replicas()),
            change: tokio::sync::Mutex::new(()),
            cluster,
        })
    }

    /// The cluster this node belongs to.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Brings the map in line with one applied controller change: opens this node's
    /// replicas of a new or grown topic (others are remote), applies a config change,
    /// closes and removes the replicas of a deleted topic.
    pub async fn reconcile(&self, change: Change) {
        let cluster = self.cluster.clone();
        match change {
            Change::Topic(name) => {
                let meta = cluster.state().topics.get(&name).cloned();
                if let Some(meta) = meta {
                    self.install(&cluster, &name, meta).await;
                }
            }
            Change::TopicDeleted(name, meta) => self.uninstall(&cluster, &name, &meta).await,
            Change::Transfer(group, to) => cluster.transfer_if_leading(group, to).await,
            Change::All => {
                let placed = cluster.state().topics.clone();
                let gone: Vec<Arc<Topic>> = self
                    .all()
                    .into_iter()
                    .filter(|t| !placed.contains_key(&*t.name))
                    .collect();
                for t in gone {
                    let meta = self.local_meta(&t);
                    self.uninstall(&cluster, &t.name, &meta).await;
                }
                for (name, meta) in placed {
                    self.install(&cluster, &name, meta).await;
                }
            }
            Change::PruneReplicas => {
                // Replicas this broker lost while it was behind (a move that ended, a
                // topic deleted): the checkpoint it jumped to covers everything it ever
                // applied and places none of them.
                let me = cluster.node_id;
                let hosted = hosted_replicas(&cluster.state().topics, me);
                remove_partition_dirs_except(&self.data_dir, |topic, index| {
                    hosted.contains(&(topic.to_string(), index))
                });
            }
            Change::None | Change::Brokers | Change::Leader(_) => {}
        }
    }

    async fn install(&self, cluster: &Arc<Cluster>, name: &str, meta: TopicMeta) {
        let existing = self.get(name);
        let config = self.config_with(&meta.config).unwrap_or_else(|e| {
            warn!(topic = name, error = %e, "invalid topic config in the controller; using the defaults");
            self.defaults.log.clone()
        });
        let topic_name: Arc<str> = name.into();
        let me = cluster.node_id;
        let mut partitions = Vec::with_capacity(meta.partitions.len());
        for (i, placed) in meta.partitions.iter().enumerate() {
            let index = i as i32;
            let current = existing
                .as_ref()
                .and_then(|t| t.partitions.get(i))
                .filter(|p| p.group() == placed.group);
            let hosted_here = current.is_some_and(|p| p.view().is_some());
            match current {
                // The replica stays where it is (or stays elsewhere): a config change at most.
                Some(p) if hosted_here == placed.hosts(me) => {
                    if existing.as_ref().is_some_and(|t| t.config != config) {
                        if let Err(e) = p.set_config(config.log_config()) {
                            warn!(
                                topic = name,
                                partition = index,
                                error = %e,
                                "applying a config change"
                            );
                        }
                    }
                    partitions.push(p.clone());
                    continue;
                }
                // A move took this broker's replica away.
                Some(p) if hosted_here => {
                    self.drop_replica(cluster, name, index, placed.group, Some(p))
                        .await;
                }
                _ => {}
            }
            let p = if placed.hosts(me) {
                self.open_hosted(cluster, &topic_name, index, placed, &config)
                    .await
            } else {
                Partition::remote(topic_name.clone(), index, self.shared.clone(), placed.group)
            };
            partitions.push(p);
        }
        let id = Uuid::parse_str(&meta.id).unwrap_or(Uuid::nil());
        let topic = Arc::new(Topic {
            name: topic_name.clone(),
            id,
            overrides: meta.config,
            config,
            partitions,
        });
        self.write_map().insert(topic_name, topic);
        info!(topic = name, "topic applied from the controller");
    }

    /// Opens this broker's replica of `placed` (served as remote if it cannot be
    /// opened). A replica a move is adding starts with no configuration: the group's
    /// leader initializes it (a snapshot, then the log).
    async fn open_hosted(
        &self,
        cluster: &Arc<Cluster>,
        topic: &Arc<str>,
        index: i32,
        placed: &PartitionMeta,
        config: &TopicConfig,
    ) -> Arc<Partition> {
        let me = cluster.node_id;
        let original = placed.replicas.contains(&me);
        let voters: &[u64] = if original { &placed.replicas } else { &[] };
        let rejoin = match cluster.replicas_rejoin() {
            Ok(r) => r,
            Err(e) => {
                warn!(topic = %topic, partition = index, error = %e, "cannot record this node's standing; serving the replica as remote");
                return Partition::remote(topic.clone(), index, self.shared.clone(), placed.group);
            }
        };
        let opened = Partition::open_replica(
            topic.clone(),
            index,
            &partition_dir(&self.data_dir, topic, index),
            config.log_config(),
            self.shared.clone(),
            cluster.node.clone(),
            me,
            placed.group,
            voters,
            rejoin,
        )
        .await;
        match opened {
            Ok(p) => {
                // A new partition's first replica (its preferred leader) stands at
                // once: the topic is writable as soon as it exists, and leaderships
                // start spread like the placement.
                let fresh = p
                    .view()
                    .is_some_and(|v| v.committed_index <= 1 && v.term <= 1);
                if fresh && original && placed.replicas.first() == Some(&me) {
                    let _ = cluster.node.campaign(placed.group).await;
                }
                if let Some(view) = cluster.node.watch(placed.group).await {
                    tokio::spawn(cluster.clone().report_leadership(placed.group, view));
                }
                p
            }
            Err(e) => {
                warn!(topic = %topic, partition = index, error = %e, "cannot open a replica placed here; serving it as remote");
                Partition::remote(topic.clone(), index, self.shared.clone(), placed.group)
            }
        }
    }

    /// Stops this broker's replica of group `group` and removes its files (its topic
    /// was deleted, or a move took the replica elsewhere).
    async fn drop_replica(
        &self,
        cluster: &Cluster,
        name: &str,
        index: i32,
        group: u64,
        partition: Option<&Arc<Partition>>,
    ) {
        // Dropping the group ends its view, and the tasks that follow it.
        drop(cluster.node.remove_group(group).await);
        if let Some(p) = partition {
            if let Err(e) = p.close() {
                warn!(error = %e, "closing a removed replica");
            }
        }
        remove_replica_files(&partition_dir(&self.data_dir, name, index));
        info!(
            topic = name,
            partition = index,
            group,
            "replica removed from this broker"
        );
    }

    /// What this broker knows of `topic`'s placement: its partitions' groups, with
    /// itself as the only replica of those it hosts (enough to remove them).
    fn local_meta(&self, topic: &Topic) -> TopicMeta {
        let me = self.cluster.node_id;
        TopicMeta {
            id: topic.id.to_string(),
            config: topic.overrides.clone(),
            partitions: topic
                .partitions
                .iter()
                .map(|p| PartitionMeta {
                    group: p.group(),
                    replicas: if p.view().is_some() {
                        vec![me]
                    } else {
                        Vec::new()
                    },
                    target: None,
                })
                .collect(),
        }
    }

    async fn uninstall(&self, cluster: &Arc<Cluster>, name: &str, meta: &TopicMeta) {
        let removed = self.write_map().remove(name);
        for (i, placed) in meta.partitions.iter().enumerate() {
            if !placed.hosts(cluster.node_id) {
                continue;
            }
            let p = removed.as_ref().and_then(|t| t.partitions.get(i));
            self.drop_replica(cluster, name, i as i32, placed.group, p)
                .await;
        }
        info!(topic = name, "topic deleted by the controller");
    }

    /// Waits until the applied map satisfies `done` (after a submitted change).
    async fn await_map(
        &self,
        cluster: &Cluster,
        done: impl Fn(&Topics) -> bool,
    ) -> std::result::Result<(), TopicError> {
        if cluster
            .wait_applied(CONTROLLER_TIMEOUT, || done(self))
            .await
        {
            Ok(())
        } else {
            Err(TopicError::NotYetApplied)
        }
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
        Ok(config)
    }

    /// Checks a creation without doing it (CreateTopics `validate_only`, and the first
    /// step of `create`): the replication factor is judged against the brokers the
    /// controller knows, as the controller will.
    pub fn validate_create(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        overrides: &BTreeMap<String, String>,
    ) -> std::result::Result<TopicConfig, TopicError> {
        validate_topic_name(name)?;
        if self.get(name).is_some() {
            return Err(TopicError::Exists { name: name.into() });
        }
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
            return Err(TopicError::PartitionCount {
                asked: partitions,
                max: MAX_PARTITIONS_PER_TOPIC,
            });
        }
        self.cluster
            .state()
            .replication_factor(replication_factor)?;
        self.config_with(overrides)
    }

    /// Creates a topic through the controller; returns it once applied here.
    pub async fn create(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        overrides: BTreeMap<String, String>,
    ) -> std::result::Result<Arc<Topic>, TopicError> {
        let _change = self.change.lock().await;
        let partitions = if partitions == -1 {
            self.defaults.num_partitions
        } else {
            partitions
        };
        self.validate_create(name, partitions, replication_factor, &overrides)?;
        let cluster = &self.cluster;
        let record = MetaRecord::CreateTopic {
            request: cluster.request_id(),
            name: name.to_string(),
            id: Uuid::new_v4().to_string(),
            partitions,
            replication_factor,
            config: overrides,
        };
        cluster.submit(record, CONTROLLER_TIMEOUT).await?;
        self.await_map(cluster, |t| t.get(name).is_some()).await?;
        self.get(name)
            .ok_or_else(|| TopicError::DeletedMeanwhile { name: name.into() })
    }

    /// Deletes a topic through the controller; returns its id once applied here.
    pub async fn delete(&self, name: &str) -> std::result::Result<Uuid, TopicError> {
        refuse_internal(name)?;
        let _change = self.change.lock().await;
        let Some(topic) = self.get(name) else {
            return Err(TopicError::Unknown { name: name.into() });
        };
        let cluster = &self.cluster;
        let record = MetaRecord::DeleteTopic {
            request: cluster.request_id(),
            name: name.to_string(),
        };
        cluster.submit(record, CONTROLLER_TIMEOUT).await?;
        self.await_map(cluster, |t| t.get(name).is_none_or(|t| t.id != topic.id))
            .await?;
        Ok(topic.id)
    }

    /// Grows a topic to `count` partitions (Kafka never shrinks them).
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> std::result::Result<Vec<Arc<Partition>>, TopicError> {
        refuse_internal(name)?;
        let _change = self.change.lock().await;
        let Some(topic) = self.get(name) else {
            return Err(TopicError::Unknown { name: name.into() });
        };
        let have = topic.partitions.len() as i32;
        check_growth(name, have, count)?;
        if validate_only {
            return Ok(Vec::new());
        }
        let cluster = &self.cluster;
        let record = MetaRecord::CreatePartitions {
            request: cluster.request_id(),
            name: name.to_string(),
            count,
        };
        cluster.submit(record, CONTROLLER_TIMEOUT).await?;
        self.await_map(cluster, |t| {
            t.get(name)
                .is_some_and(|t| t.partitions.len() as i32 >= count)
        })
        .await?;
        let grown = self
            .get(name)
            .map(|t| t.partitions.clone())
            .unwrap_or_default();
        Ok(grown.into_iter().skip(have as usize).collect())
    }

    /// Replaces a topic's overrides (AlterConfigs / IncrementalAlterConfigs) through the
    /// controller; every replica applies them to its log.
    pub async fn set_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> std::result::Result<(), TopicError> {
        let _change = self.change.lock().await;
        if self.get(name).is_none() {
            return Err(TopicError::Unknown { name: name.into() });
        }
        let config = self.config_with(&overrides)?;
        if is_internal(name) && config.cleanup_policy != "compact" {
            return Err(TopicError::CompactOnly { name: name.into() });
        }
        if validate_only {
            return Ok(());
        }
        let cluster = &self.cluster;
        let record = MetaRecord::SetOverrides {
            request: cluster.request_id(),
            name: name.to_string(),
            config: overrides.clone(),
        };
        cluster.submit(record, CONTROLLER_TIMEOUT).await?;
        self.await_map(cluster, |t| {
            t.get(name).is_none_or(|t| t.overrides == overrides)
        })
        .await?;
        Ok(())
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

/// Removes a replica's directory (a missing one is fine).
fn remove_replica_files(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            warn!(dir = %dir.display(), error = %e, "removing a replica's files");
        }
    }
}

/// The (topic, partition) replicas `placed` puts on node `me`.
fn hosted_replicas(
    placed: &BTreeMap<String, TopicMeta>,
    me: u64,
) -> std::collections::HashSet<(String, i32)> {
    placed
        .iter()
        .flat_map(|(name, t)| {
            t.partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.hosts(me))
                .map(move |(i, _)| (name.clone(), i as i32))
        })
        .collect()
}

/// Removes the `<topic>-<n>` directories (that look like partition logs) for which
/// `keep` is false.
fn remove_partition_dirs_except(data_dir: &Path, keep: impl Fn(&str, i32) -> bool) {
    for path in partition_dirs_except(data_dir, keep) {
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {
                warn!(dir = %path.display(), "removed the files of a partition no topic owns")
            }
            Err(e) => warn!(dir = %path.display(), error = %e, "cannot remove an orphan partition"),
        }
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
