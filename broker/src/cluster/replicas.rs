//! This node's replicas follow the controller's placement: each applied change to the
//! topics opens the replicas placed here (the others are served as remote), applies
//! config changes, and closes and removes the replicas of deleted topics or of moves
//! that took them elsewhere ([`Cluster::reconcile`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tracing::{info, warn};
use uuid::Uuid;

use super::metadata::{Change, PartitionMeta, TopicMeta};
use super::Cluster;
use crate::config::TopicConfig;
use crate::partition::Partition;
use crate::topics::{partition_dirs_except, Topic, Topics};

impl Cluster {
    /// Brings the map in line with one applied controller change: opens this node's
    /// replicas of a new or grown topic (others are remote), applies a config change,
    /// closes and removes the replicas of a deleted topic.
    pub async fn reconcile(self: &Arc<Self>, topics: &Topics, change: Change) {
        match change {
            Change::Topic(name) => {
                let meta = self.state().topics.get(&name).cloned();
                if let Some(meta) = meta {
                    self.install(topics, &name, meta).await;
                }
            }
            Change::TopicDeleted(name, meta) => self.uninstall(topics, &name, &meta).await,
            Change::Transfer(group, to) => self.transfer_if_leading(group, to).await,
            Change::All => {
                let placed = self.state().topics.clone();
                let gone: Vec<Arc<Topic>> = topics
                    .all()
                    .into_iter()
                    .filter(|t| !placed.contains_key(&*t.name))
                    .collect();
                for t in gone {
                    let meta = self.local_meta(&t);
                    self.uninstall(topics, &t.name, &meta).await;
                }
                for (name, meta) in placed {
                    self.install(topics, &name, meta).await;
                }
            }
            Change::PruneReplicas => {
                // Replicas this broker lost while it was behind (a move that ended, a
                // topic deleted): the checkpoint it jumped to covers everything it ever
                // applied and places none of them.
                let hosted = hosted_replicas(&self.state().topics, self.node_id);
                remove_partition_dirs_except(topics.data_dir(), |topic, index| {
                    hosted.contains(&(topic.to_string(), index))
                });
            }
            Change::None | Change::Brokers | Change::Leader(_) => {}
        }
    }

    async fn install(self: &Arc<Self>, topics: &Topics, name: &str, meta: TopicMeta) {
        let existing = topics.get(name);
        let config = topics.config_with(&meta.config).unwrap_or_else(|e| {
            warn!(topic = name, error = %e, "invalid topic config in the controller; using the defaults");
            // An audit topic stays one (append-only, with its tree) whatever else fails.
            let mut defaults = topics.defaults().log.clone();
            if crate::config::audit_override(&meta.config) {
                defaults.make_audit();
            }
            defaults
        });
        let topic_name: Arc<str> = name.into();
        let me = self.node_id;
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
                        if let Err(e) = p.set_config(&config) {
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
                    self.drop_replica(topics, name, index, placed.group, Some(p))
                        .await;
                }
                _ => {}
            }
            let p = if placed.hosts(me) {
                self.open_hosted(topics, &topic_name, index, placed, &config)
                    .await
            } else {
                Partition::remote(
                    topic_name.clone(),
                    index,
                    topics.shared().clone(),
                    placed.group,
                )
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
        topics.insert(topic);
        info!(topic = name, "topic applied from the controller");
    }

    /// Opens this broker's replica of `placed` (served as remote if it cannot be
    /// opened). A replica a move is adding starts with no configuration: the group's
    /// leader initializes it (a snapshot, then the log).
    async fn open_hosted(
        self: &Arc<Self>,
        topics: &Topics,
        topic: &Arc<str>,
        index: i32,
        placed: &PartitionMeta,
        config: &TopicConfig,
    ) -> Arc<Partition> {
        let me = self.node_id;
        let original = placed.replicas.contains(&me);
        let voters: &[u64] = if original { &placed.replicas } else { &[] };
        let rejoin = match self.replicas_rejoin() {
            Ok(r) => r,
            Err(e) => {
                warn!(topic = %topic, partition = index, error = %e, "cannot record this node's standing; serving the replica as remote");
                return Partition::remote(
                    topic.clone(),
                    index,
                    topics.shared().clone(),
                    placed.group,
                );
            }
        };
        let opened = Partition::open_replica(
            topic.clone(),
            index,
            &topics.partition_dir(topic, index),
            config,
            topics.shared().clone(),
            self.node.clone(),
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
                    let _ = self.node.campaign(placed.group).await;
                }
                if let Some(view) = self.node.watch(placed.group).await {
                    tokio::spawn(self.clone().report_leadership(placed.group, view));
                }
                p
            }
            Err(e) => {
                warn!(topic = %topic, partition = index, error = %e, "cannot open a replica placed here; serving it as remote");
                Partition::remote(topic.clone(), index, topics.shared().clone(), placed.group)
            }
        }
    }

    /// Stops this broker's replica of group `group` and removes its files (its topic
    /// was deleted, or a move took the replica elsewhere).
    async fn drop_replica(
        &self,
        topics: &Topics,
        name: &str,
        index: i32,
        group: u64,
        partition: Option<&Arc<Partition>>,
    ) {
        // Dropping the group ends its view, and the tasks that follow it.
        drop(self.node.remove_group(group).await);
        if let Some(p) = partition {
            if let Err(e) = p.close() {
                warn!(error = %e, "closing a removed replica");
            }
        }
        remove_replica_files(&topics.partition_dir(name, index));
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
        let me = self.node_id;
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

    async fn uninstall(&self, topics: &Topics, name: &str, meta: &TopicMeta) {
        let removed = topics.remove(name);
        for (i, placed) in meta.partitions.iter().enumerate() {
            if !placed.hosts(self.node_id) {
                continue;
            }
            let p = removed.as_ref().and_then(|t| t.partitions.get(i));
            self.drop_replica(topics, name, i as i32, placed.group, p)
                .await;
        }
        info!(topic = name, "topic deleted by the controller");
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
