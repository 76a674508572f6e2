//! DeleteTopics: by name (v0–5) or by name or id (v6).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::message;
use super::RequestContext;
use crate::acl::{Operation, ResourceType};

pub async fn handle(ctx: &RequestContext, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let b = &ctx.broker;
    let wanted: Vec<(Option<TopicName>, Uuid)> = if ctx.version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    let checks = ctx.checks();
    for (name, id) in wanted {
        let name = match name {
            Some(n) => Some(n),
            // A topic the caller may not describe is as unknown as a missing one.
            None => b
                .topics
                .get_by_id(id)
                .filter(|t| checks.sees(Operation::Describe, ResourceType::Topic, &t.name))
                .map(|t| TopicName(StrBytes::from_string(t.name.to_string()))),
        };
        let result = DeletableTopicResult::default()
            .with_name(name.clone())
            .with_topic_id(id);
        let Some(name) = name else {
            responses.push(result.with_error_code(ctx.code(ResponseError::UnknownTopicId.code())));
            continue;
        };
        if !ctx
            .checks()
            .allows(Operation::Delete, ResourceType::Topic, &name)
        {
            let code = ResponseError::TopicAuthorizationFailed.code();
            responses.push(result.with_error_code(ctx.code(code)));
            continue;
        }
        responses.push(
            match b.cluster.delete_topic(&b.topics, name.as_str()).await {
                Ok(deleted_id) => result.with_topic_id(deleted_id),
                Err(e) => result
                    .with_error_code(ctx.code(e.code()))
                    .with_error_message(message(e.to_string())),
            },
        );
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
