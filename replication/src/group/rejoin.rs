//! Rejoining after a lost disk: a replica whose node lost its data directory must not
//! vote before it holds what the group committed.
//!
//! A voter's promise in Raft is its log and its vote. A node whose directory was wiped
//! has forgotten both: if it voted as soon as it restarted, the entries it had
//! acknowledged (and that counted towards their commit) would be missing from the
//! majority that elects the next leader. So a replica opened while its node rejoins is
//! marked ([`REJOIN_FILE`] beside its log, made durable before the replica does
//! anything) and, until it has caught up, it
//!
//! - answers no vote or pre-vote request and ignores a leadership transfer to it,
//! - does not campaign (its election timer does not run),
//! - still appends what a leader sends and acknowledges it truthfully.
//!
//! It has caught up once it has applied the commit index of the first append a leader
//! sent it (that leader's commit when it first heard from it), or once it was elected
//! itself (a fresh election, below); the marker is then removed and the replica votes
//! again. A group whose only voter is this replica has nothing to
//! wait for and never rejoins.
//!
//! A brand-new cluster is made of nodes that all start from empty directories, so one
//! group, the cluster's controller, may be marked to accept *fresh elections*: it may
//! campaign, and it grants votes, while both its log and the candidate's are still at
//! their bootstrap point, which no leader ever wrote past (nothing can have been
//! committed there). A node that held a committed entry always has a longer log, so it
//! neither asks such a replica for a vote it could get nor gives one to it.

use raft::eraftpb::{Message, MessageType};

use super::{Group, BOOTSTRAP_INDEX, BOOTSTRAP_TERM};
use crate::error::{ReplicationError, Result};

/// The marker of a rejoining replica, beside its log.
pub const REJOIN_FILE: &str = "rejoin.pending";
const REJOIN_TMP: &str = "rejoin.pending.tmp";
const FRESH_ELECTIONS: &str = "fresh-elections";
const NO_VOTES: &str = "no-votes";

/// A rejoining replica's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rejoin {
    /// The commit index of the first append a leader sent; caught up once applied.
    target: Option<u64>,
    /// Whether elections among replicas that never saw a leader's entry are allowed.
    fresh_elections: bool,
}

impl Rejoin {
    fn new(fresh_elections: bool) -> Rejoin {
        Rejoin {
            target: None,
            fresh_elections,
        }
    }
}

impl Group {
    /// Marks this replica as rejoining (durably, before it handles any message): see the
    /// module documentation. `fresh_elections` is for the group every node of a new
    /// cluster forms from empty directories. A no-op for a group whose only voter is
    /// this replica, and for a replica that already holds state of its own (entries or a
    /// term past the bootstrap point): the marker is made before a replica handles its
    /// first message, so such state was written since, and a replica without the marker
    /// had caught up before (marking it again after a restart could leave a new
    /// cluster that restarted within its first second without any voter).
    pub fn start_rejoin(&mut self, fresh_elections: bool) -> Result<()> {
        if self.sole_voter() || !self.at_bootstrap() || self.node.raft.term > BOOTSTRAP_TERM {
            return Ok(());
        }
        let mode = if fresh_elections {
            FRESH_ELECTIONS
        } else {
            NO_VOTES
        };
        let dir = self.storage.dir();
        log_store::checkpoint::replace_file(dir, REJOIN_TMP, REJOIN_FILE, mode.as_bytes(), None)
            .map_err(|source| ReplicationError::Log {
                dir: dir.to_path_buf(),
                source,
            })?;
        self.rejoin = Some(Rejoin::new(fresh_elections));
        tracing::info!(
            group = self.id,
            fresh_elections,
            "replica rejoining: no votes until caught up"
        );
        Ok(())
    }

    /// Whether this replica is rejoining (not voting until caught up).
    pub fn is_rejoining(&self) -> bool {
        self.rejoin.is_some()
    }

    /// Reads the marker a previous run left (the replica had not caught up yet).
    pub(super) fn load_rejoin(storage: &crate::storage::LogStorage) -> Result<Option<Rejoin>> {
        let path = storage.dir().join(REJOIN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => match text.trim() {
                FRESH_ELECTIONS => Ok(Some(Rejoin::new(true))),
                // The marker is replaced atomically; an empty one (made by hand) reads
                // the safe way.
                NO_VOTES | "" => Ok(Some(Rejoin::new(false))),
                other => Err(ReplicationError::CorruptState {
                    path,
                    reason: format!("unknown rejoin mode {other:?}"),
                }),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ReplicationError::StateIo { path, source }),
        }
    }

    /// Whether the election timer may run: not while rejoining, unless fresh elections
    /// are allowed and this replica's log is still at its bootstrap point.
    pub(super) fn may_campaign(&self) -> bool {
        match self.rejoin {
            None => true,
            Some(r) => r.fresh_elections && self.at_bootstrap(),
        }
    }

