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

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};

use crate::topics::{validate_topic_name, MAX_PARTITIONS_PER_TOPIC};

/// Raft group id of the controller (group 0 is the node liveness channel).
pub const CONTROLLER_GROUP: u64 = 1;
/// The first group id given to a partition.
pub const FIRST_PARTITION_GROUP: u64 = 1000;
/// Replication factor of a topic created with -1 ("the broker's default").
pub const DEFAULT_REPLICATION_FACTOR: usize = 3;
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
            | MetaRecord::SetOverrides { request, .. } => Some(*request),
            MetaRecord::RegisterBroker { .. }
            | MetaRecord::Leader { .. }
            | MetaRecord::TransferLeader { .. }
            | MetaRecord::ClusterId { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerMeta {
    pub host: String,
    pub port: i32,
    /// Admin HTTP address (empty when the broker did not say).
    pub admin: String,
}

/// One partition: its Raft group and the brokers holding its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMeta {
    pub group: u64,
    pub replicas: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub id: String,
    pub config: BTreeMap<String, String>,
    pub partitions: Vec<PartitionMeta>,
}

/// Why a request was refused: a Kafka error code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: i16,
    pub message: String,
}

fn refuse(code: ResponseError, message: impl Into<String>) -> Refusal {
    Refusal {
        code: code.code(),
        message: message.into(),
    }
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
}

/// The replicated cluster metadata.
#[derive(Debug, Default)]
pub struct MetadataState {
    pub brokers: BTreeMap<u64, BrokerMeta>,
    pub topics: BTreeMap<String, TopicMeta>,
    /// The latest leader reported per partition group, with its term.
    pub leaders: HashMap<u64, (u64, u64)>,
    /// Set by the first applied [`MetaRecord::ClusterId`].
    pub cluster_id: Option<String>,
    next_group: u64,
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

