//! Metadata: this broker, and the topics asked for (all when none are named), creating
//! unknown ones when `auto.create.topics.enable` and the client allow it.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::AUTHORIZED_OPERATIONS_OMITTED;
use crate::connection::RequestContext;
use crate::topics::{validate_topic_name, Topic};
use crate::Broker;

/// This broker as Metadata and DescribeCluster describe it.
pub fn this_broker(b: &Broker) -> MetadataResponseBroker {
    MetadataResponseBroker::default()
        .with_node_id(b.node_id.into())
        .with_host(StrBytes::from_string(b.advertised_host.clone()))
        .with_port(b.advertised_port)
}

/// One topic's entry: every partition led by this broker, epoch 0.
pub fn describe_topic(b: &Broker, t: &Topic) -> MetadataResponseTopic {
    let node = b.node_id.into();
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index())
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
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
    let topics = if all {
        b.topics
            .all()
            .iter()
            .map(|t| describe_topic(b, t))
            .collect()
    } else {
        let mut out = Vec::new();
        for wanted in request.topics.unwrap_or_default() {
            out.push(lookup(ctx, wanted.name, wanted.topic_id, allow_create).await);
        }
        out
    };
    MetadataResponse::default()
        .with_brokers(vec![this_broker(b)])
        .with_cluster_id(Some(StrBytes::from_string(b.cluster_id.clone())))
        .with_controller_id(b.node_id.into())
        .with_topics(topics)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

async fn lookup(
    ctx: &RequestContext,
    name: Option<TopicName>,
    id: Uuid,
    allow_create: bool,
) -> MetadataResponseTopic {
    let b = &ctx.broker;
    let Some(name) = name else {
        return match b.topics.get_by_id(id) {
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
    match b
        .topics
        .create(name.as_str(), -1, -1, Default::default())
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
