//! Consumer group administration: list groups, describe them (members, client ids and
//! hosts, decoded assignments), read and set committed offsets, delete groups and
//! offsets.
//!
//! Group requests go to the group's coordinator, found with FindCoordinator and
//! looked up again when a broker answers that it is not (or not yet) the coordinator,
//! within the request timeout. Offsets set here are committed as an admin (generation
//! -1, no member id), which coordinators accept only while the group has no members.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetDeleteRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use crate::cluster::Cluster;
use crate::connection::Request;
use crate::error::{Error, KafkaCode, Result};
use crate::group::coordinator::{find_coordinator, is_coordinator_error, CoordinatorKind};
use crate::group::offsets::{
    check_commit_response, commit_request, fetch_error_code, fetch_request, parse_fetch_response,
    Committer,
};
use crate::group::protocol::{decode_assignment, CONSUMER_PROTOCOL_TYPE};
use crate::topic_partition::TopicPartition;

/// Kafka's name for the state of a group without members.
pub const STATE_EMPTY: &str = "Empty";
/// Kafka's name for the state of a group that does not exist (or is being removed).
pub const STATE_DEAD: &str = "Dead";
/// Wait between coordinator lookups when a broker says it is not the coordinator.
const COORDINATOR_RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// One group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// Its protocol type (`consumer` for consumer groups; empty for groups that only
    /// commit offsets).
    pub protocol_type: String,
    /// Its state (`Stable`, `Empty`, …); `None` from brokers older than ListGroups v4.
    pub state: Option<String>,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id.
    pub member_id: String,
    /// The static member's `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// The client id the member connected with.
    pub client_id: String,
    /// The host the member connected from.
    pub client_host: String,
    /// Its assigned partitions, decoded (consumer groups only; empty otherwise).
    pub assignment: Vec<TopicPartition>,
    /// Why the assignment bytes did not decode, if they did not.
    pub assignment_error: Option<String>,
}

/// A described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable` or `Dead`.
    pub state: String,
    /// The protocol type (`consumer`).
    pub protocol_type: String,
    /// The chosen protocol (the assignor's name), once the group has one.
    pub protocol: String,
    /// The members, sorted by member id.
    pub members: Vec<MemberDescription>,
}

impl GroupDescription {
    /// Whether the group has no active members (state `Empty` or `Dead`), the only
    /// states in which offsets may be reset.
    pub fn is_inactive(&self) -> bool {
        self.members.is_empty() && (self.state == STATE_EMPTY || self.state == STATE_DEAD)
    }
}

/// Consumer group administration over a [`Cluster`].
#[derive(Debug, Clone)]
pub struct GroupAdmin {
    cluster: Arc<Cluster>,
}

impl GroupAdmin {
    /// A group admin sharing `cluster`'s metadata and connections.
    pub fn new(cluster: Arc<Cluster>) -> GroupAdmin {
        GroupAdmin { cluster }
    }

