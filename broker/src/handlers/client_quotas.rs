//! DescribeClientQuotas and AlterClientQuotas (v0-1): the quotas of users and client
//! ids (see `crate::quota`), kept in the cluster metadata. As in Kafka, they need
//! DESCRIBE_CONFIGS / ALTER_CONFIGS on the Cluster; entity types are `user` and
//! `client-id` (a null name is the default entity); the keys are
//! `producer_byte_rate`, `consumer_byte_rate` (whole bytes per second) and
//! `request_percentage`. Anything else, a non-positive value or an entity or key named
//! twice is INVALID_REQUEST. `ip` entities (connection rates) are not supported: they
//! match nothing and cannot be set.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::EntryData as AlterEntry;
use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlteredEntity, EntryData as AlterResult,
};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_client_quotas_response::{
    EntityData as DescribedEntity, EntryData as Described, ValueData,
};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use tracing::info;

use super::{message, RequestContext};
use crate::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::cluster::metadata::MetaRecord;
use crate::cluster::CONTROLLER_TIMEOUT;
use crate::quota::{EntityName, QuotaChange, QuotaEntity, QuotaKind};

type Refusal = (i16, String);

const USER: &str = "user";
const CLIENT_ID: &str = "client-id";
const IP: &str = "ip";

fn invalid(why: impl Into<String>) -> Refusal {
    (ResponseError::InvalidRequest.code(), why.into())
}

fn may(ctx: &RequestContext, op: Operation) -> Result<(), Refusal> {
    if ctx.checks().allows(op, ResourceType::Cluster, CLUSTER_NAME) {
        return Ok(());
    }
    Err((
        ResponseError::ClusterAuthorizationFailed.code(),
        format!("{op} on the Cluster is needed"),
    ))
}

/// One component of a DescribeClientQuotas filter: the entity type and which names of
/// it match (`None`: any).
struct Component {
    kind: String,
    name: Option<EntityName>,
}

fn component(c: &ComponentData) -> Result<Component, Refusal> {
    let kind = c.entity_type.to_string();
    if ![USER, CLIENT_ID, IP].contains(&kind.as_str()) {
        return Err(invalid(format!("unknown entity type {kind:?}")));
    }
    let name = match (c.match_type, &c._match) {
        (0, Some(n)) => Some(EntityName::Named(n.to_string())),
        (0, None) => return Err(invalid("an exact match needs a name")),
        (1, _) => Some(EntityName::Default),
        (2, _) => None,
        (t, _) => return Err(invalid(format!("unknown match type {t}"))),
    };
    Ok(Component { kind, name })
}

fn side<'e>(entity: &'e QuotaEntity, kind: &str) -> Option<&'e EntityName> {
    match kind {
        USER => entity.user.as_ref(),
        CLIENT_ID => entity.client_id.as_ref(),
        _ => None,
    }
}

/// Whether `entity` passes every component (and, when `strict`, has no other side).
fn selected(entity: &QuotaEntity, components: &[Component], strict: bool) -> bool {
    let each = components.iter().all(|c| match side(entity, &c.kind) {
        None => false,
        Some(name) => c.name.as_ref().is_none_or(|wanted| wanted == name),
    });
    let named: HashSet<&str> = components.iter().map(|c| c.kind.as_str()).collect();
    let others = [(USER, &entity.user), (CLIENT_ID, &entity.client_id)]
        .iter()
        .any(|(kind, s)| s.is_some() && !named.contains(kind));
    each && !(strict && others)
}

fn described(entity: &QuotaEntity, values: &BTreeMap<String, f64>) -> Described {
    let sides = [(USER, &entity.user), (CLIENT_ID, &entity.client_id)];
    let entity = sides
        .into_iter()
        .filter_map(|(kind, name)| {
            let name = name.as_ref()?;
            Some(
                DescribedEntity::default()
                    .with_entity_type(StrBytes::from_static_str(kind))
                    .with_entity_name(name.to_wire().map(|n| StrBytes::from_string(n.into()))),
            )
        })
        .collect();
    let values = values
        .iter()
        .map(|(k, v)| {
            ValueData::default()
                .with_key(StrBytes::from_string(k.clone()))
                .with_value(*v)
        })
        .collect();
    Described::default().with_entity(entity).with_values(values)
}

