//! Metadata: this broker, and the topics asked for (all when none are named), creating
//! unknown ones when `auto.create.topics.enable` and the client allow it.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::RequestContext;
use super::AUTHORIZED_OPERATIONS_OMITTED;
use crate::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::topics::{validate_topic_name, Topic};
use crate::Broker;

/// Every broker a client of `listener` may connect to: every registered broker with a
/// listener of that name, at that listener's advertised address.
pub fn all_brokers(b: &Broker, listener: &str) -> Vec<MetadataResponseBroker> {
    let state = b.cluster.state();
    state
        .brokers
        .iter()
        .filter_map(|(&id, meta)| {
            let (host, port) = meta.endpoint(listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id((id as i32).into())
                    .with_host(StrBytes::from_string(host.to_string()))
                    .with_port(port),
            )
        })
        .collect()
}

/// The controller clients are told about: the controller group's leader (-1 while
/// there is none).
pub fn controller_id(b: &Broker) -> i32 {
    b.cluster.controller_leader().map_or(-1, |l| l as i32)
}

/// One topic's entry: each partition's leader is what this broker's replica knows, else
/// the controller's latest report, and the epoch is the Raft term (LEADER_NOT_AVAILABLE
/// while no leader is known).
pub fn describe_topic(b: &Broker, t: &Topic) -> MetadataResponseTopic {
    let c = &b.cluster;
    let placed = c.state().topics.get(&*t.name).cloned();
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let out = MetadataResponsePartition::default().with_partition_index(p.index());
            let group = p.group();
            let replicas: Vec<_> = placed
                .as_ref()
                .and_then(|m| m.partitions.get(p.index() as usize))
                .map(|m| {
                    m.all_replicas()
                        .iter()
                        .map(|&r| (r as i32).into())
                        .collect()
                })
                .unwrap_or_default();
            let view = p.view();
            let leader = c.leader_of(group, view);
            let epoch = match view {
                Some(v) if v.term > 0 => i32::try_from(v.term).unwrap_or(i32::MAX),
                _ => c
                    .state()
                    .leaders
                    .get(&group)
                    .map_or(-1, |&(_, t)| i32::try_from(t).unwrap_or(i32::MAX)),
            };
            // The leader's own measurement when it is this broker; elsewhere the
            // replica list (Kafka clients only display the ISR).
            let isr = match c.isr(group) {
                Some(isr) => isr.in_sync.iter().map(|&r| (r as i32).into()).collect(),
                None => replicas.clone(),
            };
            // Replicas on brokers this one has not heard from lately.
            let offline = replicas
                .iter()
                .filter(|r: &&BrokerId| !c.is_alive(u64::try_from(r.0).unwrap_or(0)))
                .copied()
                .collect();
            let out = out
                .with_replica_nodes(replicas)
                .with_isr_nodes(isr)
                .with_offline_replicas(offline)
                .with_leader_epoch(epoch);
            match leader {
                Some(l) => out.with_leader_id((l as i32).into()),
                None => out
                    .with_leader_id((-1).into())
                    .with_error_code(ResponseError::LeaderNotAvailable.code()),
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.to_string()))))
        .with_topic_id(t.id)
        .with_is_internal(crate::topics::is_internal(&t.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

fn topic_error(
    ctx: &RequestContext,
    name: Option<TopicName>,
    id: Uuid,
    code: ResponseError,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(ctx.code(code.code()))
        .with_name(name)
        .with_topic_id(id)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

pub async fn handle(ctx: &RequestContext, request: MetadataRequest) -> MetadataResponse {
    let b = &ctx.broker;
    // v0 asks for every topic with an empty list; later versions with null.
    let all = match &request.topics {
        None => true,
        Some(t) => t.is_empty() && ctx.version == 0,
    };
    // Before v4 the field is absent and creation follows the broker setting.
    let allow_create = (ctx.version < 4 || request.allow_auto_topic_creation)
        && b.topics.defaults().auto_create_topics;
    let checks = ctx.checks();
    let mut topics: Vec<MetadataResponseTopic> = if all {
        let all = b.topics.all();
        let visible: Vec<&Arc<Topic>> = {
            let state = b.cluster.state();
            let sees = |t: &&Arc<Topic>| {
                checks.sees_in(&state, Operation::Describe, ResourceType::Topic, &t.name)
            };
            all.iter().filter(sees).collect()
        };
        visible.into_iter().map(|t| describe_topic(b, t)).collect()
    } else {
        let mut out = Vec::new();
        let mut creations_left = MAX_AUTO_CREATED_PER_REQUEST;
        for wanted in request.topics.unwrap_or_default() {
            out.push(
                lookup(
                    ctx,
                    wanted.name,
                    wanted.topic_id,
                    allow_create,
                    &mut creations_left,
                )
                .await,
            );
        }
        out
    };
    for t in topics.iter_mut().filter(|t| t.error_code == 0) {
        let name = t.name.as_ref().map_or("", |n| n.as_str());
        t.topic_authorized_operations = checks.operations_if(
            request.include_topic_authorized_operations,
            ResourceType::Topic,
            name,
        );
    }
    // The field is read from v8 to v10 only.
    let cluster_ops = checks.cluster_operations(request.include_cluster_authorized_operations);
    MetadataResponse::default()
        .with_brokers(all_brokers(b, &ctx.session.listener))
        .with_cluster_id(b.client_cluster_id().map(StrBytes::from_string))
        .with_controller_id(controller_id(b).into())
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops)
}

/// Topics one Metadata request may create (`auto.create.topics.enable`). Beyond it the
/// answer is LEADER_NOT_AVAILABLE, which clients retry, so a request naming thousands of
/// unknown topics cannot make the broker create them all at once.
pub const MAX_AUTO_CREATED_PER_REQUEST: usize = 16;

async fn lookup(
    ctx: &RequestContext,
    name: Option<TopicName>,
    id: Uuid,
    allow_create: bool,
    creations_left: &mut usize,
) -> MetadataResponseTopic {
    let b = &ctx.broker;
    let Some(name) = name else {
        // A topic the caller may not describe is as unknown as a missing one.
        let described = |t: &Arc<Topic>| {
            ctx.checks()
                .sees(Operation::Describe, ResourceType::Topic, &t.name)
        };
        return match b.topics.get_by_id(id).filter(described) {
            Some(t) => describe_topic(b, &t),
            // The response's name is nullable only from v12.
            None if ctx.version < 12 => topic_error(
                ctx,
                Some(TopicName(StrBytes::from_string(String::new()))),
                id,
                ResponseError::UnknownTopicId,
            ),
            None => topic_error(ctx, None, id, ResponseError::UnknownTopicId),
        };
    };
    let checks = ctx.checks();
    if !checks.allows(Operation::Describe, ResourceType::Topic, &name) {
        return topic_error(ctx, Some(name), id, ResponseError::TopicAuthorizationFailed);
    }
    let found: Option<Arc<Topic>> = b.topics.get(name.as_str());
    if let Some(t) = found {
        return describe_topic(b, &t);
    }
    if validate_topic_name(name.as_str()).is_err() {
        return topic_error(ctx, Some(name), id, ResponseError::InvalidTopicException);
    }
    if !allow_create {
        return topic_error(ctx, Some(name), id, ResponseError::UnknownTopicOrPartition);
    }
    let may_create = checks.sees(Operation::Create, ResourceType::Cluster, CLUSTER_NAME)
        || checks.allows(Operation::Create, ResourceType::Topic, &name);
    if !may_create {
        return topic_error(ctx, Some(name), id, ResponseError::TopicAuthorizationFailed);
    }
    if *creations_left == 0 {
        return topic_error(ctx, Some(name), id, ResponseError::LeaderNotAvailable);
    }
    *creations_left -= 1;
    match b
        .cluster
        .create_topic(&b.topics, name.as_str(), -1, -1, Default::default())
        .await
    {
        Ok(t) => describe_topic(b, &t),
        // Created by a concurrent request in the meantime.
        Err(_) => match b.topics.get(name.as_str()) {
            Some(t) => describe_topic(b, &t),
            None => topic_error(ctx, Some(name), id, ResponseError::UnknownTopicOrPartition),
        },
    }
}