    /// Every group every broker coordinates, sorted by id. Fails if any broker fails
    /// (a partial list would hide groups).
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let metadata = self.cluster.refresh_metadata(Some(&[]), false).await?;
        let mut groups: BTreeMap<String, GroupListing> = BTreeMap::new();
        for &node in metadata.brokers.keys() {
            let response = self
                .cluster
                .send_node_with(node, |_| ListGroupsRequest::default())
                .await?;
            Error::check(
                response.error_code,
                || format!("list groups on broker {node}"),
                None,
            )?;
            for g in response.groups {
                let state = Some(g.group_state.to_string()).filter(|s| !s.is_empty());
                groups.insert(
                    g.group_id.0.to_string(),
                    GroupListing {
                        group_id: g.group_id.0.to_string(),
                        protocol_type: g.protocol_type.to_string(),
                        state,
                    },
                );
            }
        }
        Ok(groups.into_values().collect())
    }

    /// The group's state, protocol and members with their decoded assignments. A group
    /// that does not exist is described as `Dead` without members, as Kafka does.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let response = self
            .coordinator_call(
                group,
                |_| {
                    DescribeGroupsRequest::default()
                        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))])
                },
                |r| r.groups.first().map_or(0, |g| g.error_code),
            )
            .await?;
        let g = response
            .groups
            .into_iter()
            .find(|g| g.group_id.0.as_str() == group)
            .ok_or_else(|| Error::Group {
                group: group.to_string(),
                reason: "DescribeGroups answered without the group".into(),
            })?;
        if g.error_code == crate::error::GROUP_ID_NOT_FOUND {
            return Ok(GroupDescription {
                group_id: group.to_string(),
                state: STATE_DEAD.to_string(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            });
        }
        Error::check(
            g.error_code,
            || format!("describe group {group:?}"),
            g.error_message.as_deref(),
        )?;
        let consumer = g.protocol_type.as_str() == CONSUMER_PROTOCOL_TYPE;
        let mut members: Vec<MemberDescription> = g
            .members
            .iter()
            .map(|m| {
                let decoded = if consumer {
                    decode_assignment(group, &m.member_assignment)
                } else {
                    Ok(Vec::new())
                };
                let (assignment, assignment_error) = match decoded {
                    Ok(a) => (a, None),
                    Err(e) => (Vec::new(), Some(e.to_string())),
                };
                MemberDescription {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    assignment,
                    assignment_error,
                }
            })
            .collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        Ok(GroupDescription {
            group_id: group.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members,
        })
    }

    /// The group's committed offsets: for `partitions`, or every partition it has
    /// offsets for when `None`. Partitions without a committed offset are left out.
    pub async fn committed_offsets(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        // The request cannot be built at every version (v1 cannot ask for "all"): keep
        // the reason and report it instead of the answer to a placeholder request.
        let unbuildable = std::sync::Mutex::new(None);
        let response = self
            .coordinator_call(
                group,
                |v| {
                    fetch_request(v, group, partitions).unwrap_or_else(|e| {
                        if let Ok(mut slot) = unbuildable.lock() {
                            *slot = Some(e);
                        }
                        Default::default()
                    })
                },
                fetch_error_code,
            )
            .await;
        if let Some(e) = unbuildable.lock().ok().and_then(|mut slot| slot.take()) {
            return Err(e);
        }
        parse_fetch_response(group, &response?)
    }

    /// Commits `offsets` for `group` as an admin. Coordinators refuse this while the
    /// group has members (UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION, reported as
    /// [`Error::CommitFailed`]): check [`GroupDescription::is_inactive`] first.
    pub async fn commit_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let response = self
            .coordinator_call(
                group,
                |v| commit_request(v, group, Committer::ADMIN, offsets),
                |r| {
                    r.topics
                        .iter()
                        .flat_map(|t| t.partitions.iter())
                        .map(|p| p.error_code)
                        .find(|&c| is_coordinator_error(c))
                        .unwrap_or(0)
                },
            )
            .await?;
        check_commit_response(group, None, offsets, &response)
    }

    /// Deletes the group and its offsets. Fails with NON_EMPTY_GROUP while it has
    /// members, GROUP_ID_NOT_FOUND when there is no such group.
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let response = self
            .coordinator_call(
                group,
                |_| {
                    DeleteGroupsRequest::default()
                        .with_groups_names(vec![GroupId(StrBytes::from_string(group.to_string()))])
                },
                |r| r.results.first().map_or(0, |g| g.error_code),
            )
            .await?;
        let result = response
            .results
            .iter()
            .find(|r| r.group_id.0.as_str() == group)
            .ok_or_else(|| Error::Group {
                group: group.to_string(),
                reason: "DeleteGroups answered without the group".into(),
            })?;
        Error::check(
            result.error_code,
            || format!("delete group {group:?}"),
            None,
        )
    }

    /// Deletes the group's committed offsets of `partitions`. Fails with
    /// GROUP_SUBSCRIBED_TO_TOPIC for topics the group's members consume.
    pub async fn delete_offsets(&self, group: &str, partitions: &[TopicPartition]) -> Result<()> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        let topics: Vec<OffsetDeleteRequestTopic> = by_topic
            .into_iter()
            .map(|(topic, ps)| {
                OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(
                        ps.into_iter()
                            .map(|p| {
                                OffsetDeleteRequestPartition::default().with_partition_index(p)
                            })
                            .collect(),
                    )
            })
            .collect();
        let response = self
            .coordinator_call(
                group,
                |_| {
                    OffsetDeleteRequest::default()
                        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                        .with_topics(topics.clone())
                },
                |r| r.error_code,
            )
            .await?;
        Error::check(
            response.error_code,
            || format!("delete offsets of group {group:?}"),
            None,
        )?;
        for t in &response.topics {
            for p in &t.partitions {
                Error::check(
                    p.error_code,
                    || {
                        format!(
                            "delete offset of {}-{} for group {group:?}",
                            t.name.0, p.partition_index
                        )
                    },
                    None,
                )?;
            }
        }
        Ok(())
    }

    /// Sends a request to `group`'s coordinator, looking the coordinator up again
    /// while the answer (`code_of`) says it moved or is loading, within the request
    /// timeout.
    async fn coordinator_call<R: Request>(
        &self,
        group: &str,
        build: impl Fn(i16) -> R,
        code_of: impl Fn(&R::Response) -> i16,
    ) -> Result<R::Response> {
        let timeout = self.cluster.request_timeout();
        let deadline = Instant::now() + timeout;
        loop {
            let coordinator =
                find_coordinator(&self.cluster, CoordinatorKind::Group, group, timeout).await?;
            if !self
                .cluster
                .metadata()
                .brokers
                .contains_key(&coordinator.node_id)
            {
                self.cluster.refresh_metadata(Some(&[]), false).await?;
            }
            let response = self
                .cluster
                .send_node_with(coordinator.node_id, &build)
                .await?;
            let code = code_of(&response);
            if !is_coordinator_error(code) {
                return Ok(response);
            }
            if Instant::now() + COORDINATOR_RETRY_BACKOFF >= deadline {
                return Err(Error::Kafka {
                    context: format!("group {group:?} on broker {}", coordinator.node_id),
                    code: KafkaCode(code),
                    message: None,
                });
            }
            debug!(group, code, "the coordinator moved; looking it up again");
            tokio::time::sleep(COORDINATOR_RETRY_BACKOFF).await;
        }
    }
}
