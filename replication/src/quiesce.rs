//! Quiescence: idle groups stop ticking, so thousands of idle partitions cost almost
//! nothing (heartbeats of idle groups are coalesced per peer pair).
//!
//! raft-rs keeps a leader alive by one heartbeat per group per follower every few ticks,
//! and every replica of every group ticks. With many idle partitions that is most of a
//! broker's idle CPU (BENCHMARKS.md, "Idle groups"). Instead, in the manner of
//! CockroachDB's range quiescence:
//!
//! - a leader whose group is fully idle (every replica has every entry, all committed
//!   and applied, no change or transfer under way, nothing waiting) sends its followers
//!   one last heartbeat marked *quiesce* and stops ticking the group;
//! - a follower that gets that heartbeat from the leader it knows stops ticking too;
//! - liveness is then kept **per peer pair**: every node sends each peer one small beat
//!   per tick (group [`NODE_GROUP`]), and any message from a peer counts as hearing
//!   from it. A quiet follower whose leader's node has not been heard from for an
//!   election timeout wakes and ticks again, so raft-rs elects a new leader as usual;
//! - anything else for a quiet group — a proposal, a command, an append, a vote —
//!   wakes it, on the leader and on followers.
//!
//! Raft's safety never depends on ticking; quiescence only trades liveness detection
//! per group for detection per node, and failover takes the node timeout plus an
//! election timeout. A quiet leader cut off from its followers does not notice until
//! something wakes it (a proposal: it then steps down by check-quorum, and the write
//! fails rather than being acknowledged); meanwhile the followers' side elects a new
//! leader.

use std::collections::{HashMap, HashSet};

use raft::eraftpb::{Message, MessageType};

/// Envelopes for this group id are node-to-node liveness beats, not Raft messages.
pub const NODE_GROUP: u64 = 0;
/// The context that marks a leader's heartbeat as "this group is going quiet".
pub const QUIESCE_CONTEXT: &[u8] = b"strata:quiesce";

/// What a message means for a group's quiescence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// The leader says the group is idle: step it (its context removed), then quiet
    /// the group if the sender is still the leader this replica knows.
    Quiesce,
    /// Wakes the group (anything but heartbeat traffic).
    Wake,
    /// Heartbeat traffic of an awake group or the answers to a quiesce: no change.
    Neutral,
}

/// Classifies `message` and strips the quiesce mark, so raft-rs sees a plain heartbeat.
pub fn classify(message: &mut Message) -> Incoming {
    match message.get_msg_type() {
        MessageType::MsgHeartbeat if message.context.as_ref() == QUIESCE_CONTEXT => {
            message.context = Default::default();
            Incoming::Quiesce
        }
        MessageType::MsgHeartbeatResponse => Incoming::Neutral,
        _ => Incoming::Wake,
    }
}

/// Which groups are quiet on this node, and when each peer node was last heard from.
#[derive(Debug, Default)]
pub struct Quiescence {
    ticks: u64,
    timeout_ticks: u64,
    quiet: HashSet<u64>,
    heard: HashMap<u64, u64>,
}

impl Quiescence {
    /// A peer not heard from for `timeout_ticks` ticks counts as down.
    pub fn new(timeout_ticks: u64) -> Quiescence {
        Quiescence {
            timeout_ticks,
            ..Default::default()
        }
    }

    pub fn tick(&mut self) {
        self.ticks += 1;
    }

    pub fn heard_from(&mut self, peer: u64) {
        self.heard.insert(peer, self.ticks);
    }

    /// Whether `peer` was heard from within the timeout.
    pub fn alive(&self, peer: u64) -> bool {
        self.heard
            .get(&peer)
            .is_some_and(|&t| self.ticks.saturating_sub(t) <= self.timeout_ticks)
    }

    pub fn is_quiet(&self, group: u64) -> bool {
        self.quiet.contains(&group)
    }

    pub fn quiet(&mut self, group: u64) {
        self.quiet.insert(group);
    }

    /// Wakes `group`; true if it was quiet.
    pub fn wake(&mut self, group: u64) -> bool {
        self.quiet.remove(&group)
    }

    pub fn quiet_count(&self) -> usize {
        self.quiet.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(t: MessageType, context: &[u8]) -> Message {
        let mut m = Message::default();
        m.set_msg_type(t);
        m.context = context.to_vec().into();
        m
    }

    #[test]
    fn only_marked_heartbeats_quiesce_and_heartbeat_answers_do_not_wake() {
        let mut m = msg(MessageType::MsgHeartbeat, QUIESCE_CONTEXT);
        assert_eq!(classify(&mut m), Incoming::Quiesce);
        assert!(m.context.is_empty(), "raft-rs must see a plain heartbeat");
        let mut m = msg(MessageType::MsgHeartbeat, b"");
        assert_eq!(classify(&mut m), Incoming::Wake);
        let mut m = msg(MessageType::MsgHeartbeatResponse, b"");
        assert_eq!(classify(&mut m), Incoming::Neutral);
        for t in [
            MessageType::MsgAppend,
            MessageType::MsgRequestPreVote,
            MessageType::MsgRequestVote,
            MessageType::MsgSnapshot,
            MessageType::MsgTimeoutNow,
        ] {
            assert_eq!(classify(&mut msg(t, QUIESCE_CONTEXT)), Incoming::Wake);
        }
    }

    #[test]
    fn peers_count_as_down_after_the_timeout() {
        let mut q = Quiescence::new(3);
        assert!(!q.alive(2), "never heard from");
        q.heard_from(2);
        for _ in 0..3 {
            q.tick();
        }
        assert!(q.alive(2));
        q.tick();
        assert!(!q.alive(2));
        q.quiet(7);
        assert!(q.is_quiet(7) && q.wake(7) && !q.wake(7));
    }
}
