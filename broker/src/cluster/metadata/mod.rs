//! The cluster metadata state machine: what the controller group's committed records
//! say about brokers, topics, partition placement and partition leaders.
//!
//! Every broker applies the same committed records in the same order, so every broker
//! holds the same state. Decisions that must agree everywhere (partition group ids,
//! replica placement, whether a creation is refused) are made here, at apply time, from
//! the state alone; the broker that proposed a record only learns its outcome by
//! watching [`MetadataState::outcome`] of its request id.
//!
//! Records are JSON (`serde_json`) in the value of a one-record Kafka batch: the
//! controller's Raft log is a partition log like any other (KRaft does the same with
//! `__cluster_metadata`).

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::ClusterError;

pub mod users;
use crate::topics::{check_growth, validate_topic_name, TopicError, MAX_PARTITIONS_PER_TOPIC};

/// Raft group id of the controller (group 0 is the node liveness channel).
pub const CONTROLLER_GROUP: u64 = 1;
/// The first group id given to a partition.
pub const FIRST_PARTITION_GROUP: u64 = 1000;
/// Replication factor of a topic created with -1 ("the broker's default").
pub const DEFAULT_REPLICATION_FACTOR: usize = 3;
/// Producer ids one [`MetaRecord::AllocateProducerIds`] grants.
pub const PRODUCER_ID_BLOCK: i64 = 1000;
/// Outcomes of requests kept for their proposers to find (oldest dropped first).
pub const OUTCOMES_KEPT: usize = 4096;
/// Partitions one record may create (bounds the work one request causes).
pub const MAX_PARTITIONS_PER_RECORD: i32 = MAX_PARTITIONS_PER_TOPIC;

/// One change to the cluster metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetaRecord {
    /// A broker announces the Kafka address clients must use for it, and its admin
    /// HTTP address (for `strata cluster status`).
    RegisterBroker {
        id: u64,
        host: String,
        port: i32,
        #[serde(default)]
        admin: String,
        /// The incarnation of the broker's data directory (empty from releases before
        /// identities): a node that registers with a new one lost its directory.
        #[serde(default)]
        incarnation: String,
        /// The address of each of its listeners by name (empty from releases before
        /// listeners: `host`/`port` then serve every listener).
        #[serde(default)]
        listeners: BTreeMap<String, Endpoint>,
    },
    /// Creates a topic; groups and replicas are chosen when it is applied.
    CreateTopic {
        request: u64,
        name: String,
        /// Chosen by the proposer, so every broker reports the same topic id.
        id: String,
        partitions: i32,
        /// -1: [`DEFAULT_REPLICATION_FACTOR`], capped at the brokers registered.
        replication_factor: i16,
        config: BTreeMap<String, String>,
    },
    DeleteTopic {
        request: u64,
        name: String,
    },
    /// Grows a topic to `count` partitions.
    CreatePartitions {
        request: u64,
        name: String,
        count: i32,
    },
    /// Replaces a topic's config overrides (validated by the proposer).
    SetOverrides {
        request: u64,
        name: String,
        config: BTreeMap<String, String>,
    },
    /// A replica became the leader of a partition's group in `term` (reported by the
    /// leader, so brokers without a replica can answer Metadata).
    Leader {
        group: u64,
        leader: u64,
        term: u64,
    },
    /// The cluster's id, as every broker reports it to clients (the first one
    /// applied wins; brokers propose a random one until one is).
    ClusterId {
        id: String,
    },
    /// Asks whoever leads `group` to hand leadership to `to` (leader balancing). Acted
    /// on by the node that leads the group when it applies the record; no state.
    TransferLeader {
        group: u64,
        to: u64,
    },
    /// Starts moving a partition to the brokers `to` (the first is its preferred
    /// leader). The partition's leader carries the move out ([`crate::cluster::Cluster::drive_moves`])
    /// and ends it with [`MetaRecord::MoveDone`].
    MovePartition {
        request: u64,
        topic: String,
        partition: i32,
        to: Vec<u64>,
    },
    /// The leader of `group` finished its move: the group's voters are `replicas`.
    MoveDone {
        group: u64,
        replicas: Vec<u64>,
    },
    /// Grants `node` the next block of [`PRODUCER_ID_BLOCK`] producer ids (Kafka's
    /// AllocateProducerIds): the node hands them out to InitProducerId.
    AllocateProducerIds {
        request: u64,
        node: u64,
    },
    /// Takes in a single broker's topics when its data directory becomes a one-voter
    /// cluster's (`crate::convert`): the cluster id it gave clients, every topic with
    /// its id and overrides, placed on `node` alone, and the producer ids it may have
    /// handed out (ids below `next_producer_id` are never granted again). Applied whole
    /// or not at all; applied again (a conversion resumed after a crash) it changes
    /// nothing.
    Import {
        request: u64,
        node: u64,
        cluster_id: String,
        topics: Vec<ImportedTopic>,
        next_producer_id: i64,
    },
    /// Sets and removes users' SCRAM credentials (validated by the proposer).
    AlterScramCredentials {
        request: u64,
        upserts: Vec<users::ScramUpsert>,
        deletions: Vec<users::ScramDeletion>,
    },
    /// Adds ACLs (validated by the proposer).
    CreateAcls {
        request: u64,
        acls: Vec<crate::acl::AclBinding>,
    },
    /// Removes ACLs: those the proposer found matching DeleteAcls' filters.
    DeleteAcls {
        request: u64,
        acls: Vec<crate::acl::AclBinding>,
    },
    /// Sets and removes client quotas (validated by the proposer).
    AlterClientQuotas {
        request: u64,
        changes: Vec<crate::quota::QuotaChange>,
    },
    /// The whole state after the record at offset `through`: the controller's snapshot,
    /// kept in its own log. Valid only when it directly follows that record (its offset
    /// is `through + 1`); then every broker holds exactly this state after applying it,
    /// and the log before it may go ([`MetadataState::apply_at`]).
    Checkpoint {
        through: u64,
        state: Box<MetadataState>,
    },
}

