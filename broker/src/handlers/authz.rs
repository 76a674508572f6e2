//! The authorizer as a handler uses it ([`Checks`]): the caller of the request, the
//! decision against the current ACLs, and the log line and count of each denial.

use kafka_protocol::error::ResponseError;
use tracing::info;

use super::RequestContext;
use crate::acl::{Caller, Decision, Operation, ResourceType};
use crate::cluster::metadata::MetadataState;
use crate::config::audit_log::EventType;
use crate::group::GroupError;
use crate::metrics::DenialLabels;

/// Authorization checks for one request. `None` caller: no authorizer configured,
/// everything is allowed.
pub struct Checks<'a> {
    ctx: &'a RequestContext,
    caller: Option<Caller>,
}

impl RequestContext {
    /// The authorization checks of this request.
    pub fn checks(&self) -> Checks<'_> {
        let caller = self.broker.config.authorizer.enabled.then(|| Caller {
            principal: self.session.principal(),
            host: self
                .peer
                .map(|p| p.ip().to_canonical().to_string())
                .unwrap_or_default(),
        });
        Checks { ctx: self, caller }
    }
}

impl Checks<'_> {
    fn decision<'s>(&'s self, state: &'s MetadataState) -> Decision<'s> {
        Decision {
            settings: &self.ctx.broker.config.authorizer,
            acls: &state.acls,
        }
    }

    /// Whether the caller may do `op` on the resource, by the ACLs in `state`. A denial
    /// is logged and counted.
    pub fn allows_in(
        &self,
        state: &MetadataState,
        op: Operation,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        let allowed = self.sees_in(state, op, rt, name);
        if !allowed {
            self.denied(op, rt, name);
        }
        allowed
    }

    /// [`Checks::allows_in`] against the current ACLs. Takes the metadata lock: never
    /// call it while holding `cluster.state()`.
    pub fn allows(&self, op: Operation, rt: ResourceType, name: &str) -> bool {
        if self.caller.is_none() {
            return true;
        }
        let state = self.ctx.broker.cluster.state();
        self.allows_in(&state, op, rt, name)
    }

    /// Whether the caller may do `op` on the resource, without logging a denial: for
    /// filtering what a listing shows.
    pub fn sees_in(
        &self,
        state: &MetadataState,
        op: Operation,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        match &self.caller {
            None => true,
            Some(caller) => self.decision(state).allows(caller, op, rt, name),
        }
    }

    /// [`Checks::sees_in`] against the current ACLs. Takes the metadata lock.
    pub fn sees(&self, op: Operation, rt: ResourceType, name: &str) -> bool {
        if self.caller.is_none() {
            return true;
        }
        let state = self.ctx.broker.cluster.state();
        self.sees_in(&state, op, rt, name)
    }

    /// `Err` unless the caller may do `op` on group `group`.
    pub fn group(&self, op: Operation, group: &str) -> Result<(), GroupError> {
        if self.allows(op, ResourceType::Group, group) {
            return Ok(());
        }
        Err(GroupError::Unauthorized {
            group: group.to_string(),
        })
    }

    /// Whether the caller may do `op` on some resource of type `rt` (KIP-679). Takes
    /// the metadata lock.
    pub fn allows_any(&self, op: Operation, rt: ResourceType) -> bool {
        let Some(caller) = &self.caller else {
            return true;
        };
        let state = self.ctx.broker.cluster.state();
        let allowed = self.decision(&state).allows_any(caller, op, rt);
        if !allowed {
            self.denied(op, rt, "(any)");
        }
        allowed
    }

    /// Kafka's `authorized_operations` of the resource for the caller: every operation
    /// of its type when no authorizer is configured. Takes the metadata lock.
    pub fn operations(&self, rt: ResourceType, name: &str) -> i32 {
        match &self.caller {
            None => rt
                .operations()
                .iter()
                .fold(0, |bits, op| bits | (1 << op.code())),
            Some(caller) => {
                let state = self.ctx.broker.cluster.state();
                self.decision(&state).operations(caller, rt, name)
            }
        }
    }

    /// [`Checks::operations`] when `wanted`, else "not asked for" (`i32::MIN`).
    pub fn operations_if(&self, wanted: bool, rt: ResourceType, name: &str) -> i32 {
        if wanted {
            self.operations(rt, name)
        } else {
            super::AUTHORIZED_OPERATIONS_OMITTED
        }
    }

    /// Kafka's `cluster_authorized_operations` when `wanted`: the Cluster's operations
    /// for a caller with DESCRIBE on it, else none.
    pub fn cluster_operations(&self, wanted: bool) -> i32 {
        let (rt, name) = (ResourceType::Cluster, crate::acl::CLUSTER_NAME);
        if !wanted {
            super::AUTHORIZED_OPERATIONS_OMITTED
        } else if self.sees(Operation::Describe, rt, name) {
            self.operations(rt, name)
        } else {
            0
        }
    }

    fn denied(&self, op: Operation, rt: ResourceType, name: &str) {
        let ctx = self.ctx;
        info!(
            principal = self.caller.as_ref().map(|c| c.principal.as_str()),
            peer = ?ctx.peer,
            api = ?ctx.api,
            operation = %op,
            resource_type = %rt,
            resource = name,
            "authorization denied"
        );
        let labels = DenialLabels {
            resource_type: rt.name().into(),
            operation: op.name().into(),
        };
        ctx.broker
            .metrics
            .authorization_denials
            .get_or_create(&labels)
            .inc();
        let trail = &ctx.broker.audit_trail;
        if trail.records(EventType::Authorize) {
            let why = format!("{op} on {rt} {name} denied");
            let resource = crate::audit_trail::Resource::new("resource", format!("{rt}:{name}"));
            let event = ctx.audit_event(
                EventType::Authorize,
                crate::audit_trail::Activity::Other,
                vec![resource],
                Err(why),
            );
            trail.record(&ctx.broker.metrics, event);
        }
    }
}

/// The error for a topic not found: TOPIC_AUTHORIZATION_FAILED when the caller was not
/// allowed to it (whether it exists or not, as Kafka answers), else
/// UNKNOWN_TOPIC_OR_PARTITION.
pub fn missing_topic(allowed: bool) -> ResponseError {
    if allowed {
        ResponseError::UnknownTopicOrPartition
    } else {
        ResponseError::TopicAuthorizationFailed
    }
}
