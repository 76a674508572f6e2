//! One partition's Raft group on this broker: a raft-rs `RawNode` over [`LogStorage`],
//! and the Ready handling that orders persistence before the messages that depend on it.
//!
//! Ready handling ([`Group::handle_ready_deferred`], in `ready.rs`) orders persistence
//! so that a replica opens and catches up after a crash or power loss at any step; plain
//! appends are flushed off the driver's task while it goes on, everything else in place.
//!
//! The state file's commit index is the *applied* index, written with the state's other
//! changes and otherwise every [`crate::state::COMMIT_SAVE_ENTRIES`] entries or
//! [`crate::state::COMMIT_SAVE_TICKS`] ticks, never at every commit move: it may lag
//! what the replica applied (a restart re-applies the difference, learning the commit
//! from its leader again), never lead it.
//!
//! The caller owns timing (ticks) and the network (steps in, messages out), so the same
//! code runs under the deterministic simulation in `tests/` and in the node task with its
//! transport.

use bytes::Bytes;
use raft::eraftpb::{ConfChangeType, ConfChangeV2, Entry, EntryType, Message, MessageType};
use raft::prelude::Config;
use raft::{RawNode, StateRole};

use crate::error::{ReplicationError, Result};

mod caching;
mod quiet;
mod ready;
mod rejoin;
mod sane;
mod snapshot;
use crate::storage::LogStorage;
pub use caching::{FlushPolicy, WriteCaching};
pub use ready::FlushJob;
pub use rejoin::REJOIN_FILE;

/// An audit log's non-data entry, with its payload.
#[derive(Debug)]
pub enum AuditEntry {
    /// A tree head: a `log_store::merkle::LoggedHead`.
    Head(Vec<u8>),
    /// A seal: a `log_store::log::AuditSeal`.
    Seal(Vec<u8>),
}

/// Raft timing in ticks; the driver decides how long a tick is.
pub const ELECTION_TICKS: usize = 10;
pub const HEARTBEAT_TICKS: usize = 2;
/// Bytes of entries per append message.
pub const MAX_BYTES_PER_MESSAGE: u64 = 1 << 20;
/// Append messages in flight per follower.
pub const MAX_INFLIGHT_MESSAGES: usize = 256;
/// A new group's log starts after this index, as if a snapshot at it (term
/// [`BOOTSTRAP_TERM`]) held the initial configuration. A replica added later starts
/// empty and receives a snapshot, which carries the configuration it must start from;
/// an initial configuration that lived only in the first replicas' state files would
/// never reach it.
pub const BOOTSTRAP_INDEX: u64 = 1;
pub const BOOTSTRAP_TERM: u64 = 1;

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
    /// The index of the snapshot this replica installed, if it installed one.
    pub snapshot: Option<u64>,
}

/// Where a proposal went: its Raft index and the term it was proposed in, and the
/// Kafka offset its first record gets when the entry is appended (the next offset, for a
/// non-data entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    pub index: u64,
    pub term: u64,
    pub base_offset: u64,
}

/// What became of a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalStatus {
    Pending,
    Committed,
    /// Another leader's entry took its place; it will never commit.
    Lost,
}

/// One change of a membership change (see [`Group::change_membership`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    /// Adds a learner: it receives the log but does not vote.
    AddLearner(u64),
    /// Adds a voter, or promotes a learner to voter.
    AddVoter(u64),
    /// Removes a voter or learner.
    Remove(u64),
}

/// A replica's view of its group, for status pages and leadership balancing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStatus {
    pub group: u64,
    pub id: u64,
    /// The leader this replica knows (0: none) and the term.
    pub leader: u64,
    pub term: u64,
    pub committed_index: u64,
    /// The high watermark.
    pub committed_offset: u64,
    pub last_index: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// Whether a joint configuration is in force (a change is half done).
    pub joint: bool,
    /// Whether the group is quiet on this node (idle, not ticking; set by the node).
    pub quiesced: bool,
    /// Whether this replica is rejoining after its node lost its data: it does not vote
    /// until caught up.
    pub rejoining: bool,
    /// Vote requests this replica refused while rejoining, since it opened.
    pub votes_refused: u64,
    /// On the leader: each other replica's matched index.
    pub matched: Vec<(u64, u64)>,
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
    /// A membership change is already under way; one at a time.
    #[error("a membership change is already in progress")]
    ChangeInProgress,
}