impl MetaRecord {
    pub fn encode(&self) -> Vec<u8> {
        // Serializing these plain types into a Vec cannot fail (no maps with non-string
        // keys, no I/O).
        serde_json::to_vec(self).expect("metadata records always serialize")
    }

    pub fn decode(bytes: &[u8]) -> Result<MetaRecord, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// The proposer's request id, for records that answer one.
    pub fn request(&self) -> Option<u64> {
        match self {
            MetaRecord::CreateTopic { request, .. }
            | MetaRecord::DeleteTopic { request, .. }
            | MetaRecord::CreatePartitions { request, .. }
            | MetaRecord::SetOverrides { request, .. }
            | MetaRecord::MovePartition { request, .. }
            | MetaRecord::AllocateProducerIds { request, .. }
            | MetaRecord::AlterScramCredentials { request, .. }
            | MetaRecord::CreateAcls { request, .. }
            | MetaRecord::DeleteAcls { request, .. }
            | MetaRecord::AlterClientQuotas { request, .. }
            | MetaRecord::Import { request, .. } => Some(*request),
            MetaRecord::RegisterBroker { .. }
            | MetaRecord::MoveDone { .. }
            | MetaRecord::Checkpoint { .. }
            | MetaRecord::Leader { .. }
            | MetaRecord::TransferLeader { .. }
            | MetaRecord::ClusterId { .. } => None,
        }
    }
}

/// A topic of [`MetaRecord::Import`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedTopic {
    pub name: String,
    pub id: String,
    pub partitions: i32,
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerMeta {
    pub host: String,
    pub port: i32,
    /// Admin HTTP address (empty when the broker did not say).
    pub admin: String,
    /// The incarnation of its data directory (see `crate::identity`).
    #[serde(default)]
    pub incarnation: String,
    /// Its listeners' advertised addresses by listener name.
    #[serde(default)]
    pub listeners: BTreeMap<String, Endpoint>,
}

/// A host and port clients connect to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: i32,
}

impl BrokerMeta {
    /// Where a client of `listener` reaches this broker: `None` when the broker has no
    /// listener of that name (as Kafka, it is then left out of that client's view). A
    /// registration from before listeners serves every listener at `host:port`.
    pub fn endpoint(&self, listener: &str) -> Option<(&str, i32)> {
        if self.listeners.is_empty() {
            return Some((&self.host, self.port));
        }
        self.listeners
            .get(listener)
            .map(|e| (e.host.as_str(), e.port))
    }
}

