//! A member's view of its group, as a state machine driven by JoinGroup, SyncGroup and
//! Heartbeat answers. No I/O here: the consumer sends the requests and feeds the
//! answers in, which keeps every transition testable without a broker.
//!
//! ```text
//!  Unjoined ──JoinGroup ok──▶ Syncing ──SyncGroup ok──▶ Stable
//!     ▲  ▲ MEMBER_ID_REQUIRED      │ REBALANCE_IN_PROGRESS     │ heartbeat: REBALANCE_IN_PROGRESS
//!     │  └──(rejoin with the id)   ▼                           ▼
//!     └──────────────────────── rejoin ◀──────────────────────┘
//!  ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID: forget member id and generation, rejoin.
//!  FENCED_INSTANCE_ID: fatal. Coordinator errors: find the coordinator, rejoin.
//! ```

use bytes::Bytes;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};

use crate::error::{
    Error, KafkaCode, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, FENCED_INSTANCE_ID,
    ILLEGAL_GENERATION, MEMBER_ID_REQUIRED, NOT_COORDINATOR, REBALANCE_IN_PROGRESS,
    UNKNOWN_MEMBER_ID,
};
use crate::group::protocol::CONSUMER_PROTOCOL_TYPE;

/// Kafka's "no generation".
pub const NO_GENERATION: i32 = -1;

/// Where the member is in the join protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Not in a generation: must (re)join.
    Unjoined,
    /// Joined a generation, waiting for its assignment.
    Syncing,
    /// Has its assignment for the current generation.
    Stable,
}

/// What to do after an answer.
#[derive(Debug, Clone)]
pub enum Step {
    /// Proceed (JoinGroup: sync; SyncGroup: use the assignment; Heartbeat: carry on).
    Proceed,
    /// Send JoinGroup again at once (member id assigned, or the group rebalances).
    Rejoin,
    /// The same request may work after a backoff.
    Retry,
    /// The coordinator moved or is unavailable: look it up again, then rejoin.
    FindCoordinator,
    /// The member cannot go on.
    Fatal(Error),
}