/// `RawNode::propose` for a payload the caller already holds as `Bytes`: the same
/// MsgPropose, stepped the same way, without copying a produced batch into a `Vec`.
fn propose_entry(node: &mut RawNode<LogStorage>, context: Bytes, data: Bytes) -> raft::Result<()> {
    let entry = Entry {
        data,
        context,
        ..Default::default()
    };
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgPropose);
    m.from = node.raft.id;
    m.set_entries(vec![entry].into());
    node.raft.step(m)
}

fn raft_err(what: &'static str, source: raft::Error) -> ReplicationError {
    ReplicationError::Raft { what, source }
}

/// One replica of a partition's Raft group.
pub struct Group {
    id: u64,
    config: Config,
    logger: slog::Logger,
    node: RawNode<LogStorage>,
    storage: LogStorage,
    /// Last committed and applied Raft index.
    applied: u64,
    /// Kafka offset after the last committed entry: the high watermark.
    committed_offset: u64,
    /// Snapshots this replica installed since it opened.
    snapshots_installed: u64,
    /// (term, raft index, offset): the offset after entry `index` of this leader's term,
    /// entries not yet in the log included ([`Group::next_offset_after_last`]).
    predicted: Option<(u64, u64, u64)>,
    /// Ticks since the applied index was last offered to the state file.
    ticks_since_commit_save: usize,
    /// While this replica rejoins after its node lost its data ([`rejoin`]).
    rejoin: Option<rejoin::Rejoin>,
    /// Vote requests refused while rejoining, since this replica opened.
    votes_refused: u64,
    /// Messages of this code's own (not raft-rs's) for the next Ready: a rejoining
    /// replica's note of how little it holds ([`rejoin`]).
    outbox: Vec<Message>,
    /// Ticks a rejoining replica has waited without its catch-up target.
    ticks_waiting: usize,
    /// Messages of Readies whose appends await a flush ([`ready`]).
    held: ready::Held,
    /// Whether appends count as persisted before their flush ([`caching`]).
    write_caching: WriteCaching,
    /// Entry bytes written under write caching since the last flush ended.
    cached_bytes: u64,
    /// `(index, term)` of this leader's proposals not yet written: their batches were
    /// validated by the proposer, so the log does not check their CRC again. Only a
    /// proposal made here is vouched for (a forwarded one arrives as a message).
    vouched: std::collections::VecDeque<(u64, u64)>,
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
    /// must be given the same list): its empty log restarts after [`BOOTSTRAP_INDEX`].
    /// With `voters` empty it starts uninitialized, to be added to an existing group by
    /// a membership change: the leader's first snapshot initializes it. An existing
    /// replica keeps what it persisted.
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
        let unconfigured = persisted.conf.voters.is_empty() && persisted.conf.learners.is_empty();
        if unconfigured && !voters.is_empty() {
            snapshot::bootstrap(&storage, voters)?;
        }
        let applied = storage.persisted().hard.commit;
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
        let rejoin = Self::load_rejoin(&storage)?;
        let mut group = Group {
            id,
            config,
            logger: logger.clone(),
            node,
            storage,
            applied,
            committed_offset,
            snapshots_installed: 0,
            predicted: None,
            ticks_since_commit_save: 0,
            rejoin,
            votes_refused: 0,
            outbox: Vec::new(),
            ticks_waiting: 0,
            held: ready::Held::new(),
            write_caching: WriteCaching::default(),
            cached_bytes: 0,
            vouched: std::collections::VecDeque::new(),
        };
        // The only voter has nobody to wait for: it stands at once instead of after an
        // election timeout, so its partition takes writes as soon as it opens.
        if group.is_sole_voter() {
            group.campaign()?;
        }
        Ok(group)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Shares `policy` with this replica: its appends follow it from the next Ready on
    /// (see [`WriteCaching`]; off unless set).
    pub fn set_write_caching(&mut self, policy: WriteCaching) {
        self.write_caching = policy;
    }

    /// The write-caching policy in force, and the entry bytes written under it that
    /// no flush has covered yet.
    pub fn write_cached(&self) -> (Option<FlushPolicy>, u64) {
        (self.write_caching.get(), self.cached_bytes)
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

    /// Snapshots this replica installed since it opened (it had fallen behind the
    /// leader's retention).
    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.ticks_since_commit_save += 1;
        if self.may_campaign() || self.is_leader() {
            self.node.tick();
        } else {
            self.rejoin_tick();
        }
    }

