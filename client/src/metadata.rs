//! A snapshot of cluster metadata: brokers by node id, topics, and each partition's
//! leader and replicas, as one Metadata response described them.

use std::collections::BTreeMap;

use kafka_protocol::messages::MetadataResponse;

use crate::error::{Error, KafkaCode, Result};

/// One broker of the cluster, as advertised (the address clients must use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// The broker's node id.
    pub node_id: i32,
    /// Advertised host name or IP.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// The broker's rack, when configured.
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`, bracketing IPv6 literals.
    pub fn addr(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition index.
    pub partition: i32,
    /// The leader's node id; `None` while there is none (leader id -1).
    pub leader: Option<i32>,
    /// The leader's epoch (Strata: the partition's Raft term).
    pub leader_epoch: i32,
    /// Node ids of all replicas.
    pub replicas: Vec<i32>,
    /// Node ids of the in-sync replicas.
    pub isr: Vec<i32>,
    /// Node ids of replicas that are offline.
    pub offline_replicas: Vec<i32>,
    /// The partition's error code (e.g. LEADER_NOT_AVAILABLE), 0 when none.
    pub error_code: i16,
}

/// One topic: its partitions sorted by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic or config name.
    pub name: String,
    /// Whether the topic is internal to the cluster (`__consumer_offsets`).
    pub internal: bool,
    /// The topic's partitions, sorted by index.
    pub partitions: Vec<PartitionInfo>,
}

/// What one Metadata response said. Topics the broker reported with an error are not
/// in `topics`; their codes are in `topic_errors`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The cluster's id, when the broker reports one.
    pub cluster_id: Option<String>,
    /// The controller's node id, when there is one.
    pub controller_id: Option<i32>,
    /// Brokers by node id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics without errors, by name.
    pub topics: BTreeMap<String, TopicInfo>,
    /// Topics the broker reported with an error code.
    pub topic_errors: BTreeMap<String, KafkaCode>,
}

impl Metadata {
    /// Builds a snapshot from a response. Partitions are sorted; topics without a name
    /// (which only topic-id requests produce) are skipped.
    pub fn from_response(response: &MetadataResponse) -> Metadata {
        let brokers = response
            .brokers
            .iter()
            .map(|b| {
                let info = BrokerInfo {
                    node_id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                };
                (info.node_id, info)
            })
            .collect();
        let mut topics = BTreeMap::new();
        let mut topic_errors = BTreeMap::new();
        for t in &response.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            if t.error_code != 0 {
                topic_errors.insert(name, KafkaCode(t.error_code));
                continue;
            }
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|n| n.0).collect(),
                    isr: p.isr_nodes.iter().map(|n| n.0).collect(),
                    offline_replicas: p.offline_replicas.iter().map(|n| n.0).collect(),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            topics.insert(
                name.clone(),
                TopicInfo {
                    name,
                    internal: t.is_internal,
                    partitions,
                },
            );
        }
        Metadata {
            cluster_id: response.cluster_id.as_ref().map(|c| c.to_string()),
            controller_id: (response.controller_id.0 >= 0).then_some(response.controller_id.0),
            brokers,
            topics,
            topic_errors,
        }
    }

    /// Replaces what `newer` knows (brokers, controller, and the topics it mentions)
    /// and keeps the other topics of `self`.
    pub fn merge(&mut self, newer: Metadata) {
        self.cluster_id = newer.cluster_id.or(self.cluster_id.take());
        self.controller_id = newer.controller_id;
        self.brokers = newer.brokers;
        for name in newer.topic_errors.keys() {
            self.topics.remove(name);
        }
        self.topic_errors.extend(newer.topic_errors);
        for (name, topic) in newer.topics {
            self.topic_errors.remove(&name);
            self.topics.insert(name, topic);
        }
    }

    /// The topic, or [`Error::UnknownTopic`] / the broker's error for it.
    pub fn topic(&self, topic: &str) -> Result<&TopicInfo> {
        if let Some(t) = self.topics.get(topic) {
            return Ok(t);
        }
        match self.topic_errors.get(topic) {
            Some(code) if code.0 != crate::error::UNKNOWN_TOPIC_OR_PARTITION => Err(Error::Kafka {
                context: format!("metadata for topic {topic:?}"),
                code: *code,
                message: None,
            }),
            _ => Err(Error::UnknownTopic {
                topic: topic.to_string(),
            }),
        }
    }

    /// The number of partitions of `topic`.
    pub fn partition_count(&self, topic: &str) -> Result<i32> {
        let count = self.topic(topic)?.partitions.len();
        i32::try_from(count).map_err(|_| Error::InvalidArgument(format!("{count} partitions")))
    }

    /// The leader of `topic`-`partition` and its address.
    pub fn leader(&self, topic: &str, partition: i32) -> Result<(i32, String)> {
        let t = self.topic(topic)?;
        let p = t
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| Error::UnknownPartition {
                topic: topic.to_string(),
                partition,
                partitions: i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
            })?;
        let no_leader = || Error::NoLeader {
            topic: topic.to_string(),
            partition,
        };
        let node = p.leader.ok_or_else(no_leader)?;
        let broker = self.brokers.get(&node).ok_or_else(no_leader)?;
        Ok((node, broker.addr()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn response() -> MetadataResponse {
        let partition = |i: i32, leader: i32| {
            MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(BrokerId(leader))
                .with_replica_nodes(vec![BrokerId(0)])
                .with_isr_nodes(vec![BrokerId(0)])
        };
        MetadataResponse::default()
            .with_controller_id(BrokerId(0))
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(0))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(9092)])
            .with_topics(vec![
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                    .with_partitions(vec![partition(1, -1), partition(0, 0)]),
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("gone"))))
                    .with_error_code(3),
            ])
    }

    #[test]
    fn leaders_resolve_to_advertised_addresses() {
        let m = Metadata::from_response(&response());
        assert_eq!(m.partition_count("t").unwrap(), 2);
        assert_eq!(m.topics["t"].partitions[0].partition, 0);
        assert_eq!(m.leader("t", 0).unwrap(), (0, "127.0.0.1:9092".to_string()));
        assert!(matches!(m.leader("t", 1), Err(Error::NoLeader { .. })));
        assert!(matches!(
            m.leader("t", 7),
            Err(Error::UnknownPartition { partitions: 2, .. })
        ));
        assert!(matches!(m.topic("gone"), Err(Error::UnknownTopic { .. })));
        assert!(matches!(m.topic("never"), Err(Error::UnknownTopic { .. })));
    }

    #[test]
    fn merge_keeps_other_topics() {
        let mut m = Metadata::from_response(&response());
        let newer = Metadata::from_response(&MetadataResponse::default().with_topics(vec![
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("u")))),
        ]));
        m.merge(newer);
        assert!(m.topics.contains_key("t") && m.topics.contains_key("u"));
        assert!(m.brokers.is_empty());
    }
}