    /// Applies one committed record.
    pub fn apply(&mut self, record: MetaRecord) -> Change {
        let request = record.request();
        if request.is_some_and(|r| self.outcomes.contains_key(&r)) {
            // A request sent again while its first copy was on the way: applied once.
            return Change::None;
        }
        let (outcome, change) = match record {
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
            } => {
                let meta = BrokerMeta { host, port, admin };
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
                Err(r) => (Err(r), Change::None),
            },
            MetaRecord::DeleteTopic { name, .. } => match self.topics.remove(&name) {
                Some(t) => {
                    for p in &t.partitions {
                        self.leaders.remove(&p.group);
                    }
                    (Ok(()), Change::TopicDeleted(name, t))
                }
                None => (
                    Err(refuse(
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic {name:?} does not exist"),
                    )),
                    Change::None,
                ),
            },
            MetaRecord::CreatePartitions { name, count, .. } => {
                match self.create_partitions(&name, count) {
                    Ok(()) => (Ok(()), Change::Topic(name)),
                    Err(r) => (Err(r), Change::None),
                }
            }
            MetaRecord::SetOverrides { name, config, .. } => match self.topics.get_mut(&name) {
                Some(t) => {
                    t.config = config;
                    (Ok(()), Change::Topic(name))
                }
                None => (
                    Err(refuse(
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic {name:?} does not exist"),
                    )),
                    Change::None,
                ),
            },
        };
        if let Some(request) = request {
            self.record_outcome(request, outcome);
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

    fn replication_factor(&self, asked: i16) -> Result<usize, Refusal> {
        let brokers = self.brokers.len();
        let rf = if asked == -1 {
            DEFAULT_REPLICATION_FACTOR.min(brokers)
        } else {
            usize::try_from(asked).unwrap_or(0)
        };
        if rf == 0 || rf > brokers {
            return Err(refuse(
                ResponseError::InvalidReplicationFactor,
                format!("replication factor {asked} with {brokers} brokers registered"),
            ));
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
    ) -> Result<(), Refusal> {
        validate_topic_name(name).map_err(|e| Refusal {
            code: e.code,
            message: e.message,
        })?;
        if self.topics.contains_key(name) {
            return Err(refuse(
                ResponseError::TopicAlreadyExists,
                format!("topic {name:?} already exists"),
            ));
        }
        if !(1..=MAX_PARTITIONS_PER_RECORD).contains(&partitions) {
            return Err(refuse(
                ResponseError::InvalidPartitions,
                format!("partitions must be 1..={MAX_PARTITIONS_PER_RECORD}, got {partitions}"),
            ));
        }
        let rf = self.replication_factor(replication_factor)?;
        let placed = self.place(0, partitions, rf);
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

    fn create_partitions(&mut self, name: &str, count: i32) -> Result<(), Refusal> {
        let Some(t) = self.topics.get(name) else {
            return Err(refuse(
                ResponseError::UnknownTopicOrPartition,
                format!("topic {name:?} does not exist"),
            ));
        };
        let have = t.partitions.len() as i32;
        if count <= have || count > MAX_PARTITIONS_PER_TOPIC {
            return Err(refuse(
                ResponseError::InvalidPartitions,
                format!("topic {name:?} has {have} partitions; the new count must be more, at most {MAX_PARTITIONS_PER_TOPIC}, got {count}"),
            ));
        }
        let rf = t
            .partitions
            .first()
            .map_or(1, |p| p.replicas.len())
            .min(self.brokers.len().max(1));
        let added = self.place(have, count - have, rf);
        if let Some(t) = self.topics.get_mut(name) {
            t.partitions.extend(added);
        }
        Ok(())
    }

    /// Places `count` partitions (indexes `first..`) on `rf` brokers each: partition i's
    /// replicas are `rf` consecutive brokers starting at a rotating position, so replicas
    /// and first replicas (the preferred leaders) spread evenly.
    fn place(&mut self, first: i32, count: i32, rf: usize) -> Vec<PartitionMeta> {
        let ids: Vec<u64> = self.brokers.keys().copied().collect();
        let n = ids.len().max(1);
        (0..count)
            .map(|i| {
                let group = self.next_group;
                self.next_group += 1;
                let start = (group as usize + (first + i) as usize) % n;
                let replicas = (0..rf.min(ids.len()))
                    .map(|k| ids[(start + k) % n])
                    .collect();
                PartitionMeta { group, replicas }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(s: &mut MetadataState, n: u64) {
        for id in 1..=n {
            s.apply(MetaRecord::RegisterBroker {
                id,
                host: "127.0.0.1".into(),
                port: 9000 + id as i32,
                admin: String::new(),
            });
        }
    }

    fn create(name: &str, request: u64, partitions: i32, rf: i16) -> MetaRecord {
        MetaRecord::CreateTopic {
            request,
            name: name.into(),
            id: format!("id-{name}"),
            partitions,
            replication_factor: rf,
            config: BTreeMap::new(),
        }
    }

    #[test]
    fn records_round_trip_and_garbage_is_an_error() {
        let r = create("t", 7, 3, -1);
        assert_eq!(MetaRecord::decode(&r.encode()).unwrap(), r);
        assert!(MetaRecord::decode(b"{\"type\":\"nope\"}").is_err());
        assert!(MetaRecord::decode(&[0xff, 0x00]).is_err());
    }

    #[test]
    fn placement_spreads_replicas_and_leaders() {
        let mut s = MetadataState::new();
        register(&mut s, 3);
        assert_eq!(s.apply(create("t", 1, 6, 3)), Change::Topic("t".into()));
        assert_eq!(s.outcome(1), Some(&Ok(())));
        let t = &s.topics["t"];
        let mut first = BTreeMap::new();
        for p in &t.partitions {
            assert_eq!(p.replicas.len(), 3);
            let mut r = p.replicas.clone();
            r.sort_unstable();
            r.dedup();
            assert_eq!(r.len(), 3, "distinct replicas");
            *first.entry(p.replicas[0]).or_insert(0) += 1;
        }
        assert_eq!(first.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        let groups: Vec<u64> = t.partitions.iter().map(|p| p.group).collect();
        assert_eq!(groups, (1000..1006).collect::<Vec<_>>());
    }

    #[test]
    fn refusals_are_recorded_for_the_proposer() {
        let mut s = MetadataState::new();
        register(&mut s, 2);
        s.apply(create("t", 1, 1, 1));
        s.apply(create("t", 2, 1, 1));
        assert_eq!(
            s.outcome(2).unwrap().as_ref().unwrap_err().code,
            ResponseError::TopicAlreadyExists.code()
        );
        s.apply(create("u", 3, 1, 3));
        assert_eq!(
            s.outcome(3).unwrap().as_ref().unwrap_err().code,
            ResponseError::InvalidReplicationFactor.code()
        );
        s.apply(create("bad name", 4, 1, 1));
        assert!(s.outcome(4).unwrap().is_err());
        // -1 takes what there is.
        s.apply(create("v", 5, 1, -1));
        assert_eq!(s.topics["v"].partitions[0].replicas.len(), 2);
        s.apply(MetaRecord::CreatePartitions {
            request: 6,
            name: "v".into(),
            count: 3,
        });
        assert_eq!(s.topics["v"].partitions.len(), 3);
        s.apply(MetaRecord::CreatePartitions {
            request: 7,
            name: "v".into(),
            count: 2,
        });
        assert!(s.outcome(7).unwrap().is_err());
        let deleted = s.apply(MetaRecord::DeleteTopic {
            request: 8,
            name: "v".into(),
        });
        assert!(
            matches!(deleted, Change::TopicDeleted(ref n, ref t) if n == "v" && t.partitions.len() == 3)
        );
        s.apply(MetaRecord::DeleteTopic {
            request: 9,
            name: "v".into(),
        });
        assert!(s.outcome(9).unwrap().is_err());
    }

    #[test]
    fn stale_leader_reports_are_ignored_and_outcomes_are_bounded() {
        let mut s = MetadataState::new();
        s.apply(MetaRecord::Leader {
            group: 1000,
            leader: 2,
            term: 5,
        });
        s.apply(MetaRecord::Leader {
            group: 1000,
            leader: 1,
            term: 4,
        });
        assert_eq!(s.leaders[&1000], (2, 5));
        register(&mut s, 1);
        for r in 0..(OUTCOMES_KEPT as u64 + 10) {
            s.apply(MetaRecord::DeleteTopic {
                request: r,
                name: "missing".into(),
            });
        }
        assert!(s.outcome(0).is_none());
        assert!(s.outcome(OUTCOMES_KEPT as u64 + 9).is_some());
    }
}
