//! CreateAcls, DescribeAcls and DeleteAcls (v1-3; Kafka 4 dropped v0): the ACLs of the cluster metadata.
//! As in Kafka, they answer SECURITY_DISABLED when no authorizer is configured, need
//! ALTER (create, delete) or DESCRIBE (describe) on the Cluster, and refuse a binding
//! Kafka would not store with INVALID_REQUEST. DeleteAcls removes what its filters
//! match in the metadata this broker holds when it asks the controller.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use tracing::info;

use super::{message, RequestContext};
use crate::acl::{AclBinding, AclFilter, Operation, ResourceType, CLUSTER_NAME};
use crate::cluster::metadata::MetaRecord;
use crate::cluster::CONTROLLER_TIMEOUT;
use crate::metrics::OutcomeLabels;

type Refusal = (i16, String);

/// Bindings one CreateAcls, or filters one DeleteAcls, may carry: a record stays well
/// within a Raft frame.
pub const MAX_ACLS_PER_REQUEST: usize = 1000;
/// ACLs the cluster keeps: its checkpoint stays well within a Raft frame.
pub const MAX_ACLS: usize = 100_000;

/// Refuses a request with more than [`MAX_ACLS_PER_REQUEST`] entries.
fn bounded(n: usize) -> Result<(), Refusal> {
    if n > MAX_ACLS_PER_REQUEST {
        return Err(invalid(format!(
            "{n} entries in one request: at most {MAX_ACLS_PER_REQUEST}"
        )));
    }
    Ok(())
}

/// Whether ACLs can be used at all, and by this caller (`op` on the Cluster).
fn may(ctx: &RequestContext, op: Operation) -> Result<(), Refusal> {
    if !ctx.broker.config.authorizer.enabled {
        return Err((
            ResponseError::SecurityDisabled.code(),
            "no authorizer is configured (authorizer.class.name)".into(),
        ));
    }
    if !ctx.checks().allows(op, ResourceType::Cluster, CLUSTER_NAME) {
        return Err((
            ResponseError::ClusterAuthorizationFailed.code(),
            format!("{op} on the Cluster is needed"),
        ));
    }
    Ok(())
}

fn invalid(e: impl std::fmt::Display) -> Refusal {
    (ResponseError::InvalidRequest.code(), e.to_string())
}

/// Proposes the record `make` builds from a request id and `acls` (nothing when there
/// are none) and waits for it to be applied; then logs and counts each ACL as
/// `outcome`.
async fn change(
    ctx: &RequestContext,
    acls: &[AclBinding],
    outcome: &str,
    make: impl FnOnce(u64, Vec<AclBinding>) -> MetaRecord,
) -> Result<(), Refusal> {
    if acls.is_empty() {
        return Ok(());
    }
    let record = make(ctx.broker.cluster.request_id(), acls.to_vec());
    ctx.broker
        .cluster
        .submit(record, CONTROLLER_TIMEOUT)
        .await
        .map_err(|e| (e.code(), e.to_string()))?;
    let labels = OutcomeLabels {
        outcome: outcome.into(),
    };
    let counter = ctx.broker.metrics.acl_changes.get_or_create(&labels);
    counter.inc_by(acls.len() as u64);
    for acl in acls {
        info!(principal = %ctx.session.principal(), peer = ?ctx.peer, ?acl, outcome, "ACL changed");
    }
    Ok(())
}

