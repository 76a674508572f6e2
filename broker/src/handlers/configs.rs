//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.
//!
//! Topics: the keys in `config::TOPIC_CONFIG_KEYS`, with their source (set on the topic,
//! or the broker default). The broker resource (name = node id) is described read-only:
//! broker settings come from the config file and flags and change with a restart.
//! AlterConfigs replaces a topic's whole set of overrides (Kafka's semantics);
//! IncrementalAlterConfigs sets or deletes single keys, and APPENDs to or SUBTRACTs
//! from list settings (`cleanup.policy`), as Kafka does (KIP-339): the list edited is
//! the topic's override, else the broker default; the result is checked like a SET.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::create_topics::{SOURCE_DEFAULT, SOURCE_DYNAMIC_TOPIC, SOURCE_STATIC_BROKER};
use super::message;
use super::RequestContext;
use crate::cluster::ClusterError;
use crate::config::{TopicConfig, LIST_TOPIC_CONFIG_KEYS, TOPIC_CONFIG_KEYS};
use crate::topics::TopicError;
use crate::Broker;

/// Kafka's resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Kafka's config types (DescribeConfigs v3+).
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;
const TYPE_DOUBLE: i8 = 6;

fn topic_key_type(key: &str) -> i8 {
    match key {
        "cleanup.policy" => TYPE_LIST,
        "max.message.bytes" | "segment.bytes" => TYPE_INT,
        "min.cleanable.dirty.ratio" => TYPE_DOUBLE,
        _ => TYPE_LONG,
    }
}

/// The broker's settings as DescribeConfigs shows them: `(name, value, type)`.
fn broker_entries(b: &Broker) -> Vec<(&'static str, String, i8)> {
    let c = &b.config;
    let log = &c.topics.log;
    vec![
        ("broker.id", b.node_id.to_string(), TYPE_INT),
        (
            "num.partitions",
            c.topics.num_partitions.to_string(),
            TYPE_INT,
        ),
        (
            "auto.create.topics.enable",
            c.topics.auto_create_topics.to_string(),
            TYPE_BOOLEAN,
        ),
        ("log.dirs", c.data_dir.display().to_string(), TYPE_STRING),
        (
            "log.retention.ms",
            log.get("retention.ms").unwrap_or_default(),
            TYPE_LONG,
        ),
        (
            "log.retention.bytes",
            log.get("retention.bytes").unwrap_or_default(),
            TYPE_LONG,
        ),
        ("log.segment.bytes", log.segment_bytes.to_string(), TYPE_INT),
        (
            "log.roll.ms",
            log.get("segment.ms").unwrap_or_default(),
            TYPE_LONG,
        ),
        (
            "message.max.bytes",
            log.max_message_bytes.to_string(),
            TYPE_INT,
        ),
        (
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
            TYPE_INT,
        ),
        ("log.cleanup.policy", log.cleanup_policy.clone(), TYPE_LIST),
    ]
}

fn entry(
    ctx: &RequestContext,
    name: &str,
    value: String,
    source: i8,
    kind: i8,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value)))
        .with_config_source(source)
        .with_read_only(source == SOURCE_STATIC_BROKER);
    if ctx.version >= 3 {
        e = e.with_config_type(kind);
    }
    e
}

