//! CreatePartitions: grows topics (never shrinks them).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::message;
use super::RequestContext;
use crate::acl::{Operation, ResourceType};

pub async fn handle(
    ctx: &RequestContext,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let b = &ctx.broker;
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if !ctx
            .checks()
            .allows(Operation::Alter, ResourceType::Topic, &t.name)
        {
            let code = ResponseError::TopicAuthorizationFailed.code();
            results.push(result.with_error_code(ctx.code(code)));
            continue;
        }
        let assigned_elsewhere = t.assignments.as_ref().is_some_and(|a| {
            a.iter()
                .any(|r| r.broker_ids.len() != 1 || *r.broker_ids[0] != b.node_id)
        });
        if assigned_elsewhere {
            results.push(
                result
                    .with_error_code(ctx.code(ResponseError::InvalidReplicaAssignment.code()))
                    .with_error_message(message(format!(
                        "this cluster has one broker, id {}",
                        b.node_id
                    ))),
            );
            continue;
        }
        results.push(
            match b
                .cluster
                .create_partitions(&b.topics, t.name.as_str(), t.count, request.validate_only)
                .await
            {
                Ok(_) => result,
                Err(e) => result
                    .with_error_code(ctx.code(e.code()))
                    .with_error_message(message(e.to_string())),
            },
        );
    }
    CreatePartitionsResponse::default().with_results(results)
}