pub async fn create(ctx: &RequestContext, request: CreateAclsRequest) -> CreateAclsResponse {
    let held = ctx.broker.cluster.state().acls.len();
    let allowed = may(ctx, Operation::Alter)
        .and_then(|()| bounded(request.creations.len()))
        .and_then(|()| {
            if held + request.creations.len() > MAX_ACLS {
                return Err(invalid(format!(
                    "the cluster holds at most {MAX_ACLS} ACLs"
                )));
            }
            Ok(())
        });
    let checked: Vec<Result<AclBinding, Refusal>> = request
        .creations
        .iter()
        .map(|c| {
            allowed.clone()?;
            AclBinding::from_wire(
                c.resource_type,
                &c.resource_name,
                c.resource_pattern_type,
                &c.principal,
                &c.host,
                c.operation,
                c.permission_type,
            )
            .map_err(invalid)
        })
        .collect();
    let acls: Vec<AclBinding> = checked.iter().flatten().cloned().collect();
    let submitted = change(ctx, &acls, "created", |request, acls| {
        MetaRecord::CreateAcls { request, acls }
    })
    .await;
    let results = checked
        .into_iter()
        .map(|c| match c.and_then(|_| submitted.clone()) {
            Ok(()) => AclCreationResult::default(),
            Err((code, why)) => AclCreationResult::default()
                .with_error_code(ctx.code(code))
                .with_error_message(message(why)),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

fn text(s: &Option<StrBytes>) -> Option<&str> {
    s.as_ref().map(|s| s.as_str())
}

pub fn describe(ctx: &RequestContext, r: DescribeAclsRequest) -> DescribeAclsResponse {
    let filter = may(ctx, Operation::Describe).and_then(|()| {
        AclFilter::from_wire(
            r.resource_type_filter,
            text(&r.resource_name_filter),
            r.pattern_type_filter,
            text(&r.principal_filter),
            text(&r.host_filter),
            r.operation,
            r.permission_type,
        )
        .map_err(invalid)
    });
    let filter = match filter {
        Ok(f) => f,
        Err((code, why)) => {
            return DescribeAclsResponse::default()
                .with_error_code(ctx.code(code))
                .with_error_message(message(why))
        }
    };
    let state = ctx.broker.cluster.state();
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for acl in state.acls.matching(&filter) {
        let same = resources.last().is_some_and(|r| {
            r.resource_type == acl.resource_type.code()
                && r.resource_name.as_str() == acl.name
                && r.pattern_type == acl.pattern.code()
        });
        if !same {
            resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(acl.resource_type.code())
                    .with_resource_name(StrBytes::from_string(acl.name.clone()))
                    .with_pattern_type(acl.pattern.code()),
            );
        }
        if let Some(last) = resources.last_mut() {
            last.acls.push(description(acl));
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

fn description(acl: &AclBinding) -> AclDescription {
    AclDescription::default()
        .with_principal(StrBytes::from_string(acl.principal.clone()))
        .with_host(StrBytes::from_string(acl.host.clone()))
        .with_operation(acl.operation.code())
        .with_permission_type(acl.permission.code())
}

fn filter_of(f: &DeleteAclsFilter) -> Result<AclFilter, Refusal> {
    AclFilter::from_wire(
        f.resource_type_filter,
        text(&f.resource_name_filter),
        f.pattern_type_filter,
        text(&f.principal_filter),
        text(&f.host_filter),
        f.operation,
        f.permission_type,
    )
    .map_err(invalid)
}

pub async fn delete(ctx: &RequestContext, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let allowed = may(ctx, Operation::Alter).and_then(|()| bounded(request.filters.len()));
    let matched: Vec<Result<Vec<AclBinding>, Refusal>> = {
        let state = ctx.broker.cluster.state();
        let of = |f: &DeleteAclsFilter| {
            allowed.clone()?;
            let filter = filter_of(f)?;
            Ok(state.acls.matching(&filter).cloned().collect())
        };
        request.filters.iter().map(of).collect()
    };
    let mut acls: Vec<AclBinding> = matched.iter().flatten().flatten().cloned().collect();
    acls.sort();
    acls.dedup();
    let submitted = change(ctx, &acls, "deleted", |request, acls| {
        MetaRecord::DeleteAcls { request, acls }
    })
    .await;
    let results = matched
        .into_iter()
        .map(
            |m| match m.and_then(|acls| submitted.clone().map(|()| acls)) {
                Ok(acls) => DeleteAclsFilterResult::default()
                    .with_matching_acls(acls.iter().map(matching).collect()),
                Err((code, why)) => DeleteAclsFilterResult::default()
                    .with_error_code(ctx.code(code))
                    .with_error_message(message(why)),
            },
        )
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

fn matching(acl: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(acl.resource_type.code())
        .with_resource_name(StrBytes::from_string(acl.name.clone()))
        .with_pattern_type(acl.pattern.code())
        .with_principal(StrBytes::from_string(acl.principal.clone()))
        .with_host(StrBytes::from_string(acl.host.clone()))
        .with_operation(acl.operation.code())
        .with_permission_type(acl.permission.code())
}
