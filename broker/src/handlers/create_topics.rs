//! CreateTopics: validates each topic (name, partitions, replication factor, configs),
//! creates it unless `validate_only`, and reports the resulting configs (v5+).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::message;
use super::RequestContext;
use crate::config::{TopicConfig, TOPIC_CONFIG_KEYS};

/// Kafka's `config_source` values.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

pub(crate) fn config_entries(
    config: &TopicConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    TOPIC_CONFIG_KEYS
        .iter()
        .map(|&key| {
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from(key))
                .with_value(config.get(key).map(StrBytes::from_string))
                .with_config_source(if overrides.contains_key(key) {
                    SOURCE_DYNAMIC_TOPIC
                } else {
                    SOURCE_DEFAULT
                })
        })
        .collect()
}

pub async fn handle(ctx: &RequestContext, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let b = &ctx.broker;
    let mut seen = HashSet::new();
    let duplicated: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.as_str().to_string()))
        .map(|t| t.name.as_str().to_string())
        .collect();
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.as_str().to_string();
        let result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let fail = |code: ResponseError, why: String| {
            result
                .clone()
                .with_error_code(ctx.code(code.code()))
                .with_error_message(message(why))
        };
        if duplicated.contains(&name) {
            results.push(fail(
                ResponseError::InvalidRequest,
                format!("topic {name:?} appears more than once in the request"),
            ));
            continue;
        }
        let mut overrides = BTreeMap::new();
        let mut bad_config = None;
        for c in &t.configs {
            match &c.value {
                Some(v) => {
                    overrides.insert(c.name.to_string(), v.to_string());
                }
                None => bad_config = Some(format!("config {} has no value", c.name.as_str())),
            }
        }
        if let Some(why) = bad_config {
            results.push(fail(ResponseError::InvalidConfig, why));
            continue;
        }
        // Manual assignments are taken only when each places its partition on this broker
        // alone (the controller places replicas itself).
        let mut partitions = t.num_partitions;
        let mut replication = t.replication_factor;
        if !t.assignments.is_empty() {
            if partitions != -1 || replication != -1 {
                results.push(fail(
                    ResponseError::InvalidRequest,
                    "with replica assignments, partitions and replication factor must be -1".into(),
                ));
                continue;
            }
            let only_us = t
                .assignments
                .iter()
                .all(|a| a.broker_ids.len() == 1 && *a.broker_ids[0] == b.node_id);
            if !only_us {
                results.push(fail(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "replicas can only be assigned to this broker alone, id {}",
                        b.node_id
                    ),
                ));
                continue;
            }
            partitions = t.assignments.len() as i32;
            replication = 1;
        }
        let partitions = if partitions == -1 {
            b.topics.defaults().num_partitions
        } else {
            partitions
        };
        let outcome = if request.validate_only {
            b.cluster
                .validate_topic_creation(&b.topics, &name, partitions, replication, &overrides)
                .map(|config| (config, uuid::Uuid::nil()))
        } else {
            b.cluster
                .create_topic(&b.topics, &name, partitions, replication, overrides.clone())
                .await
                .map(|topic| (topic.config.clone(), topic.id))
        };
        results.push(match outcome {
            Ok((config, id)) => result
                .with_topic_id(id)
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(Some(config_entries(&config, &overrides))),
            Err(e) => result
                .with_error_code(ctx.code(e.code()))
                .with_error_message(message(e.to_string())),
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}
