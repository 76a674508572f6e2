//! Rebalancing: acting on the heartbeat task's signals, joining and syncing the group,
//! assigning partitions when this member leads, and installing an assignment.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{ApiKey, JoinGroupRequest, SyncGroupRequest};
use kafka_protocol::protocol::StrBytes;

use tracing::{debug, info, warn};

use super::{
    group_id, GroupConsumer, JoinFlow, PartitionState, Position, JOIN_TIMEOUT_MARGIN,
    RETRY_BACKOFF, RETRY_BACKOFF_MAX, SUBSCRIPTION_METADATA_MAX_AGE,
};
use crate::error::{Error, Result};
use crate::group::assignor::MemberSubscription;
use crate::group::heartbeat::{Heartbeat, HeartbeatSpec, Signal};
use crate::group::membership::{MemberState, Step};
use crate::group::protocol::{
    decode_assignment, decode_subscription, encode_subscription, Subscription,
    CONSUMER_PROTOCOL_TYPE,
};
use crate::topic_partition::TopicPartition;

impl GroupConsumer {
    /// Acts on what the heartbeat task reported since the last poll.
    pub(super) fn apply_heartbeat_signal(&mut self) -> Result<()> {
        let Some(signal) = self.heartbeat.as_ref().map(Heartbeat::signal) else {
            return Ok(());
        };
        match signal {
            Signal::Healthy => return Ok(()),
            Signal::Code(code) => match self.member.on_heartbeat(code) {
                Step::Proceed => return Ok(()),
                Step::Fatal(e) => {
                    self.heartbeat = None;
                    return Err(e);
                }
                Step::FindCoordinator => {
                    self.link.invalidate();
                    self.member.need_rejoin();
                }
                Step::Rejoin | Step::Retry => self.member.need_rejoin(),
            },
            Signal::SessionLost => {
                warn!("no heartbeat got through for a session timeout; rejoining as a new member");
                self.link.invalidate();
                self.member.reset();
            }
        }
        info!(?signal, "rebalance needed");
        self.heartbeat = None;
        Ok(())
    }

    /// Rejoins when the partition counts of subscribed topics changed (checked every
    /// [`SUBSCRIPTION_METADATA_MAX_AGE`]).
    pub(super) async fn check_partition_counts(&mut self) {
        if self.member.state() != MemberState::Stable || Instant::now() < self.next_metadata_check {
            return;
        }
        self.next_metadata_check = Instant::now() + SUBSCRIPTION_METADATA_MAX_AGE;
        if self
            .cluster
            .refresh_metadata(Some(&self.topics), false)
            .await
            .is_err()
        {
            return;
        }
        let counts = self.current_partition_counts(&self.topics);
        if counts != self.partition_counts {
            info!(before = ?self.partition_counts, now = ?counts, "subscribed topics changed; rejoining");
            self.member.need_rejoin();
            self.heartbeat = None;
        }
    }

    fn current_partition_counts(&self, topics: &[String]) -> BTreeMap<String, i32> {
        let metadata = self.cluster.metadata();
        topics
            .iter()
            .filter_map(|t| metadata.partition_count(t).ok().map(|n| (t.clone(), n)))
            .collect()
    }