impl PartialEq for Step {
    /// Fatal steps are equal when their errors read the same.
    fn eq(&self, other: &Step) -> bool {
        match (self, other) {
            (Step::Fatal(a), Step::Fatal(b)) => a.to_string() == b.to_string(),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

/// One member of the JoinGroup answer (only the leader gets them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// Its member id.
    pub member_id: String,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Its protocol metadata (an encoded subscription).
    pub metadata: Bytes,
}

/// The member's identity and state. See the module documentation.
#[derive(Debug, Clone)]
pub struct Membership {
    group: String,
    instance_id: Option<String>,
    member_id: String,
    generation: i32,
    state: MemberState,
    leader: bool,
    protocol: Option<String>,
    members: Vec<JoinedMember>,
}

impl Membership {
    /// A member that has not joined yet.
    pub fn new(group: &str, instance_id: Option<String>) -> Membership {
        Membership {
            group: group.to_string(),
            instance_id,
            member_id: String::new(),
            generation: NO_GENERATION,
            state: MemberState::Unjoined,
            leader: false,
            protocol: None,
            members: Vec::new(),
        }
    }

    /// The group id.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The member id ("" until the coordinator assigns one).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The `group.instance.id` of a static member.
    pub fn instance_id(&self) -> Option<&str> {
        self.instance_id.as_deref()
    }

    /// The generation joined, or [`NO_GENERATION`].
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The state.
    pub fn state(&self) -> MemberState {
        self.state
    }

    /// Whether this member leads the current generation (and so must assign).
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// The assignor the coordinator chose for the current generation.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The members the leader must assign (empty for followers).
    pub fn members(&self) -> &[JoinedMember] {
        &self.members
    }

    /// The group rebalances: join again, keeping member id (and generation, for
    /// commits in between, as Kafka allows while the group prepares to rebalance).
    pub fn need_rejoin(&mut self) {
        self.state = MemberState::Unjoined;
    }

    /// Forgets member id and generation (the coordinator does not know them any more).
    pub fn reset(&mut self) {
        self.member_id.clear();
        self.generation = NO_GENERATION;
        self.state = MemberState::Unjoined;
        self.leader = false;
        self.members.clear();
    }

    /// Feeds a JoinGroup answer.
    pub fn on_join(&mut self, response: &JoinGroupResponse) -> Step {
        match response.error_code {
            0 => {}
            MEMBER_ID_REQUIRED => {
                // JoinGroup v4+: the coordinator names our id; rejoin with it.
                self.member_id = response.member_id.to_string();
                self.state = MemberState::Unjoined;
                return Step::Rejoin;
            }
            REBALANCE_IN_PROGRESS => return Step::Retry,
            code => return self.on_error("join", code),
        }
        if let Some(t) = response.protocol_type.as_deref() {
            if t != CONSUMER_PROTOCOL_TYPE {
                return Step::Fatal(self.protocol_error(format!(
                    "the coordinator chose protocol type {t:?}, not {CONSUMER_PROTOCOL_TYPE:?}"
                )));
            }
        }
        let Some(protocol) = response.protocol_name.as_deref().filter(|p| !p.is_empty()) else {
            return Step::Fatal(
                self.protocol_error("JoinGroup succeeded without naming a protocol".into()),
            );
        };
        self.member_id = response.member_id.to_string();
        self.generation = response.generation_id;
        self.protocol = Some(protocol.to_string());
        self.leader = !self.member_id.is_empty() && response.leader.as_str() == self.member_id;
        // KIP-814: a static leader that rejoined without change may skip assigning.
        self.members = if self.leader && !response.skip_assignment {
            response
                .members
                .iter()
                .map(|m| JoinedMember {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                    metadata: m.metadata.clone(),
                })
                .collect()
        } else {
            Vec::new()
        };
        self.state = MemberState::Syncing;
        Step::Proceed
    }

    /// Feeds a SyncGroup answer; on [`Step::Proceed`] the member is stable and the
    /// answer's assignment bytes are its partitions.
    pub fn on_sync(&mut self, response: &SyncGroupResponse) -> Step {
        match response.error_code {
            0 => {}
            REBALANCE_IN_PROGRESS => {
                self.state = MemberState::Unjoined;
                return Step::Rejoin;
            }
            code => return self.on_error("sync", code),
        }
        if let (Some(t), Some(p)) = (response.protocol_name.as_deref(), self.protocol.as_deref()) {
            if t != p {
                return Step::Fatal(self.protocol_error(format!(
                    "SyncGroup names protocol {t:?}, JoinGroup named {p:?}"
                )));
            }
        }
        self.state = MemberState::Stable;
        self.members.clear();
        Step::Proceed
    }

    /// Feeds a Heartbeat error code (the heartbeat task reports them).
    pub fn on_heartbeat(&mut self, code: i16) -> Step {
        match code {
            0 => Step::Proceed,
            REBALANCE_IN_PROGRESS => {
                self.state = MemberState::Unjoined;
                Step::Rejoin
            }
            code => self.on_error("heartbeat", code),
        }
    }

    /// What an error answer to any group request means for the member.
    fn on_error(&mut self, api: &str, code: i16) -> Step {
        match code {
            ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID => {
                self.reset();
                Step::Rejoin
            }
            COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR => {
                self.state = MemberState::Unjoined;
                Step::FindCoordinator
            }
            COORDINATOR_LOAD_IN_PROGRESS => Step::Retry,
            FENCED_INSTANCE_ID => Step::Fatal(Error::Fenced {
                group: self.group.clone(),
                instance_id: self.instance_id.clone().unwrap_or_default(),
            }),
            code if KafkaCode(code).is_retriable() => Step::Retry,
            code => Step::Fatal(Error::Kafka {
                context: format!("{api} group {:?}", self.group),
                code: KafkaCode(code),
                message: None,
            }),
        }
    }

    fn protocol_error(&self, reason: String) -> Error {
        Error::Group {
            group: self.group.clone(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
    use kafka_protocol::protocol::StrBytes;

    fn join(code: i16, member: &str, leader: &str, generation: i32) -> JoinGroupResponse {
        JoinGroupResponse::default()
            .with_error_code(code)
            .with_member_id(StrBytes::from_string(member.into()))
            .with_leader(StrBytes::from_string(leader.into()))
            .with_generation_id(generation)
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_static_str("range")))
            .with_members(vec![JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(member.into()))
                .with_metadata(Bytes::from_static(b"m"))])
    }

    fn sync(code: i16) -> SyncGroupResponse {
        SyncGroupResponse::default().with_error_code(code)
    }

    #[test]
    fn a_first_join_takes_the_assigned_member_id_then_leads() {
        let mut m = Membership::new("g", None);
        assert_eq!(
            m.on_join(&join(MEMBER_ID_REQUIRED, "m-1", "", -1)),
            Step::Rejoin
        );
        assert_eq!(m.member_id(), "m-1");
        assert_eq!(m.state(), MemberState::Unjoined);
        assert_eq!(m.generation(), NO_GENERATION);
        assert_eq!(m.on_join(&join(0, "m-1", "m-1", 1)), Step::Proceed);
        assert!(m.is_leader());
        assert_eq!(m.members().len(), 1);
        assert_eq!(m.protocol(), Some("range"));
        assert_eq!((m.state(), m.generation()), (MemberState::Syncing, 1));
        assert_eq!(m.on_sync(&sync(0)), Step::Proceed);
        assert_eq!(m.state(), MemberState::Stable);
        assert!(m.members().is_empty());
    }

    #[test]
    fn followers_get_no_member_list() {
        let mut m = Membership::new("g", None);
        assert_eq!(m.on_join(&join(0, "m-2", "m-1", 4)), Step::Proceed);
        assert!(!m.is_leader());
        assert!(m.members().is_empty());
    }

    #[test]
    fn a_rebalance_keeps_the_member_id_and_generation() {
        let mut m = Membership::new("g", None);
        m.on_join(&join(0, "m-1", "m-1", 3));
        m.on_sync(&sync(0));
        assert_eq!(m.on_heartbeat(0), Step::Proceed);
        assert_eq!(m.on_heartbeat(REBALANCE_IN_PROGRESS), Step::Rejoin);
        assert_eq!(m.state(), MemberState::Unjoined);
        assert_eq!((m.member_id(), m.generation()), ("m-1", 3));
        // A rebalance that starts between join and sync.
        m.on_join(&join(0, "m-1", "m-1", 4));
        assert_eq!(m.on_sync(&sync(REBALANCE_IN_PROGRESS)), Step::Rejoin);
        assert_eq!(m.member_id(), "m-1");
    }

    #[test]
    fn fencing_by_generation_or_member_resets_the_member() {
        for code in [ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID] {
            let mut m = Membership::new("g", None);
            m.on_join(&join(0, "m-1", "m-1", 3));
            m.on_sync(&sync(0));
            assert_eq!(m.on_heartbeat(code), Step::Rejoin);
            assert_eq!((m.member_id(), m.generation()), ("", NO_GENERATION));
            assert!(!m.is_leader());
        }
        let mut m = Membership::new("g", None);
        m.on_join(&join(0, "m-1", "m-1", 3));
        assert_eq!(m.on_sync(&sync(UNKNOWN_MEMBER_ID)), Step::Rejoin);
        assert_eq!(m.member_id(), "");
    }

    #[test]
    fn a_fenced_static_member_stops() {
        let mut m = Membership::new("g", Some("host-1".into()));
        m.on_join(&join(0, "m-1", "m-1", 3));
        m.on_sync(&sync(0));
        match m.on_heartbeat(FENCED_INSTANCE_ID) {
            Step::Fatal(Error::Fenced { instance_id, .. }) => assert_eq!(instance_id, "host-1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn coordinator_moves_and_other_errors() {
        let mut m = Membership::new("g", None);
        assert_eq!(
            m.on_join(&join(NOT_COORDINATOR, "", "", -1)),
            Step::FindCoordinator
        );
        assert_eq!(
            m.on_join(&join(COORDINATOR_NOT_AVAILABLE, "", "", -1)),
            Step::FindCoordinator
        );
        assert_eq!(
            m.on_join(&join(COORDINATOR_LOAD_IN_PROGRESS, "", "", -1)),
            Step::Retry
        );
        assert_eq!(
            m.on_join(&join(REBALANCE_IN_PROGRESS, "", "", -1)),
            Step::Retry
        );
        // INCONSISTENT_GROUP_PROTOCOL: the group uses assignors we do not offer.
        match m.on_join(&join(23, "", "", -1)) {
            Step::Fatal(e) => assert!(e.to_string().contains("INCONSISTENT_GROUP_PROTOCOL"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_join_without_a_protocol_or_of_another_type_is_refused() {
        let mut m = Membership::new("g", None);
        let mut r = join(0, "m-1", "m-1", 1);
        r.protocol_name = None;
        assert!(matches!(m.on_join(&r), Step::Fatal(Error::Group { .. })));
        let mut r = join(0, "m-1", "m-1", 1);
        r.protocol_type = Some(StrBytes::from_static_str("connect"));
        assert!(matches!(m.on_join(&r), Step::Fatal(Error::Group { .. })));
    }

    #[test]
    fn a_static_leader_told_to_skip_assignment_sends_none() {
        let mut m = Membership::new("g", Some("i".into()));
        let mut r = join(0, "m-1", "m-1", 2);
        r.skip_assignment = true;
        assert_eq!(m.on_join(&r), Step::Proceed);
        assert!(m.is_leader() && m.members().is_empty());
    }
}