pub fn describe(ctx: &RequestContext, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let b = &ctx.broker;
    let results = request
        .resources
        .into_iter()
        .map(|r| {
            // Null or empty: every key.
            let wanted = |key: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == key))
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match r.resource_type {
                RESOURCE_TOPIC => match b.topics.get(r.resource_name.as_str()) {
                    Some(t) => result.with_configs(
                        TOPIC_CONFIG_KEYS
                            .iter()
                            .filter(|k| wanted(k))
                            .map(|&k| {
                                let source = if t.overrides.contains_key(k) {
                                    SOURCE_DYNAMIC_TOPIC
                                } else {
                                    SOURCE_DEFAULT
                                };
                                entry(
                                    ctx,
                                    k,
                                    t.config.get(k).unwrap_or_default(),
                                    source,
                                    topic_key_type(k),
                                )
                            })
                            .collect(),
                    ),
                    None => result
                        .with_error_code(ctx.code(ResponseError::UnknownTopicOrPartition.code()))
                        .with_error_message(message(format!(
                            "topic {:?} does not exist",
                            r.resource_name.as_str()
                        ))),
                },
                RESOURCE_BROKER if is_this_broker(b, r.resource_name.as_str()) => result
                    .with_configs(
                        broker_entries(b)
                            .into_iter()
                            .filter(|(k, _, _)| wanted(k))
                            .map(|(k, v, kind)| entry(ctx, k, v, SOURCE_STATIC_BROKER, kind))
                            .collect(),
                    ),
                _ => result
                    .with_error_code(ctx.code(ResponseError::InvalidRequest.code()))
                    .with_error_message(message(format!(
                        "resource type {} named {:?} is not described by this broker",
                        r.resource_type,
                        r.resource_name.as_str()
                    ))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// An empty name means "the broker answering" (Kafka's default-broker resource).
fn is_this_broker(b: &Broker, name: &str) -> bool {
    name.is_empty() || name == b.node_id.to_string()
}

/// Applies `change` to a topic's overrides, or says why not. Broker resources are
/// read-only.
async fn alter_one(
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), TopicError>,
) -> Result<(), ClusterError> {
    let b = &ctx.broker;
    match resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => return Err(TopicError::BrokerConfigReadOnly.into()),
        kind => return Err(TopicError::UnalterableResource { kind }.into()),
    }
    let Some(topic) = b.topics.get(name) else {
        return Err(TopicError::Unknown { name: name.into() }.into());
    };
    let mut overrides = topic.overrides.clone();
    change(&mut overrides)?;
    b.cluster
        .set_topic_overrides(&b.topics, name, overrides, validate_only)
        .await
}

fn invalid_config(message: String) -> TopicError {
    TopicError::InvalidConfig(message)
}

pub async fn alter(ctx: &RequestContext, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        let outcome = alter_one(
            ctx,
            r.resource_type,
            r.resource_name.as_str(),
            request.validate_only,
            |o| {
                // Kafka's AlterConfigs replaces every override with the given set.
                o.clear();
                for c in &r.configs {
                    let value = c.value.as_ref().ok_or_else(|| {
                        invalid_config(format!("{} has no value", c.name.as_str()))
                    })?;
                    o.insert(c.name.to_string(), value.to_string());
                }
                Ok(())
            },
        )
        .await;
        let response = alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        responses.push(match outcome {
            Ok(()) => response,
            Err(e) => response
                .with_error_code(ctx.code(e.code()))
                .with_error_message(message(e.to_string())),
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Applies one IncrementalAlterConfigs operation on `key` to a topic's `overrides`.
fn apply_op(
    overrides: &mut BTreeMap<String, String>,
    defaults: &TopicConfig,
    key: &str,
    op: i8,
    value: Option<&str>,
) -> Result<(), TopicError> {
    if !TOPIC_CONFIG_KEYS.contains(&key) {
        return Err(invalid_config(format!("{key}: unknown topic config")));
    }
    let name = match op {
        OP_DELETE => {
            overrides.remove(key);
            return Ok(());
        }
        OP_SET => "SET",
        OP_APPEND => "APPEND",
        OP_SUBTRACT => "SUBTRACT",
        op => {
            return Err(invalid_config(format!(
                "{key}: unknown operation {op} (SET 0, DELETE 1, APPEND 2, SUBTRACT 3)"
            )))
        }
    };
    let value = value.ok_or_else(|| invalid_config(format!("{key}: {name} needs a value")))?;
    if op == OP_SET {
        overrides.insert(key.to_string(), value.to_string());
        return Ok(());
    }
    if !LIST_TOPIC_CONFIG_KEYS.contains(&key) {
        return Err(invalid_config(format!(
            "{key}: {name} applies to list settings only ({})",
            LIST_TOPIC_CONFIG_KEYS.join(", ")
        )));
    }
    let current = match overrides.get(key) {
        Some(v) => v.clone(),
        None => defaults.get(key).unwrap_or_default(),
    };
    let edited = edit_list(&current, value, op == OP_APPEND);
    overrides.insert(key.to_string(), edited);
    Ok(())
}

/// A comma-separated list with `values` appended (those not in it yet, in their
/// order) or subtracted (every one given), as Kafka edits list settings.
fn edit_list(current: &str, values: &str, append: bool) -> String {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect()
    };
    let mut list = split(current);
    let given = split(values);
    if append {
        for v in given {
            if !list.contains(&v) {
                list.push(v);
            }
        }
    } else {
        list.retain(|v| !given.contains(v));
    }
    list.join(",")
}

pub async fn incremental_alter(
    ctx: &RequestContext,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        let outcome = alter_one(
            ctx,
            r.resource_type,
            r.resource_name.as_str(),
            request.validate_only,
            |o| {
                let defaults = &ctx.broker.topics.defaults().log;
                for c in &r.configs {
                    let value = c.value.as_ref().map(|v| v.as_str());
                    apply_op(o, defaults, c.name.as_str(), c.config_operation, value)?;
                }
                Ok(())
            },
        )
        .await;
        let response = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        responses.push(match outcome {
            Ok(()) => response,
            Err(e) => response
                .with_error_code(ctx.code(e.code()))
                .with_error_message(message(e.to_string())),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_appended_to_and_subtracted_from_as_kafka_does() {
        assert_eq!(edit_list("delete", "compact", true), "delete,compact");
        assert_eq!(
            edit_list("delete", "compact, delete", true),
            "delete,compact"
        );
        assert_eq!(edit_list("compact,delete", "delete", false), "compact");
        assert_eq!(edit_list("compact", "delete", false), "compact");
        assert_eq!(edit_list("compact", "compact", false), "");
    }

    #[test]
    fn operations_edit_the_override_or_else_the_default() {
        let defaults = TopicConfig::default();
        let mut o = BTreeMap::new();
        let policy = "cleanup.policy";
        apply_op(&mut o, &defaults, policy, OP_APPEND, Some("compact")).unwrap();
        assert_eq!(o[policy], "delete,compact");
        apply_op(&mut o, &defaults, policy, OP_SUBTRACT, Some("delete")).unwrap();
        assert_eq!(o[policy], "compact");
        apply_op(&mut o, &defaults, policy, OP_DELETE, None).unwrap();
        assert!(o.is_empty());
        let refused = [
            ("retention.ms", OP_APPEND, Some("1")),
            ("cleanup.policy", OP_SUBTRACT, None),
            ("cleanup.policy", 7, Some("x")),
            ("no.such.key", OP_SET, Some("1")),
        ];
        for (key, op, value) in refused {
            let e = apply_op(&mut o, &defaults, key, op, value).unwrap_err();
            assert!(matches!(e, TopicError::InvalidConfig(_)), "{key} {op}: {e}");
            assert!(e.to_string().contains(key), "{e}");
        }
        assert!(o.is_empty(), "a refused operation changes nothing: {o:?}");
    }
}