    /// Whether a rejoining replica lets `message` through to raft-rs; also learns its
    /// catch-up target from the first append.
    pub(super) fn rejoin_admits(&mut self, message: &Message) -> bool {
        let at_bootstrap = self.at_bootstrap();
        let Some(rejoin) = self.rejoin.as_mut() else {
            return true;
        };
        match message.get_msg_type() {
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote => {
                let fresh = message.index == BOOTSTRAP_INDEX && message.log_term <= BOOTSTRAP_TERM;
                let admit = rejoin.fresh_elections && fresh && at_bootstrap;
                if !admit {
                    self.votes_refused += 1;
                }
                admit
            }
            MessageType::MsgTimeoutNow => false,
            MessageType::MsgAppend => {
                rejoin.target.get_or_insert(message.commit);
                true
            }
            _ => true,
        }
    }

    /// Ends the rejoin once the target is applied: the marker goes, durably, and the
    /// replica votes again.
    pub(super) fn finish_rejoin_if_caught_up(&mut self) -> Result<()> {
        let caught_up = match self.rejoin {
            // Elected (a fresh election): it holds everything committed.
            Some(_) if self.is_leader() => true,
            Some(Rejoin {
                target: Some(t), ..
            }) => self.applied >= t,
            Some(_) => self.sole_voter(),
            None => false,
        };
        if !caught_up {
            return Ok(());
        }
        self.storage.save_commit_if_due(0)?;
        let path = self.storage.dir().join(REJOIN_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ReplicationError::StateIo { path, source }),
        }
        sync_dir(self.storage.dir())?;
        self.rejoin = None;
        tracing::info!(
            group = self.id,
            applied = self.applied,
            "replica caught up: voting again"
        );
        Ok(())
    }

    /// Copes with a replica that lost entries it had acknowledged (its directory was
    /// wiped), which raft-rs does not expect:
    ///
    /// - on the follower, a heartbeat's commit (the leader's record of what this replica
    ///   holds) may lie past its log; raft-rs would abort the process. The commit is
    ///   not advanced by such a heartbeat (appends bring it forward as they fill the log);
    /// - on the leader, the follower's progress never goes below what it once matched,
    ///   so its rejections look stale and it would never be sent the entries it lost. A
    ///   rejection of this term whose hint (the follower's last index) is below the
    ///   matched index resets the follower to probing from that hint.
    pub(super) fn guard_lost_log(&mut self, message: &mut Message) {
        let raft = &mut self.node.raft;
        match message.get_msg_type() {
            MessageType::MsgHeartbeat if message.commit > raft.raft_log.last_index() => {
                tracing::debug!(
                    group = self.id,
                    commit = message.commit,
                    last = raft.raft_log.last_index(),
                    "heartbeat commit past this log: not applied"
                );
                message.commit = raft.raft_log.committed;
                let note = self.holdings_note(message.from, message.term);
                self.outbox.push(note);
            }
            MessageType::MsgAppendResponse
                if message.reject
                    && message.term == raft.term
                    && raft.state == raft::StateRole::Leader =>
            {
                let Some(pr) = raft.mut_prs().get_mut(message.from) else {
                    return;
                };
                if message.reject_hint >= pr.matched {
                    return;
                }
                tracing::warn!(group = self.id, follower = message.from, matched = pr.matched, last = message.reject_hint, "a follower lost entries it had acknowledged (a lost directory): replicating them again");
                pr.matched = 0;
                pr.become_probe();
                pr.next_idx = message.reject_hint + 1;
            }
            _ => {}
        }
    }

    /// A rejoining replica that may not campaign counts ticks instead; each election
    /// timeout without a catch-up target it tells every other replica how little it
    /// holds ([`Group::holdings_note`]). Without that, a group that went quiet while this
    /// node was away would never contact it: a returning replica normally wakes its
    /// leader by campaigning.
    pub(super) fn rejoin_tick(&mut self) {
        if self.rejoin.is_none_or(|r| r.target.is_some()) {
            return;
        }
        self.ticks_waiting += 1;
        if self.ticks_waiting < self.config.election_tick {
            return;
        }
        self.ticks_waiting = 0;
        let term = self.node.raft.term;
        let peers: Vec<u64> = self
            .node
            .raft
            .prs()
            .iter()
            .map(|(&id, _)| id)
            .filter(|&id| id != self.id)
            .collect();
        for to in peers {
            let note = self.holdings_note(to, term);
            self.outbox.push(note);
        }
    }

    /// "I hold entries up to my last index": an append rejection (Raft's own way of
    /// saying so) that a leader of `term` resets this replica's progress on
    /// ([`Group::guard_lost_log`]); of an older term, it only wakes a quiet group.
    fn holdings_note(&self, to: u64, term: u64) -> Message {
        let log = &self.node.raft.raft_log;
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppendResponse);
        m.to = to;
        m.from = self.id;
        m.term = term;
        m.reject = true;
        m.index = log.last_index();
        m.reject_hint = log.last_index();
        m.log_term = log.last_term();
        m
    }

    fn at_bootstrap(&self) -> bool {
        self.node.raft.raft_log.last_index() <= BOOTSTRAP_INDEX
    }

    fn sole_voter(&self) -> bool {
        let conf = self.node.raft.prs().conf().to_conf_state();
        conf.voters == [self.id] && conf.voters_outgoing.is_empty()
    }
}

fn sync_dir(dir: &std::path::Path) -> Result<()> {
    log_store::checkpoint::sync_dir(dir).map_err(|source| ReplicationError::Log {
        dir: dir.to_path_buf(),
        source,
    })
}
