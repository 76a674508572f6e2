//! The group coordinator: Kafka's classic consumer-group protocol, with group metadata
//! and committed offsets stored as records in the compacted internal topic
//! `__consumer_offsets` ([`records`] has the layout, [`state`] the membership state
//! machine, `load` the loading of groups from that topic as leaderships move, `offsets`
//! OffsetCommit, OffsetFetch, OffsetDelete and offset expiry).
//!
//! ## Guarantees
//! - An OffsetCommit is answered once its records are durable in `__consumer_offsets`
//!   (the same `fdatasync` group commit as acks=all produce). A commit that was answered
//!   survives `kill -9` and power loss.
//! - A SyncGroup is answered once the leader's assignment is durable, so after a broker
//!   restart the group comes back Stable with the same generation and assignment, and
//!   members that keep heartbeating carry on without a rebalance.
//! - A group lives on partition `abs(javaHashCode(group)) % offsets.topic.num.partitions`,
//!   as in Kafka; its coordinator is the leader of that partition. A broker that becomes
//!   the leader replays the partition up to its high watermark (the latest record per
//!   key wins, tombstones delete) before it serves the partition's groups.
//!
//! ## Departures from Kafka (documented in docs/broker.md)
//! - An offset is visible to OffsetFetch from the moment it is appended, slightly before
//!   it is durable; the commit is only *answered* once durable.
//! - Offsets of an empty group expire `offsets.retention.minutes` after the later of
//!   the commit and the moment the group became empty (Kafka uses only the latter, which
//!   expires offsets an admin just reset on a long-empty group).

mod error;
mod load;
mod offsets;
pub mod records;
pub mod state;
mod txn_offsets;

pub use error::GroupError;
pub use offsets::{CommitEntry, CommitOutcome, Committer};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tracing::{info, warn};

use crate::cluster::{Cluster, ClusterError};
use crate::config::GroupConfig;
use crate::error::Result;
use crate::leadership::{Loaded, NotServed};
use crate::partition::{Partition, PartitionError, PartitionResult};
use crate::shutdown::Shutdown;
use crate::topics::Topics;
use records::{OffsetValue, RecordKey};
use state::{Answer, Group, GroupState, JoinParams, JoinResult, SyncParams, SyncResult};

use crate::topics::OFFSETS_TOPIC;
/// How often sessions, pending members and rebalance deadlines are checked.
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// How long an OffsetCommit or SyncGroup waits for its records to become durable
/// (Kafka's `offsets.commit.timeout.ms`).
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// A committed offset's place: topic and partition.
pub type TopicPartition = (String, i32);

/// OffsetFetch results: per topic, per partition, the committed offset if any.
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<OffsetValue>)>)>;

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberSummary {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups and ListGroups show it.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

/// What `/metrics` shows per group.
#[derive(Debug, Clone)]
pub struct GroupMetrics {
    pub group_id: String,
    pub state: GroupState,
    pub members: usize,
    pub generation: i32,
    /// Committed offset per partition.
    pub committed: Vec<(TopicPartition, i64)>,
}

/// Longest id (group, member, instance, protocol) the coordinator stores: records
/// keep them in int16-length strings, as Kafka does.
pub const MAX_ID_BYTES: usize = i16::MAX as usize;

/// A group id the coordinator accepts: not empty, and short enough to store.
fn valid_group_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_BYTES
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Locks a group. A group's lock is held while its records are appended to its
/// `__consumer_offsets` partition, which waits for the partition's Raft node, a task of
/// this runtime. A worker thread that blocked on a held lock would be one worker fewer
/// to run that node, and with every worker blocked so the node never runs and the holder
/// never lets go: a contended lock is waited for in `block_in_place`, which hands the
/// worker's other tasks to a new thread first.
fn lock(g: &Mutex<Group>) -> MutexGuard<'_, Group> {
    // Group operations never leave a group half-changed across a panic point that
    // matters more than answering: keep serving.
    match g.try_lock() {
        Ok(guard) => guard,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => {
            let wait = || g.lock().unwrap_or_else(|p| p.into_inner());
            let multi_thread = tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            if multi_thread {
                tokio::task::block_in_place(wait)
            } else {
                wait()
            }
        }
    }
}

/// Creates `__consumer_offsets`: compacted, `offsets.topic.num.partitions` partitions,
/// the default replication factor (up to three replicas).
pub async fn create_offsets_topic(
    cluster: &Cluster,
    topics: &Topics,
    config: &GroupConfig,
) -> std::result::Result<Arc<crate::topics::Topic>, ClusterError> {
    let overrides = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        (
            "segment.bytes".to_string(),
            config.offsets_topic_segment_bytes.to_string(),
        ),
    ]);
    cluster
        .create_topic(
            topics,
            OFFSETS_TOPIC,
            config.offsets_topic_partitions,
            -1,
            overrides,
        )
        .await
}

