//! One partition's Raft group on this broker: a raft-rs `RawNode` over [`LogStorage`],
//! and the Ready handling that orders persistence before the messages that depend on it.
//!
//! [`Group::handle_ready`] follows raft-rs's contract for each Ready:
//! 1. messages a leader may send before persisting (replication to followers) go out
//!    first, so followers write in parallel with the leader;
//! 2. new entries are appended to the log and the hard state persisted; then one flush;
//! 3. messages that required persistence (votes, acknowledgements) go out after it;
//! 4. committed entries are applied: the commit watermark moves (the partition's high
//!    watermark is the Kafka offset after the last committed entry) and configuration
//!    changes take effect.
//!
//! The caller owns timing (ticks) and the network (steps in, messages out), so the same
//! code runs under the deterministic simulation in `tests/` and, later, the multi-Raft
//! node with its transport.

use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message};
use raft::prelude::Config;
use raft::{RawNode, StateRole};

use crate::error::{ReplicationError, Result};
use crate::storage::LogStorage;

/// Raft timing in ticks; the driver decides how long a tick is.
pub const ELECTION_TICKS: usize = 10;
pub const HEARTBEAT_TICKS: usize = 2;
/// Bytes of entries per append message.
pub const MAX_BYTES_PER_MESSAGE: u64 = 1 << 20;
/// Append messages in flight per follower.
pub const MAX_INFLIGHT_MESSAGES: usize = 256;

/// Election timing. Production jitters each replica's election timeout within
/// `[election_ticks, 2 × election_ticks)` so replicas rarely campaign together; a
/// simulation turns the jitter off (raft-rs draws it from a generator the seed does not
/// control) and desynchronizes replicas by how it ticks them instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    pub jitter: bool,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            election_ticks: ELECTION_TICKS,
            heartbeat_ticks: HEARTBEAT_TICKS,
            jitter: true,
        }
    }
}

/// What one Ready produced for the caller.
#[derive(Debug, Default)]
pub struct ReadyOutput {
    /// Messages to deliver to other replicas, in order.
    pub messages: Vec<Message>,
    /// Entries that became committed, in order (already applied to the watermark).
    pub committed: Vec<Entry>,
}

/// Where a proposal went: its Raft index and the term it was proposed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    pub index: u64,
    pub term: u64,
}

/// What became of a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalStatus {
    Pending,
    Committed,
    /// Another leader's entry took its place; it will never commit.
    Lost,
}

/// Why a proposal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader proposes; `leader` is the current leader's id when known (0: none).
    #[error("not the leader (leader is {leader})")]
    NotLeader { leader: u64 },
    /// raft-rs refused the proposal (a leader transfer in progress, …).
    #[error("proposal dropped: {0}")]
    Dropped(String),
}

fn raft_err(what: &'static str, source: raft::Error) -> ReplicationError {
    ReplicationError::Raft { what, source }
}

/// One replica of a partition's Raft group.
pub struct Group {
    id: u64,
    node: RawNode<LogStorage>,
    storage: LogStorage,
    /// Last committed and applied Raft index.
    applied: u64,
    /// Kafka offset after the last committed entry: the high watermark.
    committed_offset: u64,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("id", &self.id)
            .field("applied", &self.applied)
            .field("committed_offset", &self.committed_offset)
            .finish()
    }
}

impl Group {
    /// Opens this replica (`id`) over `storage`. A replica with no configuration yet
    /// starts with `voters` as its initial configuration (every replica of a new group
    /// must be given the same list); an existing one keeps what it persisted.
    pub fn open(
        id: u64,
        storage: LogStorage,
        voters: &[u64],
        logger: &slog::Logger,
    ) -> Result<Group> {
        Self::open_with(id, storage, voters, logger, Timing::default())
    }

