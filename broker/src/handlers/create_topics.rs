//! CreateTopics: validates each topic (name, partitions, replication factor, configs),
//! creates it unless `validate_only`, and reports the resulting configs (v5+).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::configs::source_of;
use super::message;
use super::RequestContext;
use crate::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::config::topic_keys::TOPIC_KEYS;
use crate::config::{TopicConfig, TopicDefaults};
use crate::Broker;

/// Kafka's `config_source` values.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

pub(crate) fn config_entries(
    defaults: &TopicDefaults,
    config: &TopicConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    TOPIC_KEYS
        .iter()
        .map(|key| {
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from(key.name))
                .with_value(config.get(key.name).map(StrBytes::from_string))
                .with_config_source(source_of(defaults, overrides, key.name))
        })
        .collect()
}

/// What one topic of the request asks for, once checked.
struct Asked {
    overrides: BTreeMap<String, String>,
    /// -1: the broker's default.
    partitions: i32,
    /// -1: the broker's default.
    replication: i16,
}

/// Checks one topic of the request: configs with values, and manual assignments only
/// when each places its partition on this broker alone (the controller places replicas
/// itself).
fn asked(t: &CreatableTopic, node_id: i32) -> Result<Asked, (ResponseError, String)> {
    let mut overrides = BTreeMap::new();
    for c in &t.configs {
        let Some(v) = &c.value else {
            let why = format!("config {} has no value", c.name.as_str());
            return Err((ResponseError::InvalidConfig, why));
        };
        overrides.insert(c.name.to_string(), v.to_string());
    }
    let (mut partitions, mut replication) = (t.num_partitions, t.replication_factor);
    if !t.assignments.is_empty() {
        if partitions != -1 || replication != -1 {
            let why = "with replica assignments, partitions and replication factor must be -1";
            return Err((ResponseError::InvalidRequest, why.into()));
        }
        let only_us = t
            .assignments
            .iter()
            .all(|a| a.broker_ids.len() == 1 && *a.broker_ids[0] == node_id);
        if !only_us {
            let why = format!("replicas can only be assigned to this broker alone, id {node_id}");
            return Err((ResponseError::InvalidReplicaAssignment, why));
        }
        partitions = t.assignments.len() as i32;
        replication = 1;
    }
    Ok(Asked {
        overrides,
        partitions,
        replication,
    })
}

/// The replication factor topic `name` got (as the controller placed it) or, when only
/// validated, would get for `asked`; -1 when neither is known.
fn replication_of(b: &Broker, name: &str, asked: i16) -> i16 {
    let state = b.cluster.state();
    let placed = state.topics.get(name).and_then(|t| t.partitions.first());
    let factor = match placed {
        Some(p) => Some(p.replicas.len()),
        None => state.replication_factor(asked).ok(),
    };
    factor.map_or(-1, |n| i16::try_from(n).unwrap_or(i16::MAX))
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
    let checks = ctx.checks();
    let cluster_create = checks.sees(Operation::Create, ResourceType::Cluster, CLUSTER_NAME);
    for t in &request.topics {
        let name = t.name.as_str().to_string();
        let result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let checked = if duplicated.contains(&name) {
            let why = format!("topic {name:?} appears more than once in the request");
            Err((ResponseError::InvalidRequest, why))
        } else if !cluster_create && !checks.allows(Operation::Create, ResourceType::Topic, &name) {
            let why = "CREATE on the Cluster or on the topic is needed".to_string();
            Err((ResponseError::TopicAuthorizationFailed, why))
        } else {
            asked(t, b.node_id)
        };
        let asked = match checked {
            Ok(a) => a,
            Err((code, why)) => {
                results.push(
                    result
                        .with_error_code(ctx.code(code.code()))
                        .with_error_message(message(why)),
                );
                continue;
            }
        };
        let partitions = if asked.partitions == -1 {
            b.topics.defaults().num_partitions
        } else {
            asked.partitions
        };
        let (replication, overrides) = (asked.replication, asked.overrides);
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
        // As Kafka, the configs are shown only to who may describe them.
        let configs_visible = checks.sees(Operation::DescribeConfigs, ResourceType::Topic, &name);
        results.push(match outcome {
            Ok((config, id)) if configs_visible => result
                .with_topic_id(id)
                .with_num_partitions(partitions)
                .with_replication_factor(replication_of(b, &name, replication))
                .with_configs(Some(config_entries(
                    b.topics.defaults(),
                    &config,
                    &overrides,
                ))),
            Ok((_, id)) => result
                .with_topic_id(id)
                .with_num_partitions(partitions)
                .with_replication_factor(replication_of(b, &name, replication))
                .with_topic_config_error_code(ResponseError::TopicAuthorizationFailed.code()),
            Err(e) => result
                .with_error_code(ctx.code(e.code()))
                .with_error_message(message(e.to_string())),
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}
