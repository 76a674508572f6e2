//! One consumer group's membership state machine: Kafka's classic group protocol.
//!
//! States (as DescribeGroups names them): `Empty` (no members; may hold offsets),
//! `PreparingRebalance` (waiting for every member to rejoin), `CompletingRebalance`
//! (joined; waiting for the leader's assignment), `Stable`, and `Dead` (deleted).
//!
//! This module is pure logic: it never touches the log or the clock. Callers pass `now`
//! and, after every operation, persist the group when [`Group::take_persist`] says so and
//! then release the SyncGroup answers ([`Group::fire_syncs`]), so a member only gets its
//! assignment once the assignment is in the log. Waiting requests (JoinGroup until the
//! rebalance completes, SyncGroup until the leader's assignment) hold a oneshot receiver;
//! a receiver whose sender is dropped answers COORDINATOR_NOT_AVAILABLE.
//!
//! Kafka's rules kept here, with their error codes: generation fencing
//! (ILLEGAL_GENERATION), unknown or expired members (UNKNOWN_MEMBER_ID), requests during
//! a rebalance (REBALANCE_IN_PROGRESS), a JoinGroup v4+ without a member id gets one back
//! with MEMBER_ID_REQUIRED, static members (`group.instance.id`) replace their old member
//! id and fence it (FENCED_INSTANCE_ID), the first rebalance of an empty group waits
//! `group.initial.rebalance.delay.ms` for more members, members that do not rejoin within
//! the rebalance timeout are removed, members whose session expires are removed.
//!
//! `join` holds JoinGroup and the rebalance it drives; this file the group's types,
//! its stored form, SyncGroup, Heartbeat, LeaveGroup, offset commits and expiry.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::error::GroupError;
use super::records::{GroupValue, OffsetValue, StoredMember};

mod join;

/// The classic protocol's group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka's DescribeGroups and ListGroups use.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// All states, for metrics.
    pub const ALL: [GroupState; 5] = [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
    ];
}

fn unknown(member_id: &str) -> GroupError {
    GroupError::UnknownMember {
        member: member_id.to_string(),
    }
}

/// A member as the JoinGroup leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The answer to a JoinGroup (`error`: why it was refused, if it was).
#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error: Option<GroupError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only for the leader: every member and its metadata for the chosen protocol.
    pub members: Vec<JoinedMember>,
    pub skip_assignment: bool,
}

impl JoinResult {
    pub(crate) fn error(error: GroupError, member_id: &str) -> JoinResult {
        JoinResult {
            error: Some(error),
            generation: -1,
            member_id: member_id.to_string(),
            ..JoinResult::default()
        }
    }
}

/// The answer to a SyncGroup. `durable_at` is where the assignment was written in
/// `__consumer_offsets`; the handler waits for it to be durable before answering.
#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
    pub durable_at: Option<u64>,
}

impl SyncResult {
    pub(crate) fn error(error: GroupError) -> SyncResult {
        SyncResult {
            error: Some(error),
            ..SyncResult::default()
        }
    }
}

/// An answer now, or one to wait for.
pub enum Answer<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

/// What a JoinGroup carries.
#[derive(Debug, Clone)]
pub struct JoinParams {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: an unknown member first gets MEMBER_ID_REQUIRED with its id.
    pub require_known_member_id: bool,
    /// v9+: a static leader rejoining a stable group may skip the assignment.
    pub supports_skip_assignment: bool,
}

/// What a SyncGroup carries.
#[derive(Debug, Clone)]
pub struct SyncParams {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// One member.
#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// Supported protocols in preference order, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// Order of joining: the leader of a fresh group is the first.
    pub joined_seq: u64,
    pub session_deadline: Instant,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    /// Waiting for the rebalance to complete, on a connection that is still open.
    fn rejoined(&self) -> bool {
        self.join_waiter.as_ref().is_some_and(|w| !w.is_closed())
    }
}

/// A committed offset with when it was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub value: OffsetValue,
}