/// One partition: its Raft group and the brokers holding its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    pub group: u64,
    pub replicas: Vec<u64>,
    /// Where a move under way takes the partition (`strata partition move`).
    #[serde(default)]
    pub target: Option<Vec<u64>>,
}

impl PartitionMeta {
    /// Whether `node` holds (or is receiving) a replica: it is in the replicas or in
    /// the target of a move.
    pub fn hosts(&self, node: u64) -> bool {
        self.replicas.contains(&node) || self.target.as_ref().is_some_and(|t| t.contains(&node))
    }

    /// The replicas and, during a move, the brokers being added (as Kafka's Metadata
    /// lists them while a reassignment is under way).
    pub fn all_replicas(&self) -> Vec<u64> {
        let mut all = self.replicas.clone();
        for &n in self.target.iter().flatten() {
            if !all.contains(&n) {
                all.push(n);
            }
        }
        all
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub id: String,
    pub config: BTreeMap<String, String>,
    pub partitions: Vec<PartitionMeta>,
}

/// Why a request was refused, as every replica records it and a client is answered: a
/// Kafka error code and a message (made from a [`ClusterError`] by `crate::kafka_codes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: i16,
    pub message: String,
}

/// What an applied record changed, for the broker to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    None,
    Brokers,
    /// A topic appeared, grew or changed config.
    Topic(String),
    /// A topic went away, with the partitions it had.
    TopicDeleted(String, TopicMeta),
    Leader(u64),
    /// Leadership of group .0 should move to node .1.
    Transfer(u64, u64),
    /// A checkpoint replaced the state (a broker that fell behind, or replaying from
    /// one): bring every topic in line.
    All,
    /// After [`Change::All`] from a checkpoint this node *jumped* to (it fell behind the
    /// leader's log start): the state covers everything this node ever applied, so
    /// replica directories it does not place are leftovers to remove. Never after a
    /// checkpoint replayed from its own log at a start: records this node applied
    /// before stopping may lie past it, and their replicas hold data.
    PruneReplicas,
}

/// The replicated cluster metadata.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataState {
    #[serde(with = "as_pairs")]
    pub brokers: BTreeMap<u64, BrokerMeta>,
    pub topics: BTreeMap<String, TopicMeta>,
    /// The latest leader reported per partition group, with its term.
    #[serde(with = "as_pairs")]
    pub leaders: HashMap<u64, (u64, u64)>,
    /// Set by the first applied [`MetaRecord::ClusterId`].
    pub cluster_id: Option<String>,
    /// The first producer id no block has been granted yet.
    #[serde(default)]
    pub next_producer_id: i64,
    /// Per node, the first id of the last block granted to it.
    #[serde(default, with = "as_pairs")]
    pub producer_blocks: HashMap<u64, i64>,
    /// Users' SCRAM credentials.
    #[serde(default)]
    pub scram: users::ScramUsers,
    /// The ACLs the authorizer decides by.
    #[serde(default)]
    pub acls: crate::acl::Acls,
    /// Client quotas by user and client id.
    #[serde(default)]
    pub quotas: crate::quota::ClientQuotas,
    next_group: u64,
    #[serde(with = "as_pairs")]
    outcomes: HashMap<u64, Result<(), Refusal>>,
    outcome_order: VecDeque<u64>,
}

impl MetadataState {
    pub fn new() -> MetadataState {
        MetadataState {
            next_group: FIRST_PARTITION_GROUP,
            ..Default::default()
        }
    }

    /// The outcome of request `request`, once its record was applied.
    pub fn outcome(&self, request: u64) -> Option<&Result<(), Refusal>> {
        self.outcomes.get(&request)
    }

    /// Applies the committed record stored at `offset` of the controller log. Returns
    /// the change, and whether the record was a valid checkpoint (the log before it is
    /// no longer needed).
    pub fn apply_at(&mut self, offset: u64, record: MetaRecord) -> (Change, bool) {
        match record {
            MetaRecord::Checkpoint { through, state } => {
                if through.checked_add(1) != Some(offset) {
                    // Records were committed between the state's and the checkpoint's
                    // place in the log: it would undo them. The leader tries again.
                    return (Change::None, false);
                }
                if *state == *self {
                    return (Change::None, true);
                }
                *self = *state;
                (Change::All, true)
            }
            other => (self.apply(other), false),
        }
    }

