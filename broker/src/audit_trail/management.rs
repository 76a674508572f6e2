//! Changes through the Kafka API as audit events: before a request is handled, what it
//! asks to change ([`management_event`]); once it is answered, the outcome from the
//! error codes its handler returned ([`outcome_of`]). One event per request,
//! naming every resource it touched; a request that changes nothing (a validation
//! only, an offset commit by a group member) is no event.

use kafka_protocol::messages::RequestKind;

use super::{Activity, Resource};
use crate::kafka_codes::error_name;

/// A change under way, waiting for its answer.
#[derive(Debug, Clone)]
pub struct Pending {
    pub activity: Activity,
    pub resources: Vec<Resource>,
}

/// The outcome of a change from the error codes of its answer (none: success).
pub fn outcome_of(errors: &[i16]) -> Result<(), String> {
    if errors.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = errors.iter().map(|&c| error_name(c)).collect();
    Err(names.join(","))
}

/// What `request` changes, when it is a change worth an event.
pub fn management_event(request: &RequestKind) -> Option<Pending> {
    use Activity::*;
    let topic = |name: &str| Resource::new("topic", name);
    let (activity, resources): (Activity, Vec<Resource>) = match request {
        RequestKind::CreateTopics(r) if !r.validate_only => {
            (Create, r.topics.iter().map(|t| topic(&t.name)).collect())
        }
        RequestKind::DeleteTopics(r) => {
            let named = r.topics.iter().map(|t| match &t.name {
                Some(n) => topic(n),
                None => topic(&t.topic_id.to_string()),
            });
            (
                Delete,
                named
                    .chain(r.topic_names.iter().map(|n| topic(n)))
                    .collect(),
            )
        }
        RequestKind::CreatePartitions(r) if !r.validate_only => {
            (Update, r.topics.iter().map(|t| topic(&t.name)).collect())
        }
        RequestKind::AlterConfigs(r) if !r.validate_only => (
            Update,
            r.resources
                .iter()
                .map(|c| config_resource(c.resource_type, &c.resource_name))
                .collect(),
        ),
        RequestKind::IncrementalAlterConfigs(r) if !r.validate_only => (
            Update,
            r.resources
                .iter()
                .map(|c| config_resource(c.resource_type, &c.resource_name))
                .collect(),
        ),
        RequestKind::CreateAcls(r) => (
            Create,
            r.creations
                .iter()
                .map(|a| acl(&a.principal, a.resource_type, &a.resource_name))
                .collect(),
        ),
        RequestKind::DeleteAcls(r) => (
            Delete,
            r.filters
                .iter()
                .map(|f| {
                    let name = f.resource_name_filter.as_deref().unwrap_or("*");
                    let principal = f.principal_filter.as_deref().unwrap_or("*");
                    acl(principal, f.resource_type_filter, name)
                })
                .collect(),
        ),
        RequestKind::AlterUserScramCredentials(r) => (
            Update,
            r.upsertions
                .iter()
                .map(|u| &u.name)
                .chain(r.deletions.iter().map(|d| &d.name))
                .map(|n| Resource::new("user", n.to_string()))
                .collect(),
        ),
        RequestKind::AlterClientQuotas(r) if !r.validate_only => (
            Update,
            r.entries
                .iter()
                .map(|e| {
                    let parts: Vec<String> = e
                        .entity
                        .iter()
                        .map(|x| {
                            let name = x.entity_name.as_deref().unwrap_or("<default>");
                            format!("{}={name}", x.entity_type)
                        })
                        .collect();
                    Resource::new("quota", parts.join(","))
                })
                .collect(),
        ),
        RequestKind::DeleteGroups(r) => (
            Delete,
            r.groups_names
                .iter()
                .map(|g| Resource::new("group", g.to_string()))
                .collect(),
        ),
        RequestKind::OffsetDelete(r) => (
            Delete,
            group_and_topics(&r.group_id, r.topics.iter().map(|t| &**t.name)),
        ),
        // A commit from outside the group (generation -1): an operator resetting offsets.
        RequestKind::OffsetCommit(r) if r.generation_id_or_member_epoch < 0 => (
            Update,
            group_and_topics(&r.group_id, r.topics.iter().map(|t| &**t.name)),
        ),
        RequestKind::DeleteRecords(r) => (
            Delete,
            r.topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(move |p| {
                        let name =
                            format!("{}/{} before {}", &*t.name, p.partition_index, p.offset);
                        Resource::new("partition", name)
                    })
                })
                .collect(),
        ),
        _ => return None,
    };
    Some(Pending {
        activity,
        resources,
    })
}

/// The resource of an AlterConfigs entry (Kafka's resource types 2 topic, 4 broker,
/// 8 broker logger).
fn config_resource(resource_type: i8, name: &str) -> Resource {
    let kind = match resource_type {
        2 => "topic",
        4 | 8 => "broker",
        _ => "config",
    };
    Resource::new(kind, name)
}

fn acl(principal: &str, resource_type: i8, name: &str) -> Resource {
    Resource::new("acl", format!("{principal} on {resource_type}:{name}"))
}

fn group_and_topics<'a>(group: &str, topics: impl Iterator<Item = &'a str>) -> Vec<Resource> {
    std::iter::once(Resource::new("group", group))
        .chain(topics.map(|t| Resource::new("topic", t)))
        .collect()
}
