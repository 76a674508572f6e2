//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.
//!
//! Topics: every key in `config::topic_keys::TOPIC_KEYS`, with its type and its source
//! (set on the topic, set by the broker's configuration, or Kafka's default); with
//! `include_synonyms` the values it takes precedence over, Kafka's way; with
//! `include_documentation` whether Strata honours it. The broker resource (name = node
//! id) is described read-only: broker settings come from the config file and flags and
//! change with a restart.
//! AlterConfigs replaces a topic's whole set of overrides (Kafka's semantics);
//! IncrementalAlterConfigs sets or deletes single keys, and APPENDs to or SUBTRACTs
//! from list settings (`cleanup.policy`), as Kafka does (KIP-339): the list edited is
//! the topic's override, else the broker default; the result is checked like a SET.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
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
use crate::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::cluster::ClusterError;
use crate::config::topic_keys::{self, Effect, KeyType, TopicKey, TOPIC_KEYS};
use crate::config::{TopicConfig, TopicDefaults};
use crate::topics::{Topic, TopicError};
use crate::Broker;

/// Kafka's resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Kafka's config types (DescribeConfigs v3+) of the broker's own settings.
const TYPE_BOOLEAN: i8 = KeyType::Boolean as i8;
const TYPE_STRING: i8 = KeyType::String as i8;
const TYPE_INT: i8 = KeyType::Int as i8;

/// The broker's settings as DescribeConfigs shows them: `(name, value, type, source)`.
/// Topic defaults appear under their broker setting's name (`log.retention.ms`, …), as
/// STATIC_BROKER_CONFIG when the configuration sets them, else DEFAULT_CONFIG.
fn broker_entries(b: &Broker) -> Vec<(&'static str, String, i8, i8)> {
    let c = &b.config;
    let fixed = [
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
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
            TYPE_INT,
        ),
    ];
    let mut entries: Vec<_> = fixed
        .into_iter()
        .map(|(k, v, kind)| (k, v, kind, SOURCE_STATIC_BROKER))
        .collect();
    for k in TOPIC_KEYS.iter().filter(|k| !k.broker_name.is_empty()) {
        let value = c.topics.log.get(k.name).unwrap_or_default();
        let source = source_of(&c.topics, &BTreeMap::new(), k.name);
        entries.push((k.broker_name, value, k.kind as i8, source));
    }
    entries
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
        .with_config_source(source);
    if ctx.version >= 3 {
        e = e.with_config_type(kind);
    }
    e
}

pub fn describe(ctx: &RequestContext, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let b = &ctx.broker;
    let request_flags = Wanted {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation,
    };
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
            let op = Operation::DescribeConfigs;
            if let Some(code) = refused(ctx, r.resource_type, &r.resource_name, op) {
                return result.with_error_code(code);
            }
            match r.resource_type {
                RESOURCE_TOPIC => match b.topics.get(r.resource_name.as_str()) {
                    Some(t) => result.with_configs(
                        TOPIC_KEYS
                            .iter()
                            .filter(|k| wanted(k.name))
                            .map(|k| topic_entry(ctx, &t, k, &request_flags))
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
                            .filter(|(k, _, _, _)| wanted(k))
                            .map(|(k, v, kind, source)| {
                                entry(ctx, k, v, source, kind).with_read_only(true)
                            })
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

/// What DescribeConfigs asks for beyond values.
struct Wanted {
    synonyms: bool,
    documentation: bool,
}

/// A topic key's entry: its value and where it comes from (the topic's override, the
/// broker's configuration, or Kafka's default) and, when asked, the values it takes
/// precedence over (synonyms, most to least specific) and whether Strata honours it.
fn topic_entry(
    ctx: &RequestContext,
    t: &Topic,
    key: &TopicKey,
    wanted: &Wanted,
) -> DescribeConfigsResourceResult {
    let defaults = ctx.broker.topics.defaults();
    let broker_name = Some(key.broker_name).filter(|n| !n.is_empty());
    let mut synonyms = Vec::new();
    if t.overrides.contains_key(key.name) {
        synonyms.push((key.name, t.config.get(key.name), SOURCE_DYNAMIC_TOPIC));
    }
    if let Some(name) = broker_name {
        if defaults.explicit.contains(key.name) {
            synonyms.push((name, defaults.log.get(key.name), SOURCE_STATIC_BROKER));
        }
        let kafka_default = TopicConfig::default().get(key.name);
        synonyms.push((name, kafka_default, SOURCE_DEFAULT));
    }
    let source = source_of(defaults, &t.overrides, key.name);
    let mut e = entry(
        ctx,
        key.name,
        t.config.get(key.name).unwrap_or_default(),
        source,
        key.kind as i8,
    );
    if wanted.synonyms && ctx.version >= 1 {
        e.synonyms = synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_static_str(name))
                    .with_value(value.map(StrBytes::from_string))
                    .with_source(source)
            })
            .collect();
    }
    if wanted.documentation && ctx.version >= 3 {
        if let Effect::Stored { why, .. } = key.effect {
            e.documentation = message(format!("Accepted and stored, with no effect: {why}."));
        }
    }
    e
}

/// Where a topic's value of `key` comes from: its override, the broker's configuration,
/// or Kafka's default.
pub(crate) fn source_of(
    defaults: &TopicDefaults,
    overrides: &BTreeMap<String, String>,
    key: &str,
) -> i8 {
    if overrides.contains_key(key) {
        SOURCE_DYNAMIC_TOPIC
    } else if defaults.explicit.contains(key) {
        SOURCE_STATIC_BROKER
    } else {
        SOURCE_DEFAULT
    }
}

/// An empty name means "the broker answering" (Kafka's default-broker resource).
/// The refusal when the caller may not do `op` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on
/// the resource: on the topic for a topic, on the Cluster for a broker.
fn refused(ctx: &RequestContext, resource_type: i8, name: &str, op: Operation) -> Option<i16> {
    let checks = ctx.checks();
    let code = match resource_type {
        RESOURCE_TOPIC if !checks.allows(op, ResourceType::Topic, name) => {
            ResponseError::TopicAuthorizationFailed
        }
        RESOURCE_BROKER if !checks.allows(op, ResourceType::Cluster, CLUSTER_NAME) => {
            ResponseError::ClusterAuthorizationFailed
        }
        _ => return None,
    };
    Some(ctx.code(code.code()))
}

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
        let response = alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let op = Operation::AlterConfigs;
        if let Some(code) = refused(ctx, r.resource_type, &r.resource_name, op) {
            responses.push(response.with_error_code(code));
            continue;
        }
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
    if topic_keys::topic_key(key).is_none() {
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
    if !topic_keys::is_list(key) {
        let lists: Vec<&str> = TOPIC_KEYS
            .iter()
            .filter(|k| k.kind == KeyType::List)
            .map(|k| k.name)
            .collect();
        return Err(invalid_config(format!(
            "{key}: {name} applies to list settings only ({})",
            lists.join(", ")
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
        let response = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let op = Operation::AlterConfigs;
        if let Some(code) = refused(ctx, r.resource_type, &r.resource_name, op) {
            responses.push(response.with_error_code(code));
            continue;
        }
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