/// One group: membership, generation, and committed offsets.
#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    /// When the group entered its state (wall clock, ms): offsets of an empty group
    /// expire `offsets.retention.minutes` after it became empty.
    pub state_since_ms: i64,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they join or expire.
    pending: HashMap<String, Instant>,
    /// `group.instance.id` → member id.
    statics: HashMap<String, String>,
    /// PreparingRebalance: when members that have not rejoined are removed.
    /// CompletingRebalance: when members that have not synced are removed.
    rebalance_deadline: Option<Instant>,
    /// The first rebalance of an empty group does not complete before this.
    join_not_before: Option<Instant>,
    /// Latest committed offset per (topic, partition).
    pub offsets: HashMap<(String, i32), Committed>,
    /// Offsets committed inside transactions still open, by producer id: they become
    /// `offsets` when the transaction commits, and are dropped when it aborts.
    pub pending_txn: HashMap<i64, HashMap<(String, i32), Committed>>,
    next_seq: u64,
    persist: bool,
    syncs_ready: bool,
    /// Where the current generation's assignment was stored in `__consumer_offsets`.
    assignment_at: Option<u64>,
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str, now_wall_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_since_ms: now_wall_ms,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            statics: HashMap::new(),
            rebalance_deadline: None,
            join_not_before: None,
            offsets: HashMap::new(),
            pending_txn: HashMap::new(),
            next_seq: 0,
            persist: false,
            syncs_ready: false,
            assignment_at: None,
        }
    }

    /// Whether the group's metadata changed in a way that must reach the log; clears it.
    pub fn take_persist(&mut self) -> bool {
        std::mem::take(&mut self.persist)
    }

    /// The metadata record of the group as it is now.
    pub fn to_value(&self) -> GroupValue {
        let protocol = self.protocol.clone();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata_for(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Restores a group from its stored metadata (broker start). Members get a fresh
    /// session from `now`, so consumers that keep heartbeating across a broker restart
    /// stay in the group without a rebalance.
    pub fn restore(&mut self, v: GroupValue, now: Instant) {
        self.generation = v.generation;
        self.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
        self.protocol = v.protocol.clone();
        self.leader = v.leader;
        self.state_since_ms = v.state_timestamp_ms;
        self.members.clear();
        self.statics.clear();
        self.pending.clear();
        for (seq, m) in v.members.into_iter().enumerate() {
            let session = Duration::from_millis(m.session_timeout_ms.max(0) as u64);
            if let Some(i) = &m.instance_id {
                self.statics.insert(i.clone(), m.member_id.clone());
            }
            let protocols = v
                .protocol
                .as_ref()
                .map(|p| vec![(p.clone(), m.subscription.clone())])
                .unwrap_or_default();
            self.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: session,
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocol_type: self.protocol_type.clone().unwrap_or_default(),
                    protocols,
                    assignment: m.assignment,
                    joined_seq: seq as u64,
                    session_deadline: now + session,
                    join_waiter: None,
                    sync_waiter: None,
                },
            );
        }
        self.next_seq = self.members.len() as u64;
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }

    fn set_state(&mut self, state: GroupState, now_wall_ms: i64) {
        if self.state != state {
            self.state = state;
            self.state_since_ms = now_wall_ms;
        }
    }

    /// Whether `instance_id` belongs to another member id (a stale, fenced instance).
    fn fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id
            .and_then(|i| self.statics.get(i))
            .is_some_and(|current| current != member_id)
    }

    /// Removes a member, answering its waiting requests with UNKNOWN_MEMBER_ID.
    fn drop_member(&mut self, id: &str) {
        if let Some(mut m) = self.members.remove(id) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult::error(unknown(id), id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(unknown(id)));
            }
            if let Some(i) = &m.instance_id {
                if self.statics.get(i).map(String::as_str) == Some(id) {
                    self.statics.remove(i);
                }
            }
        }
    }

    /// Removes a member and starts or finishes the rebalance its leaving calls for.
    fn remove_member(&mut self, id: &str, now: Instant, now_wall_ms: i64) {
        self.drop_member(id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.start_rebalance(now, now_wall_ms, None)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now, now_wall_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Checks a member's identity and generation for Heartbeat, SyncGroup and commits.
    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if self.fenced(member_id, instance_id) {
            return Err(GroupError::FencedInstance {
                member: member_id.to_string(),
                instance: instance_id.unwrap_or_default().to_string(),
            });
        }
        if !self.members.contains_key(member_id) {
            return Err(unknown(member_id));
        }
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration {
                given: generation,
                current: self.generation,
            });
        }
        Ok(())
    }

    /// SyncGroup.
    pub fn sync(&mut self, p: SyncParams, now: Instant, now_wall_ms: i64) -> Answer<SyncResult> {
        let refuse = |e: GroupError| Answer::Now(SyncResult::error(e));
        if self.state == GroupState::Dead {
            return refuse(GroupError::CoordinatorNotAvailable);
        }
        if let Err(e) = self.check_member(&p.member_id, p.instance_id.as_deref(), p.generation) {
            return refuse(e);
        }
        let mismatched = |given: &Option<String>, ours: &Option<String>| {
            given.as_ref().is_some_and(|g| Some(g) != ours.as_ref())
        };
        if mismatched(&p.protocol_type, &self.protocol_type)
            || mismatched(&p.protocol_name, &self.protocol)
        {
            return refuse(GroupError::InconsistentProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => refuse(unknown(&p.member_id)),
            GroupState::PreparingRebalance => refuse(GroupError::RebalanceInProgress),
            GroupState::Stable => {
                let Some(m) = self.members.get_mut(&p.member_id) else {
                    return refuse(unknown(&p.member_id));
                };
                m.session_deadline = now + m.session_timeout;
                Answer::Now(SyncResult {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol.clone(),
                    assignment: m.assignment.clone(),
                    durable_at: self.assignment_at,
                })
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let Some(m) = self.members.get_mut(&p.member_id) else {
                    return refuse(unknown(&p.member_id));
                };
                m.session_deadline = now + m.session_timeout;
                if let Some(old) = m.sync_waiter.replace(tx) {
                    let _ = old.send(SyncResult::error(unknown(&p.member_id)));
                }
                if self.leader.as_deref() == Some(p.member_id.as_str()) {
                    let mut given: HashMap<String, Bytes> = p.assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    self.rebalance_deadline = None;
                    self.set_state(GroupState::Stable, now_wall_ms);
                    self.persist = true;
                    self.syncs_ready = true;
                }
                Answer::Wait(rx)
            }
        }
    }

    /// Answers every waiting SyncGroup once the leader's assignment is stored
    /// (`durable_at` is the offset of the stored metadata, `None` when storing failed:
    /// the members then get `error` and rejoin).
    pub fn fire_syncs(&mut self, durable_at: Result<Option<u64>, GroupError>, now: Instant) {
        if !std::mem::take(&mut self.syncs_ready) {
            return;
        }
        if let Ok(at) = &durable_at {
            self.assignment_at = *at;
        }
        let (protocol_type, protocol) = (self.protocol_type.clone(), self.protocol.clone());
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                // Its session was paused while it waited; it starts again now.
                m.session_deadline = now + m.session_timeout;
                let result = match &durable_at {
                    Ok(at) => SyncResult {
                        error: None,
                        protocol_type: protocol_type.clone(),
                        protocol_name: protocol.clone(),
                        assignment: m.assignment.clone(),
                        durable_at: *at,
                    },
                    Err(e) => SyncResult::error(e.clone()),
                };
                let _ = w.send(result);
            }
        }
    }

    /// The coordinator is stopping: every waiting JoinGroup and SyncGroup is answered
    /// NOT_COORDINATOR, so clients look for the coordinator again instead of waiting.
    pub fn unload(&mut self) {
        for m in self.members.values_mut() {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult::error(GroupError::NotCoordinator, &m.id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(GroupError::NotCoordinator));
            }
        }
    }

    /// After a failed write of the assignment: back to rebalancing, as Kafka does.
    pub fn assignment_lost(&mut self, now: Instant, now_wall_ms: i64) {
        if self.state == GroupState::Stable {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
            }
            self.start_rebalance(now, now_wall_ms, None);
        }
    }

    /// Heartbeat: the member's session goes on; tells it when to rejoin
    /// ([`GroupError::RebalanceInProgress`]).
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        match self.state {
            GroupState::Dead => return Err(GroupError::CoordinatorNotAvailable),
            GroupState::Empty => return Err(unknown(member_id)),
            _ => {}
        }
        self.check_member(member_id, instance_id, generation)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline = now + m.session_timeout;
        }
        if self.state == GroupState::PreparingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup for one member (by member id, or by instance id for static members).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
        now_wall_ms: i64,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let id = match instance_id {
            Some(instance) => match self.statics.get(instance) {
                None => return Err(unknown(member_id)),
                // Kafka's UNKNOWN_MEMBER_ID sentinel is the empty id: "whoever holds it".
                Some(current) if !member_id.is_empty() && current != member_id => {
                    return Err(GroupError::FencedInstance {
                        member: member_id.to_string(),
                        instance: instance.to_string(),
                    })
                }
                Some(current) => current.clone(),
            },
            None => member_id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            return Ok(());
        }
        if !self.members.contains_key(&id) {
            return Err(unknown(&id));
        }
        self.remove_member(&id, now, now_wall_ms);
        Ok(())
    }

    /// Checks whether an OffsetCommit may commit: `Ok` or the error for every partition.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation < 0 && self.state == GroupState::Empty {
            // A consumer that only stores offsets (assign + commit), or an admin tool.
            return Ok(());
        }
        // A zombie learns it is one (and resets) before it hears about a rebalance.
        self.check_member(member_id, instance_id, generation)?;
        if self.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline = now + m.session_timeout;
        }
        Ok(())
    }

    /// Members whose sessions ran out, pending ids never used, and rebalance deadlines:
    /// the coordinator calls this on its tick.
    pub fn expire(&mut self, now: Instant, now_wall_ms: i64) {
        self.pending.retain(|_, deadline| *deadline > now);
        // A member whose connection closed while it waited for its JoinGroup or
        // SyncGroup answer is no longer waiting: its session decides from here.
        for m in self.members.values_mut() {
            if m.join_waiter.as_ref().is_some_and(|w| w.is_closed()) {
                m.join_waiter = None;
            }
            if m.sync_waiter.as_ref().is_some_and(|w| w.is_closed()) {
                m.sync_waiter = None;
            }
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                // A member waiting for its JoinGroup or SyncGroup answer is alive.
                m.join_waiter.is_none() && m.sync_waiter.is_none() && m.session_deadline <= now
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(&id, now, now_wall_ms);
        }
        match self.state {
            GroupState::PreparingRebalance => self.try_complete_join(now, now_wall_ms),
            GroupState::CompletingRebalance
                if self.rebalance_deadline.is_some_and(|t| now >= t) =>
            {
                // The leader never sent the assignment: drop whoever has not synced.
                let lagging: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| m.sync_waiter.is_none())
                    .map(|m| m.id.clone())
                    .collect();
                for id in lagging {
                    self.drop_member(&id);
                }
                self.start_rebalance(now, now_wall_ms, None);
            }
            _ => {}
        }
    }

    /// Whether the group's members subscribe to `topic` (OffsetDelete refuses then).
    /// Only the "consumer" protocol's subscriptions can be read; `None` when unknown.
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.as_deref()?;
        let mut topics = Vec::new();
        for m in self.members.values() {
            let mut meta = m.metadata_for(protocol);
            if meta.len() < 2 {
                return None;
            }
            let version = i16::from_be_bytes([meta[0], meta[1]]);
            let _ = bytes::Buf::get_i16(&mut meta);
            // Subscriptions come from clients; cap the version to what the codec reads.
            let sub = ConsumerProtocolSubscription::decode(&mut meta, version.clamp(0, 3)).ok()?;
            topics.extend(sub.topics.into_iter().map(|t| t.to_string()));
        }
        topics.sort();
        topics.dedup();
        Some(topics)
    }
}

#[cfg(test)]
mod tests;
