//! Joining a group: JoinGroup for unknown, new, static and known members, the
//! rebalance it starts (the initial delay of an empty group, the rebalance timeout),
//! its completion once every member rejoined, and the choice of the protocol every
//! member supports.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{
    unknown, Answer, Group, GroupState, JoinParams, JoinResult, JoinedMember, Member, SyncResult,
};
use crate::config::GroupConfig;
use crate::group::GroupError;

impl Group {
    /// JoinGroup.
    pub fn join(
        &mut self,
        p: JoinParams,
        config: &GroupConfig,
        now: Instant,
        now_wall_ms: i64,
    ) -> Answer<JoinResult> {
        let refuse = |e: GroupError| Answer::Now(JoinResult::error(e, &p.member_id));
        if self.state == GroupState::Dead {
            return refuse(GroupError::CoordinatorNotAvailable);
        }
        if p.session_timeout_ms < config.min_session_timeout_ms
            || p.session_timeout_ms > config.max_session_timeout_ms
        {
            return refuse(GroupError::InvalidSessionTimeout {
                given: p.session_timeout_ms,
                min: config.min_session_timeout_ms,
                max: config.max_session_timeout_ms,
            });
        }
        if !self.accepts_protocols(&p) {
            return refuse(GroupError::InconsistentProtocol);
        }
        if p.member_id.is_empty() {
            return self.join_unknown(p, config, now, now_wall_ms);
        }
        if self.fenced(&p.member_id, p.instance_id.as_deref()) {
            return refuse(fenced(&p.member_id, &p));
        }
        if self.pending.remove(&p.member_id).is_some() {
            return self.add_and_join(p.member_id.clone(), p, config, now, now_wall_ms);
        }
        if !self.members.contains_key(&p.member_id) {
            return refuse(unknown(&p.member_id));
        }
        self.join_known(p, now, now_wall_ms)
    }

    pub(super) fn join_unknown(
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
            let full = GroupError::GroupFull {
                max: config.max_size,
            };
            return Answer::Now(JoinResult::error(full, ""));
        }
        let id = new_member_id(&p.client_id);
        if p.instance_id.is_none() && p.require_known_member_id {
            let session = Duration::from_millis(p.session_timeout_ms as u64);
            self.pending.insert(id.clone(), now + session);
            let required = GroupError::MemberIdRequired { member: id.clone() };
            return Answer::Now(JoinResult::error(required, &id));
        }
        self.add_and_join(id, p, config, now, now_wall_ms)
    }

    pub(super) fn add_and_join(
        &mut self,
        id: String,
        p: JoinParams,
        config: &GroupConfig,
        now: Instant,
        now_wall_ms: i64,
    ) -> Answer<JoinResult> {
        if self.members.len() >= config.max_size {
            let full = GroupError::GroupFull {
                max: config.max_size,
            };
            return Answer::Now(JoinResult::error(full, &id));
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
    pub(super) fn replace_static(
        &mut self,
        old_id: String,
        p: JoinParams,
        now: Instant,
        now_wall_ms: i64,
    ) -> Answer<JoinResult> {
        let Some(mut member) = self.members.remove(&old_id) else {
            return Answer::Now(JoinResult::error(unknown(&old_id), ""));
        };
        let new_id = new_member_id(&p.client_id);
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinResult::error(fenced(&old_id, &p), &old_id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncResult::error(fenced(&old_id, &p)));
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

    pub(super) fn current_join_result(&self, member_id: &str, skip_assignment: bool) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.joined_members(&protocol)
        } else {
            Vec::new()
        };
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
            skip_assignment,
        }
    }

    pub(super) fn joined_members(&self, protocol: &str) -> Vec<JoinedMember> {
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

    pub(super) fn join_known(
        &mut self,
        p: JoinParams,
        now: Instant,
        now_wall_ms: i64,
    ) -> Answer<JoinResult> {
        let is_leader = self.leader.as_deref() == Some(p.member_id.as_str());
        let state = self.state;
        let Some(m) = self.members.get_mut(&p.member_id) else {
            return Answer::Now(JoinResult::error(unknown(&p.member_id), &p.member_id));
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
            let _ = old.send(JoinResult::error(unknown(&p.member_id), &p.member_id));
        }
        match state {
            GroupState::PreparingRebalance => self.try_complete_join(now, now_wall_ms),
            _ => self.start_rebalance(now, now_wall_ms, None),
        }
        Answer::Wait(rx)
    }

    pub(super) fn prepare_rebalance(
        &mut self,
        config: &GroupConfig,
        now: Instant,
        now_wall_ms: i64,
    ) {
        let delay = (self.state == GroupState::Empty).then_some(config.initial_rebalance_delay);
        self.start_rebalance(now, now_wall_ms, delay);
    }

    /// Moves to PreparingRebalance: answers pending syncs with REBALANCE_IN_PROGRESS and
    /// gives members the largest rebalance timeout to rejoin.
    pub(super) fn start_rebalance(
        &mut self,
        now: Instant,
        now_wall_ms: i64,
        initial_delay: Option<Duration>,
    ) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncResult::error(GroupError::RebalanceInProgress));
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

    pub(super) fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(Member::rejoined)
    }

    pub(super) fn try_complete_join(&mut self, now: Instant, now_wall_ms: i64) {
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
    pub(super) fn complete_join(&mut self, now: Instant, now_wall_ms: i64) {
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
                    error: None,
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
    pub(super) fn select_protocol(&self) -> Option<String> {
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

    /// Protocols every member supports, in no particular order.
    pub(super) fn candidate_protocols(&self, except: Option<&str>) -> Option<Vec<String>> {
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

    pub(super) fn accepts_protocols(&self, p: &JoinParams) -> bool {
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
}

fn new_member_id(client_id: &str) -> String {
    // Kafka's shape: client id, a dash, a random UUID.
    let prefix: String = client_id.chars().take(64).collect();
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// The refusal a static member's stale member id gets: its instance id belongs to a
/// newer member.
fn fenced(old_id: &str, p: &JoinParams) -> GroupError {
    GroupError::FencedInstance {
        member: old_id.to_string(),
        instance: p.instance_id.clone().unwrap_or_default(),
    }
}