    /// [`Group::open`] with explicit election timing.
    pub fn open_with(
        id: u64,
        storage: LogStorage,
        voters: &[u64],
        logger: &slog::Logger,
        timing: Timing,
    ) -> Result<Group> {
        let persisted = storage.persisted();
        if persisted.conf.voters.is_empty() && persisted.conf.learners.is_empty() {
            storage.set_conf_state(raft::eraftpb::ConfState {
                voters: voters.to_vec(),
                ..Default::default()
            })?;
        }
        let applied = persisted.hard.commit;
        let config = Config {
            id,
            election_tick: timing.election_ticks,
            heartbeat_tick: timing.heartbeat_ticks,
            min_election_tick: timing.election_ticks,
            max_election_tick: if timing.jitter {
                2 * timing.election_ticks
            } else {
                timing.election_ticks + 1
            },
            max_size_per_msg: MAX_BYTES_PER_MESSAGE,
            max_inflight_msgs: MAX_INFLIGHT_MESSAGES,
            check_quorum: true,
            pre_vote: true,
            applied,
            ..Default::default()
        };
        config.validate().map_err(|e| raft_err("config", e))?;
        let node =
            RawNode::new(&config, storage.clone(), logger).map_err(|e| raft_err("start", e))?;
        let committed_offset = offset_after(&storage, applied);
        Ok(Group {
            id,
            node,
            storage,
            applied,
            committed_offset,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn storage(&self) -> &LogStorage {
        &self.storage
    }

    pub fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    /// The current leader's id (0 when unknown) and term.
    pub fn leader(&self) -> (u64, u64) {
        (self.node.raft.leader_id, self.node.raft.term)
    }

    /// Last committed (and applied) Raft index.
    pub fn committed_index(&self) -> u64 {
        self.applied
    }

    /// The Kafka offset after the last committed entry: what consumers may read up to.
    pub fn committed_offset(&self) -> u64 {
        self.committed_offset
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.node.tick();
    }

    /// Delivers a message from another replica of this group. Messages that make no
    /// sense for this replica's state are ignored by raft-rs; a malformed one is an error.
    pub fn step(&mut self, message: Message) -> Result<()> {
        match self.node.step(message) {
            Ok(()) | Err(raft::Error::StepPeerNotFound) | Err(raft::Error::StepLocalMsg) => Ok(()),
            Err(e) => Err(raft_err("step", e)),
        }
    }

    /// Proposes a Kafka batch. It is appended (offsets assigned) at the next Ready and
    /// committed once a quorum has it durably. Returns where it will be: pass that to
    /// [`Group::proposal_status`] to learn whether it committed or was lost with a change
    /// of leader.
    pub fn propose(&mut self, batch: Vec<u8>) -> Result<Proposal, ProposeError> {
        if !self.is_leader() {
            return Err(ProposeError::NotLeader {
                leader: self.node.raft.leader_id,
            });
        }
        let term = self.node.raft.term;
        self.node
            .propose(Vec::new(), batch)
            .map_err(|e| ProposeError::Dropped(e.to_string()))?;
        Ok(Proposal {
            index: self.node.raft.raft_log.last_index(),
            term,
        })
    }

    /// Whether a proposal committed, is still pending, or was replaced by another
    /// leader's entry (the client must retry; with an idempotent producer the retry is
    /// safe).
    pub fn proposal_status(&self, p: Proposal) -> ProposalStatus {
        if p.index > self.applied {
            return if self.node.raft.term == p.term {
                ProposalStatus::Pending
            } else {
                // A new term: the entry may still commit if the new leader kept it.
                match self.storage.log().read().map(|l| l.term_of(p.index)) {
                    Ok(Ok(t)) if t != p.term => ProposalStatus::Lost,
                    _ => ProposalStatus::Pending,
                }
            };
        }
        match self.storage.log().read().map(|l| l.term_of(p.index)) {
            Ok(Ok(t)) if t == p.term => ProposalStatus::Committed,
            Ok(Ok(_)) => ProposalStatus::Lost,
            // Retention already removed it, so it had committed.
            _ => ProposalStatus::Committed,
        }
    }

    /// Hands leadership to `to` (it must be a voter and caught up to take it).
    pub fn transfer_leader(&mut self, to: u64) {
        self.node.transfer_leader(to);
    }

    /// Processes everything raft-rs has ready; see the module documentation for order.
    pub fn handle_ready(&mut self) -> Result<ReadyOutput> {
        let mut out = ReadyOutput::default();
        if !self.node.has_ready() {
            return Ok(out);
        }
        let mut ready = self.node.ready();
        out.messages.extend(ready.take_messages());
        if !ready.snapshot().is_empty() {
            // LogStorage never produces snapshots yet (see `LogStorage::snapshot`), so
            // no peer can send one.
            return Err(ReplicationError::Raft {
                what: "ready",
                source: raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable),
            });
        }
        let committed = ready.take_committed_entries();
        self.apply(committed, &mut out)?;
        self.storage.append(ready.entries())?;
        if let Some(hs) = ready.hs() {
            self.storage.set_hard_state(hs.clone())?;
        }
        if !ready.entries().is_empty() || ready.must_sync() {
            self.storage.flush()?;
        }
        out.messages.extend(ready.take_persisted_messages());
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.storage.set_commit(commit)?;
        }
        out.messages.extend(light.take_messages());
        let committed = light.take_committed_entries();
        self.apply(committed, &mut out)?;
        self.node.advance_apply();
        Ok(out)
    }

    fn apply(&mut self, entries: Vec<Entry>, out: &mut ReadyOutput) -> Result<()> {
        for e in entries {
            match e.get_entry_type() {
                EntryType::EntryConfChange => {
                    let cc: ConfChange = protobuf_decode(&e.data)?;
                    let cs = self
                        .node
                        .apply_conf_change(&cc)
                        .map_err(|x| raft_err("conf change", x))?;
                    self.storage.set_conf_state(cs)?;
                }
                EntryType::EntryConfChangeV2 => {
                    let cc: ConfChangeV2 = protobuf_decode(&e.data)?;
                    let cs = self
                        .node
                        .apply_conf_change(&cc)
                        .map_err(|x| raft_err("conf change", x))?;
                    self.storage.set_conf_state(cs)?;
                }
                EntryType::EntryNormal => {}
            }
            self.applied = e.index;
            self.committed_offset = offset_after(&self.storage, e.index);
            out.committed.push(e);
        }
        Ok(())
    }
}

/// The Kafka offset after Raft entry `index` (0 before any entry).
fn offset_after(storage: &LogStorage, index: u64) -> u64 {
    let Ok(log) = storage.log().read() else {
        return 0;
    };
    if index == 0 || index < log.first_raft_index() {
        return log.log_start_offset();
    }
    log.entry(index)
        .map(|e| e.next_offset)
        .unwrap_or_else(|_| log.next_offset())
}

fn protobuf_decode<M: protobuf::Message>(bytes: &[u8]) -> Result<M> {
    M::parse_from_bytes(bytes).map_err(|e| ReplicationError::Raft {
        what: "decoding a configuration change",
        source: raft::Error::CodecError(e),
    })
}

/// A logger for raft-rs that discards its output (Strata's diagnostics use `tracing`).
pub fn discard_logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}