    /// Applies one committed record (a checkpoint only through [`MetadataState::apply_at`]).
    pub fn apply(&mut self, record: MetaRecord) -> Change {
        let request = record.request();
        if request.is_some_and(|r| self.outcomes.contains_key(&r)) {
            // A request sent again while its first copy was on the way: applied once.
            return Change::None;
        }
        let (outcome, change): (Result<(), ClusterError>, Change) = match record {
            MetaRecord::Checkpoint { .. } => return Change::None,
            MetaRecord::TransferLeader { group, to } => return Change::Transfer(group, to),
            MetaRecord::ClusterId { id } => {
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(id);
                }
                return Change::None;
            }
            MetaRecord::RegisterBroker {
                id,
                host,
                port,
                admin,
                incarnation,
                listeners,
            } => {
                let meta = BrokerMeta {
                    host,
                    port,
                    admin,
                    incarnation,
                    listeners,
                };
                if self.brokers.get(&id) == Some(&meta) {
                    return Change::None;
                }
                self.brokers.insert(id, meta);
                return Change::Brokers;
            }
            MetaRecord::Leader {
                group,
                leader,
                term,
            } => {
                let newer = self.leaders.get(&group).is_none_or(|&(_, t)| term >= t);
                if !newer {
                    return Change::None;
                }
                self.leaders.insert(group, (leader, term));
                return Change::Leader(group);
            }
            MetaRecord::CreateTopic {
                name,
                id,
                partitions,
                replication_factor,
                config,
                ..
            } => match self.create_topic(&name, id, partitions, replication_factor, config) {
                Ok(()) => (Ok(()), Change::Topic(name)),
                Err(r) => (Err(r.into()), Change::None),
            },
            MetaRecord::DeleteTopic { name, .. } => match self.topics.remove(&name) {
                Some(t) => {
                    for p in &t.partitions {
                        self.leaders.remove(&p.group);
                    }
                    (Ok(()), Change::TopicDeleted(name, t))
                }
                None => (Err(TopicError::Unknown { name }.into()), Change::None),
            },
            MetaRecord::CreatePartitions { name, count, .. } => {
                match self.create_partitions(&name, count) {
                    Ok(()) => (Ok(()), Change::Topic(name)),
                    Err(r) => (Err(r.into()), Change::None),
                }
            }
            MetaRecord::SetOverrides { name, config, .. } => match self.topics.get_mut(&name) {
                Some(t) => {
                    t.config = config;
                    (Ok(()), Change::Topic(name))
                }
                None => (Err(TopicError::Unknown { name }.into()), Change::None),
            },
            MetaRecord::MovePartition {
                topic,
                partition,
                to,
                ..
            } => match self.start_move(&topic, partition, to) {
                Ok(changed) => (
                    Ok(()),
                    if changed {
                        Change::Topic(topic)
                    } else {
                        Change::None
                    },
                ),
                Err(r) => (Err(r.into()), Change::None),
            },
            MetaRecord::AllocateProducerIds { node, .. } => {
                let start = self.next_producer_id;
                match start.checked_add(PRODUCER_ID_BLOCK) {
                    Some(end) => {
                        self.next_producer_id = end;
                        self.producer_blocks.insert(node, start);
                        (Ok(()), Change::None)
                    }
                    None => (Err(ClusterError::ProducerIdsExhausted), Change::None),
                }
            }
            MetaRecord::AlterScramCredentials {
                upserts, deletions, ..
            } => {
                self.scram.apply(upserts, deletions);
                (Ok(()), Change::None)
            }
            MetaRecord::CreateAcls { acls, .. } => {
                self.acls.create(acls);
                (Ok(()), Change::None)
            }
            MetaRecord::DeleteAcls { acls, .. } => {
                self.acls.delete(&acls);
                (Ok(()), Change::None)
            }
            MetaRecord::AlterClientQuotas { changes, .. } => {
                self.quotas.apply(changes);
                (Ok(()), Change::None)
            }
            MetaRecord::Import {
                node,
                cluster_id,
                topics,
                next_producer_id,
                ..
            } => match self.import(node, cluster_id, topics, next_producer_id) {
                Ok(true) => (Ok(()), Change::All),
                Ok(false) => (Ok(()), Change::None),
                Err(r) => (Err(r), Change::None),
            },
            MetaRecord::MoveDone { group, replicas } => {
                for (name, t) in &mut self.topics {
                    if let Some(p) = t.partitions.iter_mut().find(|p| p.group == group) {
                        if p.target.as_ref() != Some(&replicas) {
                            // A report resent after the move ended: nothing to do.
                            return Change::None;
                        }
                        p.replicas = replicas;
                        p.target = None;
                        return Change::Topic(name.clone());
                    }
                }
                return Change::None;
            }
        };
        if let Some(request) = request {
            self.record_outcome(request, outcome.map_err(|e| Refusal::from(&e)));
        }
        change
    }

    fn record_outcome(&mut self, request: u64, outcome: Result<(), Refusal>) {
        if self.outcomes.insert(request, outcome).is_none() {
            self.outcome_order.push_back(request);
        }
        while self.outcome_order.len() > OUTCOMES_KEPT {
            if let Some(old) = self.outcome_order.pop_front() {
                self.outcomes.remove(&old);
            }
        }
    }

    /// The replication factor a topic created with `asked` gets (-1: the default, at
    /// most the brokers registered); an error when the brokers cannot hold it.
    pub(crate) fn replication_factor(&self, asked: i16) -> Result<usize, TopicError> {
        let brokers = self.brokers.len();
        let rf = if asked == -1 {
            DEFAULT_REPLICATION_FACTOR.min(brokers)
        } else {
            usize::try_from(asked).unwrap_or(0)
        };
        if rf == 0 || rf > brokers {
            return Err(TopicError::ReplicationFactor { asked, brokers });
        }
        Ok(rf)
    }

    fn create_topic(
        &mut self,
        name: &str,
        id: String,
        partitions: i32,
        replication_factor: i16,
        config: BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        validate_topic_name(name)?;
        if self.topics.contains_key(name) {
            return Err(TopicError::Exists { name: name.into() });
        }
        if !(1..=MAX_PARTITIONS_PER_RECORD).contains(&partitions) {
            return Err(TopicError::PartitionCount {
                asked: partitions,
                max: MAX_PARTITIONS_PER_RECORD,
            });
        }
        let rf = self.replication_factor(replication_factor)?;
        let placed = self.place(partitions, rf);
        self.topics.insert(
            name.to_string(),
            TopicMeta {
                id,
                config,
                partitions: placed,
            },
        );
        Ok(())
    }

    /// Applies [`MetaRecord::Import`]: checks everything first, so it changes all or
    /// nothing. Returns whether anything changed.
    fn import(
        &mut self,
        node: u64,
        cluster_id: String,
        topics: Vec<ImportedTopic>,
        next_producer_id: i64,
    ) -> Result<bool, ClusterError> {
        if let Some(theirs) = self.cluster_id.as_ref().filter(|&c| *c != cluster_id) {
            let e = ClusterError::ClusterIdMismatch {
                ours: cluster_id,
                theirs: theirs.clone(),
            };
            return Err(e);
        }
        let mut new = Vec::new();
        for t in topics {
            validate_topic_name(&t.name)?;
            if !(1..=MAX_PARTITIONS_PER_RECORD).contains(&t.partitions) {
                return Err(TopicError::PartitionCount {
                    asked: t.partitions,
                    max: MAX_PARTITIONS_PER_RECORD,
                }
                .into());
            }
            match self.topics.get(&t.name) {
                Some(have) if have.id == t.id => {}
                Some(_) => return Err(TopicError::Exists { name: t.name }.into()),
                None => new.push(t),
            }
        }
        let changed = self.cluster_id.is_none()
            || !new.is_empty()
            || next_producer_id > self.next_producer_id;
        self.cluster_id = Some(cluster_id);
        self.next_producer_id = self.next_producer_id.max(next_producer_id);
        for t in new {
            let partitions = (0..t.partitions)
                .map(|_| {
                    let group = self.next_group;
                    self.next_group += 1;
                    PartitionMeta {
                        group,
                        replicas: vec![node],
                        target: None,
                    }
                })
                .collect();
            let meta = TopicMeta {
                id: t.id,
                config: t.config,
                partitions,
            };
            self.topics.insert(t.name, meta);
        }
        Ok(changed)
    }

    fn create_partitions(&mut self, name: &str, count: i32) -> Result<(), TopicError> {
        let Some(t) = self.topics.get(name) else {
            return Err(TopicError::Unknown { name: name.into() });
        };
        let have = t.partitions.len() as i32;
        check_growth(name, have, count)?;
        let rf = t
            .partitions
            .first()
            .map_or(1, |p| p.replicas.len())
            .min(self.brokers.len().max(1));
        let added = self.place(count - have, rf);
        if let Some(t) = self.topics.get_mut(name) {
            t.partitions.extend(added);
        }
        Ok(())
    }

    /// Records a move of `topic`'s partition `partition` to `to`. Returns whether the
    /// placement changed (a move to the same brokers in another order only changes the
    /// preferred leader, at once).
    fn start_move(
        &mut self,
        topic: &str,
        partition: i32,
        to: Vec<u64>,
    ) -> Result<bool, TopicError> {
        let unknown = || TopicError::UnknownPartition {
            topic: topic.into(),
            partition,
        };
        let brokers = &self.brokers;
        let t = self.topics.get_mut(topic).ok_or_else(unknown)?;
        let p = usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get_mut(i))
            .ok_or_else(unknown)?;
        let invalid = TopicError::InvalidAssignment;
        if to.is_empty() {
            return Err(invalid("the new replica list is empty".into()));
        }
        let mut sorted = to.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != to.len() {
            return Err(invalid(format!("{to:?} names a broker twice")));
        }
        if let Some(n) = to.iter().find(|n| !brokers.contains_key(n)) {
            return Err(invalid(format!("broker {n} is not registered")));
        }
        if let Some(target) = &p.target {
            return Err(TopicError::MoveInProgress {
                topic: topic.into(),
                partition,
                target: target.clone(),
            });
        }
        if p.replicas == to {
            return Ok(false);
        }
        let mut current = p.replicas.clone();
        current.sort_unstable();
        if current == sorted {
            p.replicas = to;
        } else {
            p.target = Some(to);
        }
        Ok(true)
    }

    /// The moves under way: (group, target).
    pub fn moves(&self) -> Vec<(u64, Vec<u64>)> {
        self.topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter_map(|p| Some((p.group, p.target.clone()?)))
            .collect()
    }

    /// Places `count` new partitions on `rf` brokers each: a partition's replicas are
    /// `rf` consecutive brokers starting at a position that moves on by one with every
    /// partition placed (its group id), so replicas and first replicas (the preferred
    /// leaders) spread evenly over any number of brokers.
    fn place(&mut self, count: i32, rf: usize) -> Vec<PartitionMeta> {
        let ids: Vec<u64> = self.brokers.keys().copied().collect();
        let n = ids.len().max(1);
        (0..count)
            .map(|_| {
                let group = self.next_group;
                self.next_group += 1;
                let start = group as usize % n;
                let replicas = (0..rf.min(ids.len()))
                    .map(|k| ids[(start + k) % n])
                    .collect();
                PartitionMeta {
                    group,
                    replicas,
                    target: None,
                }
            })
            .collect()
    }
}

/// Maps with integer keys as JSON lists of `[key, value]` pairs: inside a tagged enum
/// (a checkpoint record) serde cannot read integer keys back from JSON object keys.
mod as_pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<'a, S, M, K, V>(map: &'a M, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        &'a M: IntoIterator<Item = (&'a K, &'a V)>,
        K: Serialize + 'a,
        V: Serialize + 'a,
    {
        s.collect_seq(map)
    }

    pub fn deserialize<'de, D, M, K, V>(d: D) -> Result<M, D::Error>
    where
        D: Deserializer<'de>,
        M: FromIterator<(K, V)>,
        K: Deserialize<'de>,
        V: Deserialize<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests;
