//! The Group side of quiescence (`crate::quiesce`): whether an idle leader may stop
//! ticking its group, whether a quiet one must wake, and the heartbeats that tell the
//! followers.

use raft::eraftpb::{Message, MessageType};
use raft::StateRole;

use super::Group;

/// The hasher of raft-rs's sets.
type FxBuild = std::hash::BuildHasherDefault<fxhash::FxHasher>;

impl Group {
    /// Whether this leader's group is fully idle and may go quiet (see `quiesce.rs`):
    /// every replica on a live node (`alive`) has every entry, all committed and
    /// applied, no membership change, leader transfer or Ready pending. A replica on a
    /// dead node does not hold the group awake; when it returns, its election attempt
    /// wakes the leader, which then catches it up.
    pub fn can_quiesce(&self, alive: impl Fn(u64) -> bool) -> bool {
        let r = &self.node.raft;
        if r.state != StateRole::Leader
            || r.lead_transferee.is_some()
            || r.has_pending_conf()
            || self.joint()
            || self.node.has_ready()
        {
            return false;
        }
        let last = r.raft_log.last_index();
        r.raft_log.committed == last
            && self.applied == last
            && r.prs()
                .iter()
                .all(|(&id, pr)| pr.matched == last || (id != self.id && !alive(id)))
    }

    /// Whether the replicas on live nodes (`alive`), with this one, form a quorum. A
    /// quiet leader that lost its quorum must wake: ticking again, check-quorum makes it
    /// step down, so it stops telling clients it leads.
    pub fn quorum_alive(&self, alive: impl Fn(u64) -> bool) -> bool {
        let prs = self.node.raft.prs();
        // raft-rs's own set type (an FxHash set) is what `has_quorum` takes.
        let live: std::collections::HashSet<u64, FxBuild> = prs
            .iter()
            .map(|(&id, _)| id)
            .filter(|&id| id == self.id || alive(id))
            .collect();
        prs.has_quorum(&live)
    }

    /// Whether this replica leads a group with no other replica (voter or learner): its
    /// own flush alone commits its entries.
    pub fn is_lone_voter(&self) -> bool {
        self.is_leader() && self.is_sole_voter()
    }

    /// Whether this replica is the group's only voter and no other replica (a learner)
    /// exists, whatever its role.
    pub(super) fn is_sole_voter(&self) -> bool {
        let prs = self.node.raft.prs();
        prs.conf().voters().contains(self.id) && prs.iter().all(|(&id, _)| id == self.id)
    }

    /// Whether `peer` holds a replica of this group (voter or learner).
    pub fn has_replica(&self, peer: u64) -> bool {
        peer != self.id && self.node.raft.prs().get(peer).is_some()
    }

    /// The heartbeats that tell every other replica the group goes quiet. Like raft-rs's
    /// own, each carries the commit index capped at what that replica is known to hold
    /// (raft-rs refuses, fatally, to commit past its last entry).
    pub fn quiesce_messages(&self) -> Vec<Message> {
        let r = &self.node.raft;
        r.prs()
            .iter()
            .filter(|(&id, _)| id != self.id)
            .map(|(&to, pr)| {
                let mut m = Message::default();
                m.set_msg_type(MessageType::MsgHeartbeat);
                m.to = to;
                m.from = self.id;
                m.term = r.term;
                m.commit = r.raft_log.committed.min(pr.matched);
                m.context = crate::quiesce::QUIESCE_CONTEXT.to_vec().into();
                m
            })
            .collect()
    }
}