    /// Writes the applied index to the state file when it moved and either
    /// [`crate::state::COMMIT_SAVE_TICKS`] ticks passed since the last offer or the group
    /// is `idle` (quiet: nothing else will move it). The driver calls this every tick,
    /// so a restart re-applies at most about that long of entries (or
    /// [`crate::state::COMMIT_SAVE_ENTRIES`], whichever is less); returns whether it wrote.
    pub fn save_commit_if_stale(&mut self, idle: bool) -> Result<bool> {
        if !idle && self.ticks_since_commit_save < crate::state::COMMIT_SAVE_TICKS {
            return Ok(false);
        }
        self.ticks_since_commit_save = 0;
        self.storage.save_commit_if_due(1)
    }

    /// Delivers a message from another replica of this group. Messages that make no
    /// sense for this replica's state are ignored by raft-rs; a malformed one, or one no
    /// honest replica sends (`sane.rs`), is an error.
    pub fn step(&mut self, mut message: Message) -> Result<()> {
        self.check_sane(&message)?;
        if !self.rejoin_admits(&message) {
            return Ok(());
        }
        self.guard_lost_log(&mut message);
        if message.get_msg_type() == MessageType::MsgSnapshot {
            self.install_snapshot_naming_others(&message)?;
        }
        match self.node.step(message) {
            Ok(()) | Err(raft::Error::StepPeerNotFound) | Err(raft::Error::StepLocalMsg) => Ok(()),
            Err(e) => Err(raft_err("step", e)),
        }
    }

    /// Proposes a Kafka batch. It is appended (offsets assigned) at the next Ready and
    /// committed once a quorum has it durably. Returns where it will be: pass that to
    /// [`Group::proposal_status`] to learn whether it committed or was lost with a change
    /// of leader.
    pub fn propose(&mut self, batch: impl Into<Bytes>) -> Result<Proposal, ProposeError> {
        let batch = batch.into();
        self.check_leader()?;
        // Validated by the proposer; a batch without a header takes no offsets here, as
        // in the log (which refuses it).
        let count = log_store::BatchHeader::parse_header(&batch)
            .map_or(0, |h| u64::from(h.last_offset_delta as u32) + 1);
        let proposal = self.submit(count, |node| propose_entry(node, Bytes::new(), batch))?;
        // Bounded by the proposals of one turn: the next Ready writes them.
        self.vouched.push_back((proposal.index, proposal.term));
        Ok(proposal)
    }

