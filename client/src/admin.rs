//! Topic administration: create, delete, list, describe (partitions, leaders, replicas,
//! offsets), describe and alter configs, add partitions.
//!
//! Each call is one request to the controller (or any broker when the metadata names
//! none) and reports the broker's per-topic error code as [`Error::Kafka`]. Successful
//! calls refresh the client's metadata so later produce/consume calls see the change.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::metadata::PartitionInfo;
use crate::offsets::{list_offset, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};

/// DescribeConfigs / IncrementalAlterConfigs resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// The topic name.
    pub name: String,
    /// Partition count; -1 takes the broker's `num.partitions`.
    pub partitions: i32,
    /// Replicas per partition; -1 takes the broker's default.
    pub replication_factor: i16,
    /// Topic configs (`retention.ms`, `cleanup.policy`, …).
    pub configs: Vec<(String, String)>,
}

/// One config change for [`Admin::alter_configs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// Set `key` to `value` for this topic.
    Set(String, String),
    /// Remove the topic's own value of `key`, so the default applies again.
    Delete(String),
}

/// One config of a topic, as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The config key.
    pub name: String,
    /// `None` for sensitive values.
    pub value: Option<String>,
    /// Whether the broker refuses changes to it.
    pub read_only: bool,
    /// Whether the value is secret (and so not returned).
    pub sensitive: bool,
    /// Where the value comes from: `topic`, `broker`, `default`, … (Kafka's
    /// `ConfigSource` names in lower case).
    pub source: &'static str,
}

/// A partition with its offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    /// Leader, replicas and ISR as the metadata reports them.
    pub info: PartitionInfo,
    /// Log start offset (ListOffsets earliest); `None` if the leader did not answer.
    pub earliest_offset: Option<i64>,
    /// High watermark (ListOffsets latest); `None` if the leader did not answer.
    pub latest_offset: Option<i64>,
}

/// A topic with its partitions (sorted) and offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// The topic name.
    pub name: String,
    /// Whether the topic is internal to the cluster (`__consumer_offsets`).
    pub internal: bool,
    /// The topic's partitions, sorted by index.
    pub partitions: Vec<PartitionDescription>,
}

/// Topic administration over a [`Cluster`].
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Arc<Cluster>,
}

impl Admin {
    /// An admin client sharing `cluster`'s metadata and connections.
    pub fn new(cluster: Arc<Cluster>) -> Admin {
        Admin { cluster }
    }

