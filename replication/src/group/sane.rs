//! Raft messages come from the network. raft-rs trusts its peers: a message that no
//! honest replica sends (an append rewriting committed entries, entries that do not
//! follow each other, an acknowledgement of entries the leader never wrote) makes it
//! panic, and the panic would stop the node task that drives every group of the broker.
//! Such a message is refused here, before raft-rs sees it, with the reason; the group
//! goes on. (A heartbeat committing past this log is clamped instead, by
//! `guard_lost_log`: a leader honestly sends one to a replica that lost its disk.)
//!
//! Authenticating peers is the transport's job; these checks keep one faulty or forged
//! frame from taking a broker down.

use raft::eraftpb::{Message, MessageType};
use raft::StateRole;

use super::Group;
use crate::error::{ReplicationError, Result};

/// The furthest a message's term may run ahead of this replica's: each election adds
/// one, so a larger jump is no election's (and `u64::MAX` would overflow the next).
pub const MAX_TERM_JUMP: u64 = 1 << 32;

impl Group {
    /// Refuses `m` when no honest replica of this group could have sent it.
    pub(super) fn check_sane(&self, m: &Message) -> Result<()> {
        let raft = &self.node.raft;
        let refuse = |reason: String| {
            Err(ReplicationError::ImpossibleMessage {
                group: self.id,
                from: m.from,
                kind: format!("{:?}", m.get_msg_type()),
                reason,
            })
        };
        if m.term > raft.term.saturating_add(MAX_TERM_JUMP) {
            return refuse(format!(
                "term {} is beyond any election from {}",
                m.term, raft.term
            ));
        }
        match m.get_msg_type() {
            // raft-rs drops an append from an earlier term unread (a delayed message of
            // a deposed leader may well disagree with what was committed since).
            MessageType::MsgAppend if m.term >= raft.term => {
                if let Err(reason) = self.check_entries(m) {
                    return refuse(reason);
                }
            }
            // Only a leader acts on acknowledgements, and its log only grows in its term
            // (a follower restarted in the same term may hear a delayed one for entries
            // it lost unsynced: raft-rs ignores it there).
            MessageType::MsgAppendResponse
                if !m.reject
                    && m.term == raft.term
                    && raft.state == StateRole::Leader
                    && m.index > raft.raft_log.last_index() =>
            {
                return refuse(format!(
                    "acknowledges index {} past the last, {}",
                    m.index,
                    raft.raft_log.last_index()
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// An append's entries follow its index one by one, and none rewrites an entry this
    /// replica has committed (a leader of this term or a later one holds every committed
    /// entry, in its term).
    fn check_entries(&self, m: &Message) -> std::result::Result<(), String> {
        let log = &self.node.raft.raft_log;
        for (i, e) in m.entries.iter().enumerate() {
            let expected = m.index.checked_add(i as u64 + 1);
            if expected != Some(e.index) {
                return Err(format!(
                    "entry {i} has index {} after index {}",
                    e.index, m.index
                ));
            }
            // Only entries this log holds and has committed can be rewritten; raft-rs
            // reports term 0 outside the log (a replica that lost its tail, or a compacted
            // prefix), which says nothing.
            if e.index > log.committed.min(log.last_index()) {
                break;
            }
            let term = log.term(e.index).unwrap_or(0);
            if term != 0 && term != e.term {
                return Err(format!(
                    "rewrites committed entry {} of term {term} with term {}",
                    e.index, e.term
                ));
            }
        }
        Ok(())
    }
}
