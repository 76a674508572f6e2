//! One consumer group's membership state machine: Kafka's classic group protocol.
//!
//! States (as DescribeGroups names them): `Empty` (no members; may hold offsets),
//! `PreparingRebalance` (waiting for every member to rejoin), `CompletingRebalance`
//! (joined; waiting for the leader's assignment), `Stable`, and `Dead` (deleted).
//!
//! This file is pure logic: it never touches the log or the clock. Callers pass `now`
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

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::error::GroupError;
use super::records::{GroupValue, OffsetValue, StoredMember};
use crate::config::GroupConfig;

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

fn code(e: ResponseError) -> i16 {
    e.code()
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

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinResult {
    pub error: i16,
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
    fn error(error: i16, member_id: &str) -> JoinResult {
        JoinResult {
            error,
            generation: -1,
            member_id: member_id.to_string(),
            ..JoinResult::default()
        }
    }
}

/// The answer to a SyncGroup. `durable_at` is where the assignment was written in
/// `__consumer_offsets`; the handler waits for it to be durable before answering.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
    pub durable_at: Option<u64>,
}

impl SyncResult {
    fn error(error: i16) -> SyncResult {
        SyncResult {
            error,
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
    next_seq: u64,
    persist: bool,
    syncs_ready: bool,
    /// Where the current generation's assignment was stored in `__consumer_offsets`.
    assignment_at: Option<u64>,
}

fn new_member_id(client_id: &str) -> String {
    // Kafka's shape: client id, a dash, a random UUID.
    let prefix: String = client_id.chars().take(64).collect();
    format!("{prefix}-{}", uuid::Uuid::new_v4())
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

    /// Protocols every member supports, in no particular order.
    fn candidate_protocols(&self, except: Option<&str>) -> Option<Vec<String>> {
        let mut members = self
            .members
            .values()
            .filter(|m| Some(m.id.as_str()) != except);
        let first = members.next()?;
        let mut candidates: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in members {
            candidates.retain(|p| m.supports(p));
        }
        Some(candidates)
    }

    fn accepts_protocols(&self, p: &JoinParams) -> bool {
        if p.protocol_type.is_empty() || p.protocols.is_empty() {
            return false;
        }
        match self.candidate_protocols(Some(&p.member_id)) {
            None => true,
            Some(candidates) => {
                self.protocol_type
                    .as_deref()
                    .is_none_or(|t| t == p.protocol_type)
                    && p.protocols.iter().any(|(n, _)| candidates.contains(n))
            }
        }
    }

    /// JoinGroup.
    pub fn join(
        &mut self,
        p: JoinParams,
        config: &GroupConfig,
        now: Instant,
        now_wall_ms: i64,
    ) -> Answer<JoinResult> {
        let refuse = |e: ResponseError| Answer::Now(JoinResult::error(code(e), &p.member_id));
        if self.state == GroupState::Dead {
            return refuse(ResponseError::CoordinatorNotAvailable);
        }
        if p.session_timeout_ms < config.min_session_timeout_ms
            || p.session_timeout_ms > config.max_session_timeout_ms
        {
            return refuse(ResponseError::InvalidSessionTimeout);
        }
        if !self.accepts_protocols(&p) {
            return refuse(ResponseError::InconsistentGroupProtocol);
        }
        if p.member_id.is_empty() {
            return self.join_unknown(p, config, now, now_wall_ms);
        }
        if self.fenced(&p.member_id, p.instance_id.as_deref()) {
            return refuse(ResponseError::FencedInstanceId);
        }
        if self.pending.remove(&p.member_id).is_some() {
            return self.add_and_join(p.member_id.clone(), p, config, now, now_wall_ms);
        }
        if !self.members.contains_key(&p.member_id) {
            return refuse(ResponseError::UnknownMemberId);
        }
        self.join_known(p, now, now_wall_ms)
    }

    fn join_unknown(
        &mut self,
        p: JoinParams,
        config: &GroupConfig,
        now: Instant,
        now_wall_ms: i64,
    ) -> Answer<JoinResult> {
        if let Some(instance) = p.instance_id.clone() {
            if let Some(old_id) = self.statics.get(&instance).cloned() {
                if self.members.contains_key(&old_id) {
                    return self.replace_static(old_id, p, now, now_wall_ms);
                }
                self.statics.remove(&instance);
            }
        }
        if self.members.len() + self.pending.len() >= config.max_size {
            return Answer::Now(JoinResult::error(
                code(ResponseError::GroupMaxSizeReached),
                "",
            ));
        }
        let id = new_member_id(&p.client_id);
        if p.instance_id.is_none() && p.require_known_member_id {
            let session = Duration::from_millis(p.session_timeout_ms as u64);
            self.pending.insert(id.clone(), now + session);
            return Answer::Now(JoinResult::error(
                code(ResponseError::MemberIdRequired),
                &id,
            ));
        }
        self.add_and_join(id, p, config, now, now_wall_ms)
    }

    fn add_and_join(
        &mut self,
        id: String,
        p: JoinParams,
        config: &GroupConfig,
        now: Instant,
        now_wall_ms: i64,
    ) -> Answer<JoinResult> {
        if self.members.len() >= config.max_size {
            return Answer::Now(JoinResult::error(
                code(ResponseError::GroupMaxSizeReached),
                &id,
            ));
        }
        let (tx, rx) = oneshot::channel();
        if let Some(i) = &p.instance_id {
            self.statics.insert(i.clone(), id.clone());
        }
        if self.members.is_empty() {
            // An empty group belongs to whichever protocol type joins it next.
            self.protocol_type = Some(p.protocol_type.clone());
        }
        let session = Duration::from_millis(p.session_timeout_ms as u64);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.members.insert(
            id.clone(),
            Member {
                id,
                instance_id: p.instance_id,
                client_id: p.client_id,
                client_host: p.client_host,
                session_timeout: session,
                rebalance_timeout: Duration::from_millis(p.rebalance_timeout_ms.max(0) as u64),
                protocol_type: p.protocol_type.clone(),
                protocols: p.protocols,
                assignment: Bytes::new(),
                joined_seq: seq,
                session_deadline: now + session,
                join_waiter: Some(tx),
                sync_waiter: None,
            },
        );
        match self.state {
            GroupState::PreparingRebalance => {
                if let Some(not_before) = self.join_not_before {
                    // More members are arriving for the first rebalance: wait a little
                    // longer for the rest, within the rebalance timeout.
                    let extended = now + config.initial_rebalance_delay;
                    let cap = self.rebalance_deadline.unwrap_or(extended);
                    self.join_not_before = Some(not_before.max(extended.min(cap)));
                }
                self.try_complete_join(now, now_wall_ms);
            }
            _ => self.prepare_rebalance(config, now, now_wall_ms),
        }
        Answer::Wait(rx)
    }

    /// A static member came back with a new process (unknown member id, known instance
    /// id): it takes over the old member's place; the old id is fenced.
    fn replace_static(
        &mut self,
        old_id: String,
        p: JoinParams,
        now: Instant,
        now_wall_ms: i64,
    ) -> Answer<JoinResult> {
        let Some(mut member) = self.members.remove(&old_id) else {
            return Answer::Now(JoinResult::error(code(ResponseError::UnknownMemberId), ""));
        };
        let new_id = new_member_id(&p.client_id);
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinResult::error(
                code(ResponseError::FencedInstanceId),
                &old_id,
            ));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncResult::error(code(ResponseError::FencedInstanceId)));
        }
        let protocols_changed = member.protocols != p.protocols;
        member.id = new_id.clone();
        member.client_id = p.client_id.clone();
        member.client_host = p.client_host.clone();
        member.session_timeout = Duration::from_millis(p.session_timeout_ms as u64);
        member.rebalance_timeout = Duration::from_millis(p.rebalance_timeout_ms.max(0) as u64);
        member.session_deadline = now + member.session_timeout;
        if let Some(i) = &p.instance_id {
            self.statics.insert(i.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        let is_leader = self.leader.as_deref() == Some(new_id.as_str());
        member.protocols = p.protocols.clone();
        self.members.insert(new_id.clone(), member);
        let keep_assignment = self.state == GroupState::Stable
            && !protocols_changed
            && (!is_leader || p.supports_skip_assignment);
        if keep_assignment {
            self.persist = true;
            return Answer::Now(self.current_join_result(&new_id, is_leader));
        }
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(&new_id) {
            m.join_waiter = Some(tx);
        }
        match self.state {
            GroupState::PreparingRebalance => self.try_complete_join(now, now_wall_ms),
            _ => self.start_rebalance(now, now_wall_ms, None),
        }
        Answer::Wait(rx)
    }

    fn current_join_result(&self, member_id: &str, skip_assignment: bool) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.joined_members(&protocol)
        } else {
            Vec::new()
        };
        JoinResult {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
            skip_assignment,
        }
    }

    fn joined_members(&self, protocol: &str) -> Vec<JoinedMember> {
        let mut ms: Vec<&Member> = self.members.values().collect();
        ms.sort_by_key(|m| m.joined_seq);
        ms.into_iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(protocol),
            })
            .collect()
    }

    fn join_known(&mut self, p: JoinParams, now: Instant, now_wall_ms: i64) -> Answer<JoinResult> {
        let is_leader = self.leader.as_deref() == Some(p.member_id.as_str());
        let state = self.state;
        let Some(m) = self.members.get_mut(&p.member_id) else {
            return Answer::Now(JoinResult::error(
                code(ResponseError::UnknownMemberId),
                &p.member_id,
            ));
        };
        let changed = m.protocols != p.protocols;
        m.protocols = p.protocols;
        m.client_id = p.client_id;
        m.client_host = p.client_host;
        m.session_timeout = Duration::from_millis(p.session_timeout_ms as u64);
        m.rebalance_timeout = Duration::from_millis(p.rebalance_timeout_ms.max(0) as u64);
        m.session_deadline = now + m.session_timeout;
        let unchanged_in = |s: GroupState| state == s && !changed;
        if unchanged_in(GroupState::CompletingRebalance)
            || (unchanged_in(GroupState::Stable) && !is_leader)
        {
            // The member lost our JoinGroup answer, or rejoins for no reason: tell it the
            // current generation again without disturbing the others.
            return Answer::Now(self.current_join_result(&p.member_id, false));
        }
        let (tx, rx) = oneshot::channel();
        if let Some(old) = m.join_waiter.replace(tx) {
            let _ = old.send(JoinResult::error(
                code(ResponseError::UnknownMemberId),
                &p.member_id,
            ));
        }
        match state {
            GroupState::PreparingRebalance => self.try_complete_join(now, now_wall_ms),
            _ => self.start_rebalance(now, now_wall_ms, None),
        }
        Answer::Wait(rx)
    }

    fn prepare_rebalance(&mut self, config: &GroupConfig, now: Instant, now_wall_ms: i64) {
        let delay = (self.state == GroupState::Empty).then_some(config.initial_rebalance_delay);
        self.start_rebalance(now, now_wall_ms, delay);
    }

    /// Moves to PreparingRebalance: answers pending syncs with REBALANCE_IN_PROGRESS and
    /// gives members the largest rebalance timeout to rejoin.
    fn start_rebalance(&mut self, now: Instant, now_wall_ms: i64, initial_delay: Option<Duration>) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncResult::error(code(ResponseError::RebalanceInProgress)));
                }
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        let delay = initial_delay.unwrap_or_default();
        self.rebalance_deadline = Some(now + timeout.max(delay));
        self.join_not_before = initial_delay.map(|d| now + d.min(timeout.max(d)));
        self.set_state(GroupState::PreparingRebalance, now_wall_ms);
        self.try_complete_join(now, now_wall_ms);
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(Member::rejoined)
    }

    fn try_complete_join(&mut self, now: Instant, now_wall_ms: i64) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let delay_over = self.join_not_before.is_none_or(|t| now >= t);
        let deadline_passed = self.rebalance_deadline.is_some_and(|t| now >= t);
        if (self.all_joined() && delay_over) || deadline_passed {
            self.complete_join(now, now_wall_ms);
        }
    }

    /// Ends the join phase: members that did not rejoin are removed, the generation moves
    /// on, a protocol is chosen, and every joined member gets its answer.
    fn complete_join(&mut self, now: Instant, now_wall_ms: i64) {
        // Dynamic members that did not rejoin are gone; static ones stay until their
        // session ends (a restarting static member must not cost a second rebalance).
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.rejoined() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.drop_member(&id);
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        if !self.members.is_empty() && !self.members.values().any(Member::rejoined) {
            // Only absent static members: nobody can lead. Wait another rebalance
            // timeout; their sessions end meanwhile if they never come back.
            self.rebalance_deadline = Some(now + timeout);
            return;
        }
        self.join_not_before = None;
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.rebalance_deadline = None;
            self.set_state(GroupState::Empty, now_wall_ms);
            self.persist = true;
            return;
        }
        self.protocol = self.select_protocol();
        let leader_rejoined = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(Member::rejoined);
        if !leader_rejoined {
            self.leader = self
                .members
                .values()
                .filter(|m| m.rejoined())
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.id.clone());
        }
        self.rebalance_deadline = Some(now + timeout);
        self.set_state(GroupState::CompletingRebalance, now_wall_ms);
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let all = self.joined_members(&protocol);
        let (generation, protocol_type) = (self.generation, self.protocol_type.clone());
        for m in self.members.values_mut() {
            if let Some(w) = m.join_waiter.take() {
                m.session_deadline = now + m.session_timeout;
                let _ = w.send(JoinResult {
                    error: 0,
                    generation,
                    protocol_type: protocol_type.clone(),
                    protocol_name: Some(protocol.clone()),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    members: if m.id == leader {
                        all.clone()
                    } else {
                        Vec::new()
                    },
                    skip_assignment: false,
                });
            }
        }
    }

    /// The protocol every member supports that most members prefer (ties go to the
    /// earliest member's preference).
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols(None)?;
        let mut ms: Vec<&Member> = self.members.values().collect();
        ms.sort_by_key(|m| m.joined_seq);
        let mut votes: Vec<(String, usize)> = Vec::new();
        for m in &ms {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                match votes.iter_mut().find(|(n, _)| n == name) {
                    Some((_, c)) => *c += 1,
                    None => votes.push((name.clone(), 1)),
                }
            }
        }
        let best = votes.iter().map(|(_, c)| *c).max()?;
        votes.into_iter().find(|(_, c)| *c == best).map(|(n, _)| n)
    }

    /// Removes a member, answering its waiting requests with UNKNOWN_MEMBER_ID.
    fn drop_member(&mut self, id: &str) {
        if let Some(mut m) = self.members.remove(id) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult::error(code(ResponseError::UnknownMemberId), id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(code(ResponseError::UnknownMemberId)));
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
        let refuse = |c: i16| Answer::Now(SyncResult::error(c));
        if self.state == GroupState::Dead {
            return refuse(code(ResponseError::CoordinatorNotAvailable));
        }
        if let Err(e) = self.check_member(&p.member_id, p.instance_id.as_deref(), p.generation) {
            return refuse(e.code());
        }
        let mismatched = |given: &Option<String>, ours: &Option<String>| {
            given.as_ref().is_some_and(|g| Some(g) != ours.as_ref())
        };
        if mismatched(&p.protocol_type, &self.protocol_type)
            || mismatched(&p.protocol_name, &self.protocol)
        {
            return refuse(code(ResponseError::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => refuse(code(ResponseError::UnknownMemberId)),
            GroupState::PreparingRebalance => refuse(code(ResponseError::RebalanceInProgress)),
            GroupState::Stable => {
                let Some(m) = self.members.get_mut(&p.member_id) else {
                    return refuse(code(ResponseError::UnknownMemberId));
                };
                m.session_deadline = now + m.session_timeout;
                Answer::Now(SyncResult {
                    error: 0,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol.clone(),
                    assignment: m.assignment.clone(),
                    durable_at: self.assignment_at,
                })
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let Some(m) = self.members.get_mut(&p.member_id) else {
                    return refuse(code(ResponseError::UnknownMemberId));
                };
                m.session_deadline = now + m.session_timeout;
                if let Some(old) = m.sync_waiter.replace(tx) {
                    let _ = old.send(SyncResult::error(code(ResponseError::UnknownMemberId)));
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
    pub fn fire_syncs(&mut self, durable_at: Result<Option<u64>, i16>, now: Instant) {
        if !std::mem::take(&mut self.syncs_ready) {
            return;
        }
        if let Ok(at) = durable_at {
            self.assignment_at = at;
        }
        let (protocol_type, protocol) = (self.protocol_type.clone(), self.protocol.clone());
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                // Its session was paused while it waited; it starts again now.
                m.session_deadline = now + m.session_timeout;
                let result = match durable_at {
                    Ok(at) => SyncResult {
                        error: 0,
                        protocol_type: protocol_type.clone(),
                        protocol_name: protocol.clone(),
                        assignment: m.assignment.clone(),
                        durable_at: at,
                    },
                    Err(c) => SyncResult::error(c),
                };
                let _ = w.send(result);
            }
        }
    }

    /// The coordinator is stopping: every waiting JoinGroup and SyncGroup is answered
    /// NOT_COORDINATOR, so clients look for the coordinator again instead of waiting.
    pub fn unload(&mut self) {
        let not_coordinator = code(ResponseError::NotCoordinator);
        for m in self.members.values_mut() {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult::error(not_coordinator, &m.id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(not_coordinator));
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
mod tests {
    use super::*;

    fn config() -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay: Duration::ZERO,
            ..GroupConfig::default()
        }
    }

    fn params(member_id: &str) -> JoinParams {
        JoinParams {
            member_id: member_id.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 20_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"r"))],
            require_known_member_id: true,
            supports_skip_assignment: false,
        }
    }

    /// A SyncGroup of `member_id` at `generation` handing in `assignments`.
    fn sync_params(
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncParams {
        SyncParams {
            member_id: member_id.into(),
            instance_id: None,
            generation,
            protocol_type: None,
            protocol_name: None,
            assignments,
        }
    }

    fn now_answer<T>(a: Answer<T>) -> T {
        match a {
            Answer::Now(t) => t,
            Answer::Wait(_) => panic!("expected an immediate answer"),
        }
    }

    fn waited<T>(a: Answer<T>) -> oneshot::Receiver<T> {
        match a {
            Answer::Wait(rx) => rx,
            Answer::Now(_) => panic!("expected to wait"),
        }
    }

    /// Joins a new member through MEMBER_ID_REQUIRED; returns its id and join receiver.
    fn join_new(g: &mut Group, now: Instant) -> (String, oneshot::Receiver<JoinResult>) {
        let first = now_answer(g.join(params(""), &config(), now, 0));
        assert_eq!(first.error, ResponseError::MemberIdRequired.code());
        let id = first.member_id.clone();
        let rx = waited(g.join(params(&id), &config(), now, 0));
        (id, rx)
    }

    #[test]
    fn two_members_join_sync_and_become_stable() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let (a, mut rx_a) = join_new(&mut g, now);
        // One member, everyone joined, no delay: generation 1 at once.
        let ja = rx_a.try_recv().unwrap();
        assert_eq!(
            (ja.error, ja.generation, ja.leader.as_str()),
            (0, 1, a.as_str())
        );
        assert_eq!(ja.members.len(), 1);
        assert_eq!(g.state, GroupState::CompletingRebalance);

        // A second member joins: the group goes back to PreparingRebalance until `a`
        // rejoins.
        let (b, mut rx_b) = join_new(&mut g, now);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert!(rx_b.try_recv().is_err());
        let mut rx_a = waited(g.join(params(&a), &config(), now, 0));
        let (ja, jb) = (rx_a.try_recv().unwrap(), rx_b.try_recv().unwrap());
        assert_eq!((ja.generation, jb.generation), (2, 2));
        assert_eq!(ja.leader, a);
        assert_eq!((ja.members.len(), jb.members.len()), (2, 0));

        // The follower's sync waits for the leader's.
        let sync = |id: &str, assignments: Vec<(String, Bytes)>| SyncParams {
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            ..sync_params(id, 2, assignments)
        };
        let mut sb = waited(g.sync(sync(&b, vec![]), now, 0));
        assert!(sb.try_recv().is_err());
        let mut sa = waited(g.sync(
            sync(
                &a,
                vec![
                    (a.clone(), Bytes::from_static(b"A")),
                    (b.clone(), Bytes::from_static(b"B")),
                ],
            ),
            now,
            0,
        ));
        assert_eq!(g.state, GroupState::Stable);
        assert!(g.take_persist());
        g.fire_syncs(Ok(Some(7)), now);
        assert_eq!(sa.try_recv().unwrap().assignment, Bytes::from_static(b"A"));
        let rb = sb.try_recv().unwrap();
        assert_eq!(
            (rb.assignment, rb.durable_at),
            (Bytes::from_static(b"B"), Some(7))
        );

        // Fencing: an old generation and an unknown member.
        assert_eq!(
            GroupError::code_of(&g.heartbeat(&a, None, 1, now)),
            ResponseError::IllegalGeneration.code()
        );
        assert_eq!(
            GroupError::code_of(&g.heartbeat("nobody", None, 2, now)),
            ResponseError::UnknownMemberId.code()
        );
        assert_eq!(GroupError::code_of(&g.heartbeat(&b, None, 2, now)), 0);
        // An admin commit is refused while the group has members.
        assert_eq!(
            g.check_commit("", None, -1, now).map_err(|e| e.code()),
            Err(ResponseError::UnknownMemberId.code())
        );
    }

    #[test]
    fn session_expiry_removes_a_member_and_rebalances() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let (a, _rx) = join_new(&mut g, now);
        let generation = g.generation;
        let s = sync_params(&a, generation, vec![]);
        let _sa = waited(g.sync(s, now, 0));
        g.fire_syncs(Ok(None), now);
        assert_eq!(g.state, GroupState::Stable);
        g.expire(now + Duration::from_secs(5), 0);
        assert_eq!(g.members.len(), 1);
        g.expire(now + Duration::from_secs(11), 0);
        assert!(g.members.is_empty());
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.generation, generation + 1);
        assert!(g.check_commit("", None, -1, now).is_ok());
    }

    #[test]
    fn rebalance_timeout_drops_members_that_do_not_rejoin() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let (a, _) = join_new(&mut g, now);
        let (_b, mut rx_b) = join_new(&mut g, now);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        // `a` never rejoins; 20 s rebalance timeout.
        assert!(matches!(
            g.heartbeat(&a, None, 1, now),
            Err(GroupError::RebalanceInProgress)
        ));
        g.expire(now + Duration::from_secs(21), 0);
        let jb = rx_b.try_recv().unwrap();
        assert_eq!(jb.error, 0);
        assert_eq!(g.members.len(), 1);
        assert_eq!(jb.leader, jb.member_id);
    }

    #[test]
    fn a_member_that_hung_up_while_joining_is_not_waited_for() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let (a, _rx_a) = join_new(&mut g, now);
        // `b` joins, which starts a rebalance, and then its connection closes.
        let (_b, rx_b) = join_new(&mut g, now);
        drop(rx_b);
        let mut rx_a = waited(g.join(params(&a), &config(), now, 0));
        assert!(rx_a.try_recv().is_err(), "b's session has not ended yet");
        g.expire(now + Duration::from_secs(5), 0);
        assert_eq!(g.members.len(), 2);
        // b's session (10 s) ends: it is removed and the rebalance completes without it.
        g.expire(now + Duration::from_secs(11), 0);
        assert_eq!(g.members.len(), 1);
        let ja = rx_a.try_recv().unwrap();
        assert_eq!((ja.error, ja.members.len()), (0, 1));
    }

    #[test]
    fn static_member_rejoining_keeps_its_assignment_and_fences_the_old_id() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let mut p = params("");
        p.instance_id = Some("i1".into());
        let mut rx = waited(g.join(p.clone(), &config(), now, 0));
        let first = rx.try_recv().unwrap();
        let old = first.member_id.clone();
        let _s = waited(g.sync(
            SyncParams {
                instance_id: Some("i1".into()),
                ..sync_params(
                    &old,
                    first.generation,
                    vec![(old.clone(), Bytes::from_static(b"X"))],
                )
            },
            now,
            0,
        ));
        g.fire_syncs(Ok(None), now);
        // The process restarts: unknown member id, same instance id; v9 leader skips
        // the assignment.
        p.supports_skip_assignment = true;
        let again = now_answer(g.join(p, &config(), now, 0));
        assert_eq!(again.error, 0);
        assert_ne!(again.member_id, old);
        assert_eq!(again.generation, first.generation);
        assert!(again.skip_assignment);
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(
            GroupError::code_of(&g.heartbeat(&old, Some("i1"), first.generation, now)),
            ResponseError::FencedInstanceId.code()
        );
        assert_eq!(
            GroupError::code_of(&g.heartbeat(&again.member_id, Some("i1"), first.generation, now)),
            0
        );
        assert_eq!(
            GroupError::code_of(&g.leave(&old, Some("i1"), now, 0)),
            ResponseError::FencedInstanceId.code()
        );
        assert_eq!(
            GroupError::code_of(&g.leave(&again.member_id, Some("i1"), now, 0)),
            0
        );
        assert_eq!(g.state, GroupState::Empty);
    }

    /// Joins a static member (no MEMBER_ID_REQUIRED round) and returns its receiver.
    fn join_static(g: &mut Group, instance: &str, now: Instant) -> oneshot::Receiver<JoinResult> {
        let mut p = params("");
        p.instance_id = Some(instance.into());
        waited(g.join(p, &config(), now, 0))
    }

    fn sync_all(g: &mut Group, leader: &str, generation: i32, now: Instant) {
        let ids: Vec<String> = g.members.keys().cloned().collect();
        let _rx = waited(
            g.sync(
                SyncParams {
                    instance_id: g.members[leader].instance_id.clone(),
                    ..sync_params(
                        leader,
                        generation,
                        ids.into_iter()
                            .map(|id| (id, Bytes::from_static(b"a")))
                            .collect(),
                    )
                },
                now,
                0,
            ),
        );
        g.fire_syncs(Ok(Some(1)), now);
    }

    #[test]
    fn complete_join_keeps_static_members_that_did_not_rejoin() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let mut rx1 = join_static(&mut g, "i1", now);
        let j1 = rx1.try_recv().unwrap();
        sync_all(&mut g, &j1.member_id, j1.generation, now);
        // b joins; i1 does not rejoin; at the rebalance deadline (20 s) i1 is kept
        // (dynamic members would be dropped) if its session still runs: make it long.
        g.members.get_mut(&j1.member_id).unwrap().session_timeout = Duration::from_secs(60);
        g.members.get_mut(&j1.member_id).unwrap().session_deadline = now + Duration::from_secs(60);
        let (b, mut rx_b) = join_new(&mut g, now);
        g.expire(now + Duration::from_secs(21), 0);
        let jb = rx_b.try_recv().unwrap();
        assert_eq!((jb.error, jb.generation), (0, 2));
        assert_eq!(
            jb.leader, b,
            "the leader is chosen among members that rejoined"
        );
        assert_eq!(
            jb.members.len(),
            2,
            "the absent static member is still assigned"
        );
        assert!(g.members.contains_key(&j1.member_id));
        // When it comes back with a new process it takes its place without a rebalance.
        sync_all(&mut g, &b, 2, now + Duration::from_secs(21));
        let mut p = params("");
        p.instance_id = Some("i1".into());
        p.supports_skip_assignment = true;
        let back = now_answer(g.join(p, &config(), now + Duration::from_secs(22), 0));
        assert_eq!((back.error, back.generation), (0, 2));
        assert_eq!(g.state, GroupState::Stable);
    }

    #[test]
    fn an_empty_group_takes_the_protocol_type_of_its_next_member() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let (a, _) = join_new(&mut g, now);
        assert_eq!(GroupError::code_of(&g.leave(&a, None, now, 0)), 0);
        assert_eq!(g.state, GroupState::Empty);
        let mut p = params("");
        p.protocol_type = "connect".into();
        p.require_known_member_id = false;
        let mut rx = waited(g.join(p, &config(), now, 0));
        let j = rx.try_recv().unwrap();
        assert_eq!(j.protocol_type.as_deref(), Some("connect"));
    }

    #[test]
    fn a_synced_follower_gets_a_fresh_session_and_zombies_are_fenced_first() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let (a, _) = join_new(&mut g, now);
        let (b, _rx_b) = join_new(&mut g, now);
        let _ = g.join(params(&a), &config(), now, 0);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        // A zombie from generation 1 commits during CompletingRebalance: fenced by its
        // generation before it hears of the rebalance.
        assert_eq!(
            g.check_commit(&a, None, 1, now).map_err(|e| e.code()),
            Err(ResponseError::IllegalGeneration.code())
        );
        assert_eq!(
            g.check_commit(&a, None, 2, now).map_err(|e| e.code()),
            Err(ResponseError::RebalanceInProgress.code())
        );
        // b syncs at once; the leader takes 9 s (b's session is 10 s).
        let _sb = waited(g.sync(sync_params(&b, 2, vec![]), now, 0));
        let late = now + Duration::from_secs(9);
        let _sa = waited(g.sync(sync_params(&a, 2, vec![]), late, 0));
        g.fire_syncs(Ok(Some(3)), late);
        // 12 s after the start b has not heartbeated, but its session restarted at 9 s.
        g.expire(now + Duration::from_secs(12), 0);
        assert!(g.members.contains_key(&b));
        assert_eq!(g.state, GroupState::Stable);
    }

    #[test]
    fn inconsistent_protocols_and_bad_timeouts_are_refused() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let (_a, _) = join_new(&mut g, now);
        let mut p = params("");
        p.protocols = vec![("roundrobin".into(), Bytes::new())];
        assert_eq!(
            now_answer(g.join(p, &config(), now, 0)).error,
            ResponseError::InconsistentGroupProtocol.code()
        );
        let mut p = params("");
        p.session_timeout_ms = 10;
        assert_eq!(
            now_answer(g.join(p, &config(), now, 0)).error,
            ResponseError::InvalidSessionTimeout.code()
        );
    }

    #[test]
    fn the_most_preferred_common_protocol_wins() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let mut p = params("");
        p.require_known_member_id = false;
        p.protocols = vec![
            ("cooperative-sticky".into(), Bytes::new()),
            ("range".into(), Bytes::new()),
        ];
        let _a = waited(g.join(p.clone(), &config(), now, 0));
        p.protocols = vec![("range".into(), Bytes::new())];
        let mut rx = waited(g.join(p, &config(), now, 0));
        let ids: Vec<String> = g.members.keys().cloned().collect();
        // Rejoin the first member so the rebalance completes.
        let first = ids
            .iter()
            .find(|id| g.members[*id].protocols.len() == 2)
            .unwrap()
            .clone();
        let mut p = params(&first);
        p.protocols = vec![
            ("cooperative-sticky".into(), Bytes::new()),
            ("range".into(), Bytes::new()),
        ];
        let _ = g.join(p, &config(), now, 0);
        assert_eq!(
            rx.try_recv().unwrap().protocol_name.as_deref(),
            Some("range")
        );
    }
}