/// The group coordinator of this broker.
#[derive(Debug)]
pub struct Coordinator {
    config: GroupConfig,
    /// `__consumer_offsets` partitions, by index (set once the topic exists).
    partitions: std::sync::RwLock<Vec<Arc<Partition>>>,
    /// The partitions whose groups are loaded here, with the Raft term of the
    /// leadership they were loaded in. A group is served only while its partition is
    /// led here and loaded in the current term.
    loaded: Loaded,
    groups: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
}

impl Coordinator {
    /// A coordinator that serves the groups of the `__consumer_offsets` partitions this
    /// node leads, loading each partition's groups when it becomes the leader
    /// (`Coordinator::load_led_partitions`) and dropping them when it stops. Until the
    /// topic exists ([`Coordinator::set_partitions`]) it serves none.
    pub fn new(config: GroupConfig) -> Coordinator {
        Coordinator {
            config,
            partitions: std::sync::RwLock::new(Vec::new()),
            loaded: Loaded::default(),
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the `__consumer_offsets` partitions are known here.
    pub fn is_enabled(&self) -> bool {
        !self.partitions().is_empty()
    }

    /// The `__consumer_offsets` partitions, once the topic exists.
    pub fn set_partitions(&self, partitions: Vec<Arc<Partition>>) {
        *self.partitions.write().unwrap_or_else(|p| p.into_inner()) = partitions;
    }

    fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The `__consumer_offsets` partition index of `group` (None before the topic
    /// exists).
    pub fn partition_index(&self, group: &str) -> Option<(i32, Arc<Partition>)> {
        let parts = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        let index = records::partition_for(group, parts.len() as i32);
        parts.get(index as usize).map(|p| (index, p.clone()))
    }

    /// Ok when this broker coordinates `group` now: NOT_COORDINATOR unless it leads the
    /// group's partition, COORDINATOR_LOAD_IN_PROGRESS until that partition's groups are
    /// loaded, COORDINATOR_NOT_AVAILABLE before the topic exists.
    pub fn serves(&self, group: &str) -> std::result::Result<(), GroupError> {
        let Some((_, p)) = self.partition_index(group) else {
            return Err(GroupError::CoordinatorNotAvailable);
        };
        match self.loaded.serves(&p) {
            Ok(_) => Ok(()),
            Err(NotServed::NotLeader) => Err(GroupError::NotCoordinator),
            Err(NotServed::Loading) => Err(GroupError::LoadInProgress),
        }
    }

    /// Settings in force.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<String, Arc<Mutex<Group>>>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn partition_of(&self, group: &str) -> Option<Arc<Partition>> {
        self.partition_index(group).map(|(_, p)| p)
    }

    fn get(&self, group: &str) -> Option<Arc<Mutex<Group>>> {
        self.groups().get(group).cloned()
    }

    /// A group this broker coordinates that exists, with its `__consumer_offsets`
    /// partition: what deleting the group or its offsets starts from.
    fn existing(&self, group_id: &str) -> Result<(Arc<Mutex<Group>>, Arc<Partition>), GroupError> {
        self.serves(group_id)?;
        let group = self.get(group_id).ok_or_else(|| not_found(group_id))?;
        let partition = self
            .partition_of(group_id)
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        Ok((group, partition))
    }

    fn get_or_create(&self, group: &str) -> Arc<Mutex<Group>> {
        self.groups()
            .entry(group.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(Group::new(group, wall_ms()))))
            .clone()
    }

    /// Every group id known, sorted.
    pub fn group_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.groups().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Appends records (key, value or tombstone) to `partition` as one batch (of the
    /// transaction of `producer`, when given); the last offset written.
    fn append(
        partition: &Partition,
        records: Vec<(Bytes, Option<Bytes>)>,
        producer: Option<(i64, i16)>,
    ) -> PartitionResult<u64> {
        let records = records.into_iter().map(|(k, v)| (Some(k), v)).collect();
        let batch = match producer {
            Some(p) => crate::internal_batch::encode_transactional(records, wall_ms(), p),
            None => crate::internal_batch::encode(records, wall_ms()),
        }
        .map_err(|_| PartitionError::InvalidBatch("the coordinator's records do not encode"))?;
        partition.append(&batch).map(|a| a.last_offset)
    }

    /// Writes a group's metadata when it changed and releases waiting SyncGroups.
    fn after_change(&self, g: &mut Group) {
        let now = Instant::now();
        if !g.take_persist() {
            g.fire_syncs(Ok(None), now);
            return;
        }
        let Some(p) = self.partition_of(&g.id) else {
            g.fire_syncs(Err(GroupError::CoordinatorNotAvailable), now);
            return;
        };
        let key = RecordKey::Group {
            group: g.id.clone(),
        }
        .encode();
        match Self::append(&p, vec![(key, Some(g.to_value().encode()))], None) {
            Ok(at) => g.fire_syncs(Ok(Some(at)), now),
            Err(e) => {
                warn!(group = %g.id, error = %e, "storing group metadata failed");
                g.fire_syncs(Err(GroupError::from(e)), now);
                g.assignment_lost(now, wall_ms());
            }
        }
    }

    /// JoinGroup: an answer now, or a receiver that gets it when the rebalance completes.
    pub fn join(&self, group_id: &str, p: JoinParams) -> Answer<JoinResult> {
        let refuse = |e: GroupError, member_id: &str| Answer::Now(JoinResult::error(e, member_id));
        if !valid_group_id(group_id) {
            let invalid = GroupError::InvalidGroupId {
                group: group_id.to_string(),
            };
            return refuse(invalid, &p.member_id);
        }
        if let Err(e) = self.serves(group_id) {
            return refuse(e, &p.member_id);
        }
        let too_long = p.member_id.len() > MAX_ID_BYTES
            || p.instance_id
                .as_ref()
                .is_some_and(|i| i.len() > MAX_ID_BYTES)
            || p.protocol_type.len() > MAX_ID_BYTES
            || p.protocols.iter().any(|(n, _)| n.len() > MAX_ID_BYTES);
        if too_long {
            let max = MAX_ID_BYTES;
            return refuse(GroupError::IdTooLong { max }, &p.member_id);
        }
        let group = if p.member_id.is_empty() {
            self.get_or_create(group_id)
        } else {
            match self.get(group_id) {
                Some(g) => g,
                None => {
                    let unknown = GroupError::UnknownMember {
                        member: p.member_id.clone(),
                    };
                    return refuse(unknown, &p.member_id);
                }
            }
        };
        let mut g = lock(&group);
        let answer = g.join(p, &self.config, Instant::now(), wall_ms());
        self.after_change(&mut g);
        answer
    }

    /// SyncGroup, answered once the assignment is durable.
    pub async fn sync(&self, group_id: &str, p: SyncParams) -> SyncResult {
        if !valid_group_id(group_id) {
            return SyncResult::error(GroupError::InvalidGroupId {
                group: group_id.to_string(),
            });
        }
        if let Err(e) = self.serves(group_id) {
            return SyncResult::error(e);
        }
        let Some(group) = self.get(group_id) else {
            return SyncResult::error(GroupError::UnknownMember {
                member: p.member_id,
            });
        };
        let answer = {
            let mut g = lock(&group);
            let answer = g.sync(p, Instant::now(), wall_ms());
            self.after_change(&mut g);
            answer
        };
        let result = match answer {
            Answer::Now(r) => r,
            Answer::Wait(rx) => match rx.await {
                Ok(r) => r,
                Err(_) => return SyncResult::error(GroupError::CoordinatorNotAvailable),
            },
        };
        if let (Some(at), Some(p)) = (result.durable_at, self.partition_of(group_id)) {
            if let Err(e) = p.wait_durable(at, COMMIT_TIMEOUT).await {
                return SyncResult::error(GroupError::from(e));
            }
        }
        result
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.check_group_id(group_id)?;
        self.serves(group_id)?;
        let Some(group) = self.get(group_id) else {
            return Err(GroupError::UnknownMember {
                member: member_id.to_string(),
            });
        };
        let mut g = lock(&group);
        let outcome = g.heartbeat(member_id, instance_id, generation, Instant::now());
        self.after_change(&mut g);
        outcome
    }

    /// LeaveGroup: the group-level refusal, or one outcome per leaving member.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.check_group_id(group_id)?;
        self.serves(group_id)?;
        let Some(group) = self.get(group_id) else {
            let unknown = |(id, _): &(String, Option<String>)| {
                Err(GroupError::UnknownMember { member: id.clone() })
            };
            return Ok(members.iter().map(unknown).collect());
        };
        let mut g = lock(&group);
        let (now, wall) = (Instant::now(), wall_ms());
        let outcomes = members
            .iter()
            .map(|(id, instance)| g.leave(id, instance.as_deref(), now, wall))
            .collect();
        self.after_change(&mut g);
        Ok(outcomes)
    }

    fn check_group_id(&self, group_id: &str) -> Result<(), GroupError> {
        if valid_group_id(group_id) {
            Ok(())
        } else {
            Err(GroupError::InvalidGroupId {
                group: group_id.to_string(),
            })
        }
    }

    /// A group as DescribeGroups shows it (`Dead` with no members when unknown).
    pub fn describe(&self, group_id: &str) -> GroupSummary {
        let Some(group) = self.get(group_id) else {
            return GroupSummary {
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let g = lock(&group);
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol.clone().unwrap_or_default();
        let members = g
            .members
            .values()
            .map(|m| MemberSummary {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                // Kafka shows metadata and assignment only once the group is stable.
                metadata: if stable {
                    m.protocols
                        .iter()
                        .find(|(n, _)| *n == protocol)
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default()
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        GroupSummary {
            group_id: g.id.clone(),
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { protocol } else { String::new() },
            members,
        }
    }

    /// Every group's id, state and protocol type.
    pub fn list(&self) -> Vec<(String, GroupState, String)> {
        let groups: Vec<Arc<Mutex<Group>>> = self.groups().values().cloned().collect();
        let mut out: Vec<(String, GroupState, String)> = groups
            .iter()
            .map(|g| {
                let g = lock(g);
                (
                    g.id.clone(),
                    g.state,
                    g.protocol_type.clone().unwrap_or_default(),
                )
            })
            .filter(|(_, s, _)| *s != GroupState::Dead)
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// DeleteGroups: only empty groups; their offsets and metadata get tombstones.
    pub async fn delete(&self, group_id: &str) -> Result<(), GroupError> {
        let (group, partition) = self.existing(group_id)?;
        let written = {
            let mut g = lock(&group);
            match g.state {
                GroupState::Dead => return Err(not_found(group_id)),
                GroupState::Empty => {}
                _ => {
                    return Err(GroupError::NonEmptyGroup {
                        group: group_id.to_string(),
                    })
                }
            }
            let mut tombstones: Vec<(Bytes, Option<Bytes>)> = g
                .offsets
                .keys()
                .map(|(topic, p)| {
                    let key = RecordKey::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: *p,
                    };
                    (key.encode(), None)
                })
                .collect();
            tombstones.push((
                RecordKey::Group {
                    group: group_id.to_string(),
                }
                .encode(),
                None,
            ));
            let written = Self::append(&partition, tombstones, None);
            if written.is_ok() {
                g.offsets.clear();
                g.state = GroupState::Dead;
            }
            written
        };
        if written.is_ok() {
            // The map lock is never taken while a group's lock is held.
            self.groups()
                .retain(|id, g| id != group_id || !Arc::ptr_eq(g, &group));
        }
        let outcome = match written {
            Ok(last) => partition.wait_durable(last, COMMIT_TIMEOUT).await,
            Err(e) => Err(e),
        };
        outcome.map_err(GroupError::from)?;
        info!(group = group_id, "group deleted");
        Ok(())
    }

    /// One pass of session and rebalance deadlines over every group.
    pub fn expire_sessions(&self) {
        let groups: Vec<Arc<Mutex<Group>>> = self.groups().values().cloned().collect();
        let (now, wall) = (Instant::now(), wall_ms());
        for group in groups {
            let mut g = lock(&group);
            g.expire(now, wall);
            self.after_change(&mut g);
        }
    }

    /// Per-group figures for `/metrics`.
    pub fn metrics(&self) -> Vec<GroupMetrics> {
        let groups: Vec<Arc<Mutex<Group>>> = self.groups().values().cloned().collect();
        groups
            .iter()
            .map(|g| {
                let g = lock(g);
                GroupMetrics {
                    group_id: g.id.clone(),
                    state: g.state,
                    members: g.members.len(),
                    generation: g.generation,
                    committed: g
                        .offsets
                        .iter()
                        .map(|(k, c)| (k.clone(), c.value.offset))
                        .collect(),
                }
            })
            .collect()
    }

    /// Answers every waiting JoinGroup and SyncGroup with NOT_COORDINATOR (shutdown).
    pub fn unload(&self) {
        let groups: Vec<Arc<Mutex<Group>>> = self.groups().values().cloned().collect();
        for group in groups {
            lock(&group).unload();
        }
    }

    /// Drives sessions, rebalance deadlines and offset retention until shutdown.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut tick = tokio::time::interval(TICK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_retention = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait() => {
                    self.unload();
                    return;
                }
            }
            // Replaying a partition reads its log: off the async threads.
            tokio::task::block_in_place(|| self.follow_leadership());
            self.expire_sessions();
            if last_retention.elapsed() >= self.config.offsets_retention_check_interval {
                last_retention = Instant::now();
                let n = self.expire_offsets(wall_ms());
                if n > 0 {
                    info!(offsets = n, "expired committed offsets");
                }
            }
        }
    }
}

fn not_found(group_id: &str) -> GroupError {
    GroupError::GroupNotFound {
        group: group_id.to_string(),
    }
}