pub fn describe(
    ctx: &RequestContext,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let components = may(ctx, Operation::DescribeConfigs).and_then(|()| {
        let cs: Vec<Component> = request
            .components
            .iter()
            .map(component)
            .collect::<Result<_, _>>()?;
        let kinds: HashSet<&str> = cs.iter().map(|c| c.kind.as_str()).collect();
        if kinds.len() != cs.len() {
            return Err(invalid("an entity type is named twice"));
        }
        Ok(cs)
    });
    let components = match components {
        Ok(cs) => cs,
        Err((code, why)) => {
            return DescribeClientQuotasResponse::default()
                .with_error_code(ctx.code(code))
                .with_error_message(message(why))
        }
    };
    let state = ctx.broker.cluster.state();
    let entries = state
        .quotas
        .entries()
        .filter(|(e, _)| selected(e, &components, request.strict))
        .map(|(e, values)| described(e, values))
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

/// The entity an alteration names.
fn entity(entry: &AlterEntry) -> Result<QuotaEntity, Refusal> {
    let mut out = QuotaEntity {
        user: None,
        client_id: None,
    };
    for e in &entry.entity {
        let name = EntityName::from_wire(e.entity_name.as_deref());
        if name == EntityName::Named(String::new()) {
            return Err(invalid(
                "an entity name is empty (null is the default entity)",
            ));
        }
        let slot = match e.entity_type.as_str() {
            USER => &mut out.user,
            CLIENT_ID => &mut out.client_id,
            IP => return Err(invalid("ip quotas (connection rates) are not supported")),
            other => return Err(invalid(format!("unknown entity type {other:?}"))),
        };
        if slot.replace(name).is_some() {
            return Err(invalid(format!(
                "entity type {} is named twice",
                e.entity_type.as_str()
            )));
        }
    }
    if out.user.is_none() && out.client_id.is_none() {
        return Err(invalid("the entity is empty"));
    }
    Ok(out)
}

/// The change an entry asks for, checked.
fn change(entry: &AlterEntry) -> Result<QuotaChange, Refusal> {
    let entity = entity(entry)?;
    let (mut set, mut remove, mut seen) = (BTreeMap::new(), Vec::new(), HashSet::new());
    for op in &entry.ops {
        let key = op.key.as_str();
        let Some(kind) = QuotaKind::from_key(key) else {
            return Err(invalid(format!("unknown or unsupported quota key {key:?}")));
        };
        if !seen.insert(key) {
            return Err(invalid(format!("quota key {key} is named twice")));
        }
        if op.remove {
            remove.push(key.to_string());
            continue;
        }
        let whole = kind != QuotaKind::Request;
        if !op.value.is_finite() || op.value <= 0.0 || (whole && op.value.fract() != 0.0) {
            let what = if whole {
                "a whole number above 0"
            } else {
                "above 0"
            };
            return Err(invalid(format!("{key} = {}: it must be {what}", op.value)));
        }
        set.insert(key.to_string(), op.value);
    }
    Ok(QuotaChange {
        entity,
        set,
        remove,
    })
}

pub async fn alter(
    ctx: &RequestContext,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let allowed = may(ctx, Operation::AlterConfigs);
    let mut checked: Vec<Result<QuotaChange, Refusal>> = request
        .entries
        .iter()
        .map(|e| allowed.clone().and_then(|()| change(e)))
        .collect();
    let mut times: BTreeMap<QuotaEntity, usize> = BTreeMap::new();
    for c in checked.iter().flatten() {
        *times.entry(c.entity.clone()).or_default() += 1;
    }
    for c in &mut checked {
        if c.as_ref().is_ok_and(|c| times[&c.entity] > 1) {
            *c = Err(invalid("the entity is altered twice in one request"));
        }
    }
    let changes: Vec<QuotaChange> = checked.iter().flatten().cloned().collect();
    let submitted = if changes.is_empty() || request.validate_only {
        Ok(())
    } else {
        let record = MetaRecord::AlterClientQuotas {
            request: ctx.broker.cluster.request_id(),
            changes: changes.clone(),
        };
        let cluster = &ctx.broker.cluster;
        cluster
            .submit(record, CONTROLLER_TIMEOUT)
            .await
            .map_err(|e| (e.code(), e.to_string()))
    };
    if submitted.is_ok() && !request.validate_only {
        for c in &changes {
            info!(principal = %ctx.session.principal(), peer = ?ctx.peer, entity = ?c.entity, set = ?c.set, remove = ?c.remove, "client quota changed");
        }
    }
    let entries = request
        .entries
        .iter()
        .zip(checked)
        .map(|(asked, outcome)| {
            let entity = asked
                .entity
                .iter()
                .map(|e| {
                    AlteredEntity::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect();
            let out = AlterResult::default().with_entity(entity);
            match outcome.and_then(|_| submitted.clone()) {
                Ok(()) => out,
                Err((code, why)) => out
                    .with_error_code(ctx.code(code))
                    .with_error_message(message(why)),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