    /// Revokes the assignment (eager protocol), then joins and syncs until the member
    /// has an assignment, within the rebalance timeout.
    pub(super) async fn rebalance(&mut self) -> Result<()> {
        self.heartbeat = None;
        self.revoke_all().await?;
        let bound = self.config.rebalance_timeout + JOIN_TIMEOUT_MARGIN;
        let deadline = Instant::now() + bound;
        let mut backoff = RETRY_BACKOFF;
        let mut last_error: Option<Error> = None;
        while Instant::now() < deadline {
            match self.join_and_sync().await {
                Ok(JoinFlow::Assigned(partitions)) => {
                    self.install(partitions);
                    return Ok(());
                }
                Ok(JoinFlow::Again) => continue,
                Ok(JoinFlow::Backoff) => {}
                Err(e) if e.is_retriable() => {
                    debug!(error = %e, "join failed; retrying");
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
        Err(Error::Group {
            group: self.config.group_id.clone(),
            reason: format!(
                "could not join within {bound:?}{}",
                last_error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        })
    }

    /// Stops reading every assigned partition: commits positions (auto commit, while
    /// the generation may still be valid), then calls `on_partitions_revoked`.
    async fn revoke_all(&mut self) -> Result<()> {
        if self.assignment.is_empty() {
            return Ok(());
        }
        if self.config.auto_commit && self.member.generation() >= 0 {
            match self.commit().await {
                Ok(()) => {}
                Err(e @ Error::Fenced { .. }) => return Err(e),
                Err(e) => {
                    warn!(error = %e, "commit before rebalance failed; records since the last commit will be read again")
                }
            }
        }
        let revoked = self.assignment();
        if let Some(l) = self.listener.as_mut() {
            l.on_partitions_revoked(&revoked);
        }
        self.owned_before = revoked;
        self.assignment.clear();
        self.buffer.clear();
        Ok(())
    }

    async fn join_and_sync(&mut self) -> Result<JoinFlow> {
        let join = self.join_request_parts()?;
        if self.config.group_instance_id.is_some() {
            let conn = self.link.connection(&self.cluster).await?;
            if conn.api_version(ApiKey::JoinGroup).is_some_and(|v| v < 5) {
                return Err(Error::Group {
                    group: self.config.group_id.clone(),
                    reason: format!(
                        "group.instance.id needs JoinGroup v5+, which {} does not speak",
                        conn.addr()
                    ),
                });
            }
        }
        let timeout = self.config.rebalance_timeout + JOIN_TIMEOUT_MARGIN;
        let instance_id = self.config.group_instance_id.clone();
        let response = self
            .link
            .send(&self.cluster, timeout, |version| {
                let mut request = join.clone();
                request.group_instance_id = instance_id
                    .clone()
                    .filter(|_| version >= 5)
                    .map(StrBytes::from_string);
                request
            })
            .await?;
        debug!(code = response.error_code, generation = response.generation_id, member = %response.member_id, "JoinGroup answered");
        match self.member.on_join(&response) {
            Step::Proceed => {}
            step => return self.flow(step),
        }
        let assignments = if self.member.is_leader() && !self.member.members().is_empty() {
            self.assign().await?
        } else {
            Vec::new()
        };
        let group = self.config.group_id.clone();
        let generation = self.member.generation();
        let member_id = self.member.member_id().to_string();
        let protocol = self.member.protocol().unwrap_or_default().to_string();
        let response = self
            .link
            .send(&self.cluster, timeout, |version| {
                SyncGroupRequest::default()
                    .with_group_id(group_id(&group))
                    .with_generation_id(generation)
                    .with_member_id(StrBytes::from_string(member_id.clone()))
                    .with_group_instance_id(
                        instance_id
                            .clone()
                            .filter(|_| version >= 3)
                            .map(StrBytes::from_string),
                    )
                    .with_protocol_type(
                        (version >= 5).then(|| StrBytes::from_static_str(CONSUMER_PROTOCOL_TYPE)),
                    )
                    .with_protocol_name(
                        (version >= 5).then(|| StrBytes::from_string(protocol.clone())),
                    )
                    .with_assignments(assignments.clone())
            })
            .await?;
        match self.member.on_sync(&response) {
            Step::Proceed => {
                let partitions = decode_assignment(&self.config.group_id, &response.assignment)?;
                Ok(JoinFlow::Assigned(partitions))
            }
            step => self.flow(step),
        }
    }

    /// What a non-proceeding step means for the join loop.
    fn flow(&mut self, step: Step) -> Result<JoinFlow> {
        match step {
            Step::Proceed | Step::Rejoin => Ok(JoinFlow::Again),
            Step::Retry => Ok(JoinFlow::Backoff),
            Step::FindCoordinator => {
                self.link.invalidate();
                Ok(JoinFlow::Backoff)
            }
            Step::Fatal(e) => Err(e),
        }
    }

    /// The JoinGroup request without the version-dependent instance id.
    fn join_request_parts(&self) -> Result<JoinGroupRequest> {
        let metadata = encode_subscription(&Subscription {
            topics: self.topics.clone(),
            owned_partitions: self.owned_before.clone(),
            generation: self.member.generation(),
            user_data: None,
        })?;
        let millis = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        Ok(JoinGroupRequest::default()
            .with_group_id(group_id(&self.config.group_id))
            .with_session_timeout_ms(millis(self.config.session_timeout))
            .with_rebalance_timeout_ms(millis(self.config.rebalance_timeout))
            .with_member_id(StrBytes::from_string(self.member.member_id().to_string()))
            .with_protocol_type(StrBytes::from_static_str(CONSUMER_PROTOCOL_TYPE))
            .with_protocols(
                self.config
                    .assignors
                    .iter()
                    .map(|a| {
                        JoinGroupRequestProtocol::default()
                            .with_name(StrBytes::from_static_str(a.name()))
                            .with_metadata(metadata.clone())
                    })
                    .collect(),
            ))
    }

    /// The leader's job: run the chosen assignor over every member's subscription.
    async fn assign(&mut self) -> Result<Vec<SyncGroupRequestAssignment>> {
        let group = self.config.group_id.clone();
        let protocol = self.member.protocol().unwrap_or_default().to_string();
        let assignor = self
            .config
            .assignors
            .iter()
            .find(|a| a.name() == protocol)
            .cloned()
            .ok_or_else(|| Error::Group {
                group: group.clone(),
                reason: format!("the coordinator chose assignor {protocol:?}, which this consumer did not offer"),
            })?;
        let members = self
            .member
            .members()
            .iter()
            .map(|m| {
                Ok(MemberSubscription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    subscription: decode_subscription(&group, &m.metadata)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let topics: Vec<String> = members
            .iter()
            .flat_map(|m| m.subscription.topics.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.cluster.refresh_metadata(Some(&topics), false).await?;
        let counts = self.current_partition_counts(&topics);
        let assignment = assignor.assign(&members, &counts);
        info!(
            assignor = assignor.name(),
            members = members.len(),
            partitions = counts.values().sum::<i32>(),
            "assigned partitions as leader"
        );
        assignment
            .into_iter()
            .map(|(member_id, partitions)| {
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member_id))
                    .with_assignment(crate::group::protocol::encode_assignment(&partitions)?))
            })
            .collect()
    }

    /// Takes a new generation's assignment: positions to be looked up, heartbeats on.
    fn install(&mut self, partitions: Vec<TopicPartition>) {
        info!(generation = self.member.generation(), member = %self.member.member_id(), leader = self.member.is_leader(), ?partitions, "joined the group");
        self.assignment = partitions
            .iter()
            .map(|tp| {
                (
                    tp.clone(),
                    PartitionState {
                        position: Position::Committed,
                        fetch_position: 0,
                        high_watermark: None,
                    },
                )
            })
            .collect();
        self.committed.clear();
        self.buffer.clear();
        let assigned = &self.assignment;
        self.fetcher.retain(|tp| assigned.contains_key(tp));
        self.partition_counts = self.current_partition_counts(&self.topics);
        self.next_metadata_check = Instant::now() + SUBSCRIPTION_METADATA_MAX_AGE;
        self.next_auto_commit = Instant::now() + self.config.auto_commit_interval;
        if let Some(coordinator) = self.link.coordinator().cloned() {
            self.heartbeat = Some(Heartbeat::start(
                coordinator,
                self.cluster.config().connection.clone(),
                HeartbeatSpec {
                    group: self.config.group_id.clone(),
                    generation: self.member.generation(),
                    member_id: self.member.member_id().to_string(),
                    instance_id: self.config.group_instance_id.clone(),
                    interval: self.config.heartbeat_interval,
                    session_timeout: self.config.session_timeout,
                },
            ));
        }
        if let Some(l) = self.listener.as_mut() {
            l.on_partitions_assigned(&partitions);
        }
    }
}
