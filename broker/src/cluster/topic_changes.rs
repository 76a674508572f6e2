//! Topic changes a client asks for (CreateTopics, DeleteTopics, CreatePartitions,
//! AlterConfigs): checked against this node's map, submitted to the controller one at
//! a time, and answered once this node has applied them.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::metadata::MetaRecord;
use super::{Cluster, ClusterError, CONTROLLER_TIMEOUT};
use crate::config::TopicConfig;
use crate::partition::Partition;
use crate::topics::{
    check_growth, is_compacted_internal, refuse_internal, validate_topic_name, Topic, TopicError,
    Topics, MAX_PARTITIONS_PER_TOPIC,
};

impl Cluster {
    /// Checks a creation without doing it (CreateTopics `validate_only`, and the first
    /// step of `create`): the replication factor is judged against the brokers the
    /// controller knows, as the controller will.
    pub fn validate_topic_creation(
        &self,
        topics: &Topics,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, ClusterError> {
        validate_topic_name(name)?;
        if topics.get(name).is_some() {
            return Err(TopicError::Exists { name: name.into() }.into());
        }
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
            return Err(TopicError::PartitionCount {
                asked: partitions,
                max: MAX_PARTITIONS_PER_TOPIC,
            }
            .into());
        }
        self.state().replication_factor(replication_factor)?;
        Ok(topics.config_with(overrides)?)
    }

    /// Creates a topic through the controller; returns it once applied here.
    pub async fn create_topic(
        &self,
        topics: &Topics,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        overrides: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, ClusterError> {
        let _change = self.topic_change.lock().await;
        let partitions = if partitions == -1 {
            topics.defaults().num_partitions
        } else {
            partitions
        };
        self.validate_topic_creation(topics, name, partitions, replication_factor, &overrides)?;
        let record = MetaRecord::CreateTopic {
            request: self.request_id(),
            name: name.to_string(),
            id: Uuid::new_v4().to_string(),
            partitions,
            replication_factor,
            config: overrides,
        };
        self.submit(record, CONTROLLER_TIMEOUT).await?;
        self.await_topics(topics, |t| t.get(name).is_some()).await?;
        topics
            .get(name)
            .ok_or_else(|| TopicError::DeletedMeanwhile { name: name.into() }.into())
    }

    /// Deletes a topic through the controller; returns its id once applied here.
    pub async fn delete_topic(&self, topics: &Topics, name: &str) -> Result<Uuid, ClusterError> {
        refuse_internal(name)?;
        let _change = self.topic_change.lock().await;
        let Some(topic) = topics.get(name) else {
            return Err(TopicError::Unknown { name: name.into() }.into());
        };
        if topic.config.audit || crate::config::audit_override(&topic.overrides) {
            let action = "deleted with the topic";
            return Err(TopicError::AppendOnly {
                name: name.into(),
                action,
            }
            .into());
        }
        let record = MetaRecord::DeleteTopic {
            request: self.request_id(),
            name: name.to_string(),
        };
        self.submit(record, CONTROLLER_TIMEOUT).await?;
        self.await_topics(topics, |t| t.get(name).is_none_or(|t| t.id != topic.id))
            .await?;
        Ok(topic.id)
    }

    /// Grows a topic to `count` partitions (Kafka never shrinks them).
    pub async fn create_partitions(
        &self,
        topics: &Topics,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<Vec<Arc<Partition>>, ClusterError> {
        refuse_internal(name)?;
        let _change = self.topic_change.lock().await;
        let Some(topic) = topics.get(name) else {
            return Err(TopicError::Unknown { name: name.into() }.into());
        };
        let have = topic.partitions.len() as i32;
        check_growth(name, have, count)?;
        if validate_only {
            return Ok(Vec::new());
        }
        let record = MetaRecord::CreatePartitions {
            request: self.request_id(),
            name: name.to_string(),
            count,
        };
        self.submit(record, CONTROLLER_TIMEOUT).await?;
        self.await_topics(topics, |t| {
            t.get(name)
                .is_some_and(|t| t.partitions.len() as i32 >= count)
        })
        .await?;
        let grown = topics
            .get(name)
            .map(|t| t.partitions.clone())
            .unwrap_or_default();
        Ok(grown.into_iter().skip(have as usize).collect())
    }

    /// Replaces a topic's overrides (AlterConfigs / IncrementalAlterConfigs) through the
    /// controller; every replica applies them to its log.
    pub async fn set_topic_overrides(
        &self,
        topics: &Topics,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ClusterError> {
        let _change = self.topic_change.lock().await;
        let Some(topic) = topics.get(name) else {
            return Err(TopicError::Unknown { name: name.into() }.into());
        };
        let config = topics.config_with(&overrides)?;
        let was_audit = topic.config.audit || crate::config::audit_override(&topic.overrides);
        if config.audit != was_audit || crate::config::audit_override(&overrides) != was_audit {
            return Err(TopicError::AuditFixed { name: name.into() }.into());
        }
        if is_compacted_internal(name) && config.cleanup_policy != "compact" {
            return Err(TopicError::CompactOnly { name: name.into() }.into());
        }
        if validate_only {
            return Ok(());
        }
        let record = MetaRecord::SetOverrides {
            request: self.request_id(),
            name: name.to_string(),
            config: overrides.clone(),
        };
        self.submit(record, CONTROLLER_TIMEOUT).await?;
        self.await_topics(topics, |t| {
            t.get(name).is_none_or(|t| t.overrides == overrides)
        })
        .await?;
        Ok(())
    }

    /// Waits until the applied map satisfies `done` (after a submitted change).
    async fn await_topics(
        &self,
        topics: &Topics,
        done: impl Fn(&Topics) -> bool,
    ) -> Result<(), ClusterError> {
        if self.wait_applied(CONTROLLER_TIMEOUT, || done(topics)).await {
            Ok(())
        } else {
            Err(TopicError::NotYetApplied.into())
        }
    }
}