    fn check_leader(&self) -> Result<(), ProposeError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(ProposeError::NotLeader {
                leader: self.node.raft.leader_id,
            })
        }
    }

    /// Hands raft-rs one proposal (`propose`) whose entry takes `offsets` Kafka offsets,
    /// and says where it went: its index, term and base offset (kept for the next
    /// prediction, [`Group::next_offset_after_last`]).
    fn submit(
        &mut self,
        offsets: u64,
        propose: impl FnOnce(&mut RawNode<LogStorage>) -> raft::Result<()>,
    ) -> Result<Proposal, ProposeError> {
        let term = self.node.raft.term;
        let base_offset = self.next_offset_after_last();
        propose(&mut self.node).map_err(|e| ProposeError::Dropped(e.to_string()))?;
        let index = self.node.raft.raft_log.last_index();
        self.predicted = Some((term, index, base_offset + offsets));
        Ok(Proposal {
            index,
            term,
            base_offset,
        })
    }

    /// Proposes moving the log start to `offset` on every replica (a replicated
    /// DeleteRecords): each replica deletes what lies before it when it applies the
    /// entry. The caller checks `offset` against the high watermark.
    pub fn propose_log_start(&mut self, offset: u64) -> Result<Proposal, ProposeError> {
        self.check_leader()?;
        self.submit(0, |node| {
            node.propose(
                crate::storage::LOG_START_CONTEXT.to_vec(),
                offset.to_be_bytes().to_vec(),
            )
        })
    }

    /// Proposes an audit log's entry (`entry`: a tree head or a seal, with its payload);
    /// every replica checks it against its own tree as it appends it.
    pub fn propose_audit_entry(&mut self, entry: AuditEntry) -> Result<Proposal, ProposeError> {
        self.check_leader()?;
        let (context, payload) = match entry {
            AuditEntry::Head(p) => (crate::storage::AUDIT_HEAD_CONTEXT, p),
            AuditEntry::Seal(p) => (crate::storage::AUDIT_SEAL_CONTEXT, p),
        };
        self.submit(0, |node| node.propose(context.to_vec(), payload))
    }

    /// The Kafka offset the next data entry appended after the last entry of the Raft
    /// log will get: the log's own next offset plus the records of the entries raft-rs
    /// holds that are not written yet (this leader's proposals since the last Ready). So
    /// a proposal learns its offsets at once, before it is written, exactly as the
    /// append will assign them (`Log::append_with_term`: the next offset, then
    /// `last_offset_delta + 1` records).
    fn next_offset_after_last(&self) -> u64 {
        let term = self.node.raft.term;
        let last = self.node.raft.raft_log.last_index();
        if let Some((t, i, next)) = self.predicted {
            if t == term && i == last {
                return next;
            }
        }
        let unstable = self.node.raft.raft_log.unstable_entries();
        let log = self.storage.log().read().unwrap_or_else(|e| e.into_inner());
        let mut next = match unstable.first() {
            // Entries that will replace part of the log start where the first replaced
            // one started.
            Some(e) if e.index <= log.last_raft_index() => log
                .entry(e.index)
                .map_or_else(|_| log.next_offset(), |r| r.base_offset),
            _ => log.next_offset(),
        };
        drop(log);
        for e in unstable {
            if e.get_entry_type() == EntryType::EntryNormal
                && !e.data.is_empty()
                && crate::storage::marked_kind(&e.context).is_none()
            {
                next += log_store::BatchHeader::parse_header(&e.data)
                    .map_or(0, |h| u64::from(h.last_offset_delta as u32) + 1);
            }
        }
        next
    }

    /// Starts an election now instead of after an election timeout (a new group's
    /// preferred leader, so a topic is writable as soon as it exists). With pre-vote,
    /// a replica that cannot win does not disturb a sitting leader. A rejoining replica
    /// that may not campaign ([`Group::start_rejoin`]) does nothing.
    pub fn campaign(&mut self) -> Result<()> {
        if !self.may_campaign() {
            return Ok(());
        }
        self.node.campaign().map_err(|e| raft_err("campaign", e))
    }

    /// Hands `data` to raft-rs as a proposal even on a follower: raft-rs forwards it to
    /// the leader it knows (fire and forget; nothing tracks it here). For idempotent
    /// records such as the controller's, whose effect the caller watches for in the
    /// applied state and retries. Fails when no leader is known.
    pub fn forward(&mut self, data: Bytes) -> Result<(), ProposeError> {
        if self.is_leader() {
            return self.propose(data).map(|_| ());
        }
        if self.node.raft.leader_id == raft::INVALID_ID {
            return Err(ProposeError::NotLeader { leader: 0 });
        }
        propose_entry(&mut self.node, Bytes::new(), data)
            .map_err(|e| ProposeError::Dropped(e.to_string()))
    }

    /// Whether a proposal committed, is still pending, or was replaced by another
    /// leader's entry (the client must retry; with an idempotent producer the retry is
    /// safe).
    pub fn proposal_status(&self, p: Proposal) -> ProposalStatus {
        if p.index > self.applied {
            return if self.node.raft.term == p.term {
                ProposalStatus::Pending
            } else {
                // A new term: the entry may still commit if the new leader kept it. Gone
                // from this log (a new leader's conflicting entries truncated it), it
                // is not in that leader's log either (logs that share an entry share
                // every entry before it), so it will not commit there: waiting would
                // hold the producer until its timeout.
                if p.index > self.node.raft.raft_log.last_index() {
                    return ProposalStatus::Lost;
                }
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

    /// The Kafka offset of the first record of entry `index` (for a non-data entry, the
    /// next offset when it was appended); the log start when retention removed it.
    pub fn base_offset(&self, index: u64) -> u64 {
        let log = self.storage.log().read().unwrap_or_else(|e| e.into_inner());
        log.entry(index)
            .map(|e| e.base_offset)
            .unwrap_or_else(|_| log.log_start_offset())
    }

    /// Hands leadership to `to` (it must be a voter and caught up to take it). raft-rs
    /// stops accepting proposals until the transfer ends (it gives up after an election
    /// timeout).
    pub fn transfer_leader(&mut self, to: u64) {
        self.node.transfer_leader(to);
    }

    /// Proposes a membership change. One change goes through simple consensus; several
    /// at once (e.g. add 4 and remove 3, a replica move) through joint consensus
    /// (ConfChangeV2), which raft-rs leaves automatically once the joint configuration
    /// commits. Resolves like a data proposal (see [`Group::proposal_status`]); the new
    /// configuration is in force on each replica once it applies the entry.
    pub fn change_membership(
        &mut self,
        changes: &[MemberChange],
    ) -> Result<Proposal, ProposeError> {
        self.check_leader()?;
        // raft-rs would silently turn a second change into an empty entry.
        if self.node.raft.has_pending_conf() || self.joint() {
            return Err(ProposeError::ChangeInProgress);
        }
        // raft-rs accepts the proposal but fails to apply it, on every replica, which
        // would stop the group for good.
        let mut voters = self.node.raft.prs().conf().to_conf_state().voters;
        for change in changes {
            match *change {
                MemberChange::AddVoter(n) if !voters.contains(&n) => voters.push(n),
                MemberChange::AddVoter(_) => {}
                MemberChange::AddLearner(n) | MemberChange::Remove(n) => voters.retain(|&v| v != n),
            }
        }
        if voters.is_empty() {
            return Err(ProposeError::Dropped(
                "the change would leave the group without voters".into(),
            ));
        }
        let mut cc = ConfChangeV2::default();
        for change in changes {
            let mut single = raft::eraftpb::ConfChangeSingle::default();
            let (kind, node) = match *change {
                MemberChange::AddLearner(n) => (ConfChangeType::AddLearnerNode, n),
                MemberChange::AddVoter(n) => (ConfChangeType::AddNode, n),
                MemberChange::Remove(n) => (ConfChangeType::RemoveNode, n),
            };
            single.set_change_type(kind);
            single.node_id = node;
            cc.mut_changes().push(single);
        }
        self.submit(0, |node| node.propose_conf_change(Vec::new(), cc))
    }

    fn joint(&self) -> bool {
        !self
            .node
            .raft
            .prs()
            .conf()
            .to_conf_state()
            .voters_outgoing
            .is_empty()
    }

    /// This replica's view of the group.
    pub fn status(&self) -> GroupStatus {
        let conf = self.node.raft.prs().conf().to_conf_state();
        let mut matched: Vec<(u64, u64)> = if self.is_leader() {
            self.node
                .raft
                .prs()
                .iter()
                .filter(|(id, _)| **id != self.id)
                .map(|(id, pr)| (*id, pr.matched))
                .collect()
        } else {
            Vec::new()
        };
        matched.sort_unstable();
        GroupStatus {
            group: 0,
            id: self.id,
            leader: self.node.raft.leader_id,
            term: self.node.raft.term,
            committed_index: self.applied,
            committed_offset: self.committed_offset,
            last_index: self.node.raft.raft_log.last_index(),
            joint: !conf.voters_outgoing.is_empty(),
            quiesced: false,
            rejoining: self.is_rejoining(),
            votes_refused: self.votes_refused,
            voters: conf.voters,
            learners: conf.learners,
            matched,
        }
    }

    /// Writes the applied index to the state file now (a clean stop), so a restart
    /// re-applies nothing; between stops see [`Group::save_commit_if_stale`].
    pub fn save_commit(&self) -> Result<()> {
        self.storage.save_commit_if_due(0).map(|_| ())
    }
}

impl Group {
    /// Applies a committed replicated DeleteRecords: the log start moves to its offset
    /// (never past this replica's log end; a malformed payload is skipped, on every
    /// replica alike).
    fn apply_log_start(&mut self, index: u64, data: &[u8]) {
        let Ok(bytes) = <[u8; 8]>::try_from(data) else {
            tracing::warn!(group = self.id, index, "malformed log-start entry skipped");
            return;
        };
        let offset = u64::from_be_bytes(bytes);
        let mut log = self
            .storage
            .log()
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let target = offset.min(log.next_offset());
        match log.delete_before(target) {
            Ok(start) => tracing::debug!(group = self.id, log_start = start, "log start moved"),
            Err(e) => tracing::warn!(group = self.id, offset, error = %e, "moving the log start"),
        }
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