    /// The cluster this admin talks to.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    fn timeout_ms(&self) -> i32 {
        i32::try_from(self.cluster.request_timeout().as_millis()).unwrap_or(i32::MAX)
    }

    /// Creates `topic`. Fails with TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS,
    /// INVALID_CONFIG, … as the broker reports them.
    pub async fn create_topic(&self, topic: &NewTopic) -> Result<()> {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(&topic.name))
                .with_num_partitions(topic.partitions)
                .with_replication_factor(topic.replication_factor)
                .with_configs(
                    topic
                        .configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.clone()))
                                .with_value(Some(StrBytes::from_string(v.clone())))
                        })
                        .collect(),
                )]);
        let response = self.cluster.send_controller(&request).await?;
        let result = response
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == topic.name)
            .ok_or_else(|| missing("create topic", &topic.name))?;
        Error::check(
            result.error_code,
            || format!("create topic {:?}", topic.name),
            result.error_message.as_deref(),
        )?;
        self.refresh(&topic.name).await;
        Ok(())
    }

    /// Deletes `topic` and its data.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let version = self.version(ApiKey::DeleteTopics).await?;
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
        // v6 names topics in `topics`; earlier versions in `topic_names`.
        if version >= 6 {
            request.topics = vec![DeleteTopicState::default().with_name(Some(topic_name(topic)))];
        } else {
            request.topic_names = vec![topic_name(topic)];
        }
        let response = self.cluster.send_controller(&request).await?;
        let result = response
            .responses
            .iter()
            .find(|r| r.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .ok_or_else(|| missing("delete topic", topic))?;
        Error::check(
            result.error_code,
            || format!("delete topic {topic:?}"),
            result.error_message.as_deref(),
        )?;
        self.refresh(topic).await;
        Ok(())
    }

    /// The names of all topics, sorted; internal topics only with `include_internal`.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<String>> {
        let metadata = self.cluster.refresh_metadata(None, false).await?;
        Ok(metadata
            .topics
            .values()
            .filter(|t| include_internal || !t.internal)
            .map(|t| t.name.clone())
            .collect())
    }

    /// `topic`'s partitions with leader, replicas, ISR and earliest/latest offsets.
    /// Offsets a leader does not report are `None` rather than failing the whole call.
    pub async fn describe_topic(&self, topic: &str) -> Result<TopicDescription> {
        let metadata = self
            .cluster
            .refresh_metadata(Some(&[topic.to_string()]), false)
            .await?;
        let info = metadata.topic(topic)?.clone();
        let mut partitions = Vec::with_capacity(info.partitions.len());
        for p in info.partitions {
            let earliest = list_offset(&self.cluster, topic, p.partition, EARLIEST_TIMESTAMP)
                .await
                .ok()
                .map(|o| o.offset);
            let latest = list_offset(&self.cluster, topic, p.partition, LATEST_TIMESTAMP)
                .await
                .ok()
                .map(|o| o.offset);
            partitions.push(PartitionDescription {
                info: p,
                earliest_offset: earliest,
                latest_offset: latest,
            });
        }
        Ok(TopicDescription {
            name: info.name,
            internal: info.internal,
            partitions,
        })
    }

    /// All configs of `topic` with their values and sources.
    pub async fn describe_configs(&self, topic: &str) -> Result<Vec<ConfigEntry>> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(topic.to_string()))
                .with_configuration_keys(None),
        ]);
        let response = self.cluster.send_controller(&request).await?;
        let result = response
            .results
            .iter()
            .find(|r| r.resource_name.as_str() == topic)
            .ok_or_else(|| missing("describe configs of", topic))?;
        Error::check(
            result.error_code,
            || format!("describe configs of {topic:?}"),
            result.error_message.as_deref(),
        )?;
        let mut entries: Vec<ConfigEntry> = result
            .configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.as_ref().map(|v| v.to_string()),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
                source: config_source(c.config_source),
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Applies `changes` to `topic`'s configs atomically (IncrementalAlterConfigs):
    /// keys not named keep their values.
    pub async fn alter_configs(&self, topic: &str, changes: &[ConfigChange]) -> Result<()> {
        /// IncrementalAlterConfigs operations.
        const OP_SET: i8 = 0;
        const OP_DELETE: i8 = 1;
        let configs = changes
            .iter()
            .map(|c| match c {
                ConfigChange::Set(k, v) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(OP_SET)
                    .with_value(Some(StrBytes::from_string(v.clone()))),
                ConfigChange::Delete(k) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(OP_DELETE)
                    .with_value(None),
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(topic.to_string()))
                .with_configs(configs),
        ]);
        let response = self.cluster.send_controller(&request).await?;
        let result = response
            .responses
            .iter()
            .find(|r| r.resource_name.as_str() == topic)
            .ok_or_else(|| missing("alter configs of", topic))?;
        Error::check(
            result.error_code,
            || format!("alter configs of {topic:?}"),
            result.error_message.as_deref(),
        )
    }

    /// Grows `topic` to `total_partitions` partitions (Kafka never shrinks a topic).
    pub async fn create_partitions(&self, topic: &str, total_partitions: i32) -> Result<()> {
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(total_partitions)
                .with_assignments(None)]);
        let response = self.cluster.send_controller(&request).await?;
        let result = response
            .results
            .iter()
            .find(|r| r.name.0.as_str() == topic)
            .ok_or_else(|| missing("create partitions of", topic))?;
        Error::check(
            result.error_code,
            || format!("create partitions of {topic:?}"),
            result.error_message.as_deref(),
        )?;
        self.refresh(topic).await;
        Ok(())
    }

    /// The version the controller (or any broker) speaks for `api`.
    async fn version(&self, api: ApiKey) -> Result<i16> {
        let conn = self.cluster.controller_connection().await?;
        let guard = conn.lock().await;
        guard.api_version(api).ok_or_else(|| Error::UnsupportedApi {
            addr: guard.addr().to_string(),
            api,
            client_min: -1,
            client_max: -1,
        })
    }

    /// Best effort: a failed refresh leaves stale metadata, which the next call
    /// refreshes again.
    async fn refresh(&self, topic: &str) {
        let _ = self
            .cluster
            .refresh_metadata(Some(&[topic.to_string()]), false)
            .await;
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn missing(what: &str, topic: &str) -> Error {
    Error::Kafka {
        context: format!("{what} {topic:?}"),
        code: crate::error::KafkaCode(crate::error::UNKNOWN_TOPIC_OR_PARTITION),
        message: Some("the response does not mention the topic".into()),
    }
}

/// Kafka's `DescribeConfigsResponse.ConfigSource` ids, lower-cased.
fn config_source(id: i8) -> &'static str {
    match id {
        1 => "topic",
        2 => "dynamic-broker",
        3 => "dynamic-default-broker",
        4 => "broker",
        5 => "default",
        6 => "dynamic-broker-logger",
        7 => "client-metrics",
        8 => "group",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_sources_have_names() {
        assert_eq!(config_source(1), "topic");
        assert_eq!(config_source(5), "default");
        assert_eq!(config_source(-1), "unknown");
    }
}
