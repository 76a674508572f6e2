//! A broker's Raft node: every partition group this broker replicates, one tick driver,
//! the transport, and the proposal API.
//!
//! One task owns all groups. Each turn of its loop takes every event that is waiting —
//! ticks, messages from peers, proposals, finished flushes — then handles each touched
//! group's Ready once: entries that arrived for a group during the turn are appended
//! together. Their flush runs on the blocking pool, one at a time per group, while the
//! task goes on taking proposals and messages; when it ends, the next flush covers
//! everything appended meanwhile (group commit across proposals and peers' messages,
//! without the task waiting for the disk); a lone voter may hold its flush briefly while
//! nobody waits for a commit (`flush.rs`). Acknowledgements that promise durability
//! wait for their flush (`group/ready.rs`). Groups keep separate log files (the partition
//! log is the Raft log, with no shared write-ahead log), so each group flushes its own.
//!
//! A proposal resolves, as its caller asks ([`Ack`]), when the leader accepted its entry
//! (acks=1; offsets predicted, not yet written) or when it commits (acks=all), with the batch's base offset and the
//! high watermark; or fails when the replica is not the leader or a new leader replaced
//! the entry. Membership changes, leader transfers, adding and removing groups and
//! status queries go through the same task, so they are ordered with everything else.
//!
//! Idle groups go quiet and stop ticking; liveness is then one beat per peer node per
//! tick (`quiesce.rs`), so a thousand idle partitions cost almost nothing.

use std::collections::HashMap;
use std::time::Duration;

use raft::eraftpb::{Message, MessageType};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, warn};

use crate::error::ReplicationError;
use crate::group::{
    FlushJob, Group, GroupStatus, Proposal, ProposalStatus, ProposeError, ELECTION_TICKS,
};
use crate::quiesce::{self, Incoming, Quiescence, NODE_GROUP};
use crate::transport::{Envelope, Transport};

mod command;
mod flush;
mod handle;
pub mod rpc;
use command::Command;
pub use handle::NodeHandle;

/// Commands queued to the node task before it pushes back.
pub const COMMAND_QUEUE: usize = 4096;
/// Events handled per turn before Readies are processed (bounds latency under load).
pub const EVENTS_PER_TURN: usize = 4096;

/// When a proposal resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Once the leader accepted it into its log (Kafka acks=0/1), with the offsets the
    /// append gives it: answered before the node's turn writes it, so not yet durable
    /// anywhere, and lost if the leader dies first or a new leader never received it.
    Leader,
    /// Once a quorum holds it durably (acks=all): it survives any minority of failures.
    Quorum,
    /// Once a quorum holds it durably, like [`Ack::Quorum`], but without hurrying the
    /// flush: a lone voter may hold its flush for up to [`LAZY_FLUSH_DELAY`] so that
    /// later appends share it (a proposer that only tracks the commit, such as an acks=1
    /// producer's partition recording where the batch went).
    Eventually,
}

/// How long a lone voter (a group with no other replica, whose own flush alone commits)
/// may hold appended entries before flushing them while nobody hurries: the flush then
/// covers every append of that interval, where acks=1 producers would otherwise cost
/// one `fdatasync` per turn. [`Ack::Quorum`] proposals, membership changes and
/// [`NodeHandle::hurry`] start the flush at once. Bounds how far the group's commit
/// trails its log end when nobody waits.
pub const LAZY_FLUSH_DELAY: Duration = Duration::from_millis(10);

/// What a resolved proposal reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub index: u64,
    /// The Kafka offset the log gave the batch's first record (for a membership change,
    /// the next offset at the time).
    pub base_offset: u64,
    /// The group's high watermark when the proposal resolved (with [`Ack::Leader`] it may
    /// still be below `base_offset`).
    pub high_watermark: u64,
}

type Reply = oneshot::Sender<Result<Committed, ProposeError>>;

/// What a broker needs to know of one of its groups at any moment: who leads, in which
/// term, and how far the group committed. Published by the node task after every turn
/// that touched the group ([`NodeHandle::watch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupView {
    /// The leader this replica knows (0: none).
    pub leader: u64,
    pub term: u64,
    /// Whether this replica is the leader.
    pub is_leader: bool,
    /// The high watermark: the Kafka offset after the last committed entry.
    pub committed_offset: u64,
    /// The last committed Raft index.
    pub committed_index: u64,
    /// Whether this replica is rejoining after its node lost its data (not voting yet).
    pub rejoining: bool,
}

impl GroupView {
    fn of(g: &Group) -> GroupView {
        let (leader, term) = g.leader();
        GroupView {
            leader,
            term,
            is_leader: g.is_leader(),
            committed_offset: g.committed_offset(),
            committed_index: g.committed_index(),
            rejoining: g.is_rejoining(),
        }
    }
}

/// The two answers of [`NodeHandle::propose_tracked`].
#[derive(Debug)]
pub struct Tracked {
    /// Where the entry went in the leader's log (Kafka offsets assigned).
    pub appended: Committed,
    /// Resolves when the entry commits, or fails when another leader replaced it.
    pub committed: oneshot::Receiver<Result<Committed, ProposeError>>,
}

/// Starts node `id`'s task over `groups` (keyed by group id). Messages from peers arrive
/// on `inbound` (from `transport::serve`); messages to peers leave through `transport`.
/// The task ends at `shutdown`, or with the error of a group's Ready that failed to
/// persist (fail-stop: a Ready cannot be retried, and retrying storage in silence would
/// leave a replica that acknowledges nothing; the owner stops the broker).
pub fn start(
    id: u64,
    groups: HashMap<u64, Group>,
    transport: Transport,
    inbound: mpsc::Receiver<Envelope>,
    tick: Duration,
    shutdown: watch::Receiver<bool>,
) -> (
    NodeHandle,
    tokio::task::JoinHandle<Result<(), ReplicationError>>,
) {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (published_alive, alive) = watch::channel(Vec::new());
    let (flushed_tx, flushed) = mpsc::unbounded_channel();
    let rpc = std::sync::Arc::new(rpc::Rpc::new(id, transport.clone()));
    let node = Node {
        id,
        groups,
        transport,
        rpc: rpc.clone(),
        alive: std::collections::HashSet::new(),
        published_alive,
        views: HashMap::new(),
        waiting: HashMap::new(),
        quiet: Quiescence::new(ELECTION_TICKS as u64),
        flushing: HashMap::new(),
        flush_tokens: 0,
        flushed_tx,
        lazy: HashMap::new(),
        hurried: std::collections::HashSet::new(),
    };
    let task = tokio::spawn(node.run(rx, inbound, flushed, tick, shutdown));
    (
        NodeHandle {
            commands: tx,
            alive,
            rpc,
        },
        task,
    )
}

enum Event {
    Tick,
    Command(Command),
    Message(Envelope),
    Flushed(Flushed),
    /// A lone voter's held flush is due ([`LAZY_FLUSH_DELAY`]).
    FlushDue,
}

/// A group's flush that ended on the blocking pool.
struct Flushed {
    group: u64,
    /// Which flush of the group (see `Node::flushing`).
    token: u64,
    job: FlushJob,
    result: Result<(), ReplicationError>,
}

/// The node task's state.
struct Node {
    id: u64,
    groups: HashMap<u64, Group>,
    transport: Transport,
    /// Calls between nodes: messages of `rpc::RPC_GROUP` go here.
    rpc: std::sync::Arc<rpc::Rpc>,
    /// Peer nodes alive at the last tick.
    alive: std::collections::HashSet<u64>,
    /// The same, ascending, for [`NodeHandle::is_alive`].
    published_alive: watch::Sender<Vec<u64>>,
    /// Published views of the groups someone watches.
    views: HashMap<u64, watch::Sender<GroupView>>,
    waiting: Waiting,
    quiet: Quiescence,
    /// The flush running for each group, by token: a group removed and added again
    /// while its old flush runs must not take that flush for its own.
    flushing: HashMap<u64, u64>,
    flush_tokens: u64,
    flushed_tx: mpsc::UnboundedSender<Flushed>,
    /// Lone voters holding their flush, with when it is due ([`LAZY_FLUSH_DELAY`]).
    lazy: HashMap<u64, tokio::time::Instant>,
    /// Groups whose next flush someone asked for now ([`NodeHandle::hurry`]).
    hurried: std::collections::HashSet<u64>,
}

/// `first` and the events already queued behind it (flushes first, then messages, then
/// commands), at most [`EVENTS_PER_TURN`] in all.
fn with_queued(
    first: Event,
    commands: &mut mpsc::Receiver<Command>,
    inbound: &mut mpsc::Receiver<Envelope>,
    flushed: &mut mpsc::UnboundedReceiver<Flushed>,
) -> Vec<Event> {
    let mut events = vec![first];
    while events.len() < EVENTS_PER_TURN {
        if let Ok(f) = flushed.try_recv() {
            events.push(Event::Flushed(f));
        } else if let Ok(m) = inbound.try_recv() {
            events.push(Event::Message(m));
        } else if let Ok(c) = commands.try_recv() {
            events.push(Event::Command(c));
        } else {
            break;
        }
    }
    events
}

impl Node {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut inbound: mpsc::Receiver<Envelope>,
        mut flushed: mpsc::UnboundedReceiver<Flushed>,
        tick: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ReplicationError> {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut outcome = Ok(());
        loop {
            let first = tokio::select! {
                _ = ticker.tick() => Event::Tick,
                Some(c) = commands.recv() => Event::Command(c),
                Some(m) = inbound.recv() => Event::Message(m),
                Some(f) = flushed.recv() => Event::Flushed(f),
                () = flush::due(self.lazy.values().min().copied()) => Event::FlushDue,
                _ = shutdown.changed() => break,
            };
            let events = with_queued(first, &mut commands, &mut inbound, &mut flushed);
            outcome = self.turn(events);
            if outcome.is_err() {
                break;
            }
        }
        for (_, list) in self.waiting.drain() {
            for (_, _, reply) in list {
                let _ = reply.send(Err(ProposeError::Dropped("the node stopped".into())));
            }
        }
        outcome?;
        // A clean stop leaves every group's state file with its applied index, so the
        // next start re-applies nothing.
        for (id, g) in &self.groups {
            if let Err(e) = g.save_commit() {
                tracing::warn!(group = id, error = %e, "saving the applied index at stop");
            }
        }
        Ok(())
    }

    /// One turn of the loop: handles `events`, then persists and sends what the groups
    /// they touched have ready, starts their flushes and publishes their views. Every
    /// event is handled even after a storage failure, which is returned at the end.
    fn turn(&mut self, events: Vec<Event>) -> Result<(), ReplicationError> {
        // Only groups an event touched can have something ready; with thousands of
        // idle groups, most turns touch a few.
        let mut touched: Vec<u64> = Vec::new();
        let mut failure = Ok(());
        for event in events {
            match event {
                Event::Tick => self.tick(&mut touched),
                Event::FlushDue => self.due_flushes(&mut touched),
                Event::Message(e) => self.message(e, &mut touched),
                Event::Flushed(f) => {
                    if let Err(e) = self.flushed(f, &mut touched) {
                        failure = Err(e);
                    }
                }
                Event::Command(c) => {
                    if let Some(g) = c.group() {
                        self.quiet.wake(g);
                        touched.push(g);
                    }
                    self.command(c);
                }
            }
        }
        failure?;
        touched.sort_unstable();
        touched.dedup();
        let mut ready = touched.clone();
        ready.retain(|id| self.groups.get(id).is_some_and(Group::has_ready));
        if !ready.is_empty() {
            // Persistence blocks this task, so let the runtime move other tasks
            // (transport, connections) off this thread meanwhile.
            tokio::task::block_in_place(|| self.readies(ready))?;
        }
        for &id in &touched {
            self.start_flush(id);
        }
        self.publish(&touched);
        Ok(())
    }

    /// One tick: a liveness beat to every peer; awake groups tick; idle leaders go
    /// quiet; quiet followers whose leader's node went silent wake.
    fn tick(&mut self, touched: &mut Vec<u64>) {
        self.quiet.tick();
        // Peers that came back since the last tick (restarted, or a network cut healed):
        // quiet leaders of groups they replicate wake to bring them up to date — the
        // returning replica may even believe it still leads an older term.
        let alive_now: std::collections::HashSet<u64> = self
            .transport
            .peers()
            .into_iter()
            .filter(|&p| self.quiet.alive(p))
            .collect();
        let revived: Vec<u64> = alive_now.difference(&self.alive).copied().collect();
        if alive_now != self.alive {
            let mut sorted: Vec<u64> = alive_now.iter().copied().collect();
            sorted.sort_unstable();
            self.published_alive.send_replace(sorted);
        }
        self.alive = alive_now;
        for peer in self.transport.peers() {
            let mut beat = Message::default();
            beat.set_msg_type(MessageType::MsgHeartbeat);
            beat.from = self.id;
            beat.to = peer;
            self.transport.send(NODE_GROUP, beat);
        }
        for (&id, g) in self.groups.iter_mut() {
            if let Err(e) = g.save_commit_if_stale(self.quiet.is_quiet(id)) {
                tracing::error!(group = id, error = %e, "saving the applied index");
            }
            if self.quiet.is_quiet(id) {
                let leader = g.leader().0;
                if g.is_leader() {
                    let keep_quiet = g.quorum_alive(|p| self.quiet.alive(p))
                        && !revived.iter().any(|&p| g.has_replica(p));
                    if keep_quiet {
                        continue;
                    }
                } else if leader != 0 && self.quiet.alive(leader) {
                    continue;
                }
                self.quiet.wake(id);
            } else if g.can_quiesce(|peer| self.quiet.alive(peer))
                && self.waiting.get(&id).is_none_or(|w| w.is_empty())
            {
                for m in g.quiesce_messages() {
                    self.transport.send(id, m);
                }
                self.quiet.quiet(id);
                continue;
            }
            g.tick();
            touched.push(id);
        }
    }

    fn message(&mut self, e: Envelope, touched: &mut Vec<u64>) {
        self.quiet.heard_from(e.message.from);
        if e.group == NODE_GROUP {
            return;
        }
        if e.group == rpc::RPC_GROUP {
            self.rpc.deliver(e.message);
            return;
        }
        let Some(g) = self.groups.get_mut(&e.group) else {
            // Normal for a moment whenever a group is created, moved or deleted: peers
            // apply the controller's records at slightly different times.
            debug!(
                group = e.group,
                "message for a group this node does not have"
            );
            return;
        };
        let mut message = e.message;
        let from = message.from;
        let incoming = quiesce::classify(&mut message);
        if incoming == Incoming::Wake {
            self.quiet.wake(e.group);
        }
        if let Err(err) = g.step(message) {
            if matches!(err, crate::ReplicationError::ImpossibleMessage { .. }) {
                self.transport
                    .stats()
                    .refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            warn!(group = e.group, error = %err, "raft message refused");
        }
        if incoming == Incoming::Quiesce && !g.is_leader() && g.leader().0 == from {
            self.quiet.quiet(e.group);
        }
        touched.push(e.group);
    }

    /// Publishes the views of the touched groups that someone watches.
    fn publish(&mut self, touched: &[u64]) {
        if self.views.is_empty() {
            return;
        }
        for id in touched {
            let (Some(tx), Some(g)) = (self.views.get(id), self.groups.get(id)) else {
                continue;
            };
            let view = GroupView::of(g);
            tx.send_if_modified(|v| {
                let changed = *v != view;
                *v = view;
                changed
            });
        }
    }

    /// Handles the Ready of each touched group; the first that fails to persist ends
    /// the node (see [`start`]).
    fn readies(&mut self, touched: Vec<u64>) -> Result<(), ReplicationError> {
        for id in touched {
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            match g.handle_ready_deferred() {
                Ok(out) => {
                    for m in out.messages {
                        send(&self.transport, id, m);
                    }
                }
                Err(e) => {
                    tracing::error!(group = id, error = %e, "a Raft group failed to persist; stopping the node");
                    return Err(e);
                }
            }
            resolve(id, g, &mut self.waiting);
        }
        Ok(())
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Watch { group, reply } => {
                let rx = self.groups.get(&group).map(|g| {
                    self.views
                        .entry(group)
                        .or_insert_with(|| watch::channel(GroupView::of(g)).0)
                        .subscribe()
                });
                let _ = reply.send(rx);
            }
            Command::Hurry { group } => {
                self.hurried.insert(group);
            }
            Command::RemoveGroup { group, reply } => {
                // Watchers see the sender go away: the group left this node.
                self.views.remove(&group);
                self.flushing.remove(&group);
                self.lazy.remove(&group);
                self.hurried.remove(&group);
                command(
                    &mut self.groups,
                    &mut self.waiting,
                    &self.quiet,
                    Command::RemoveGroup { group, reply },
                )
            }
            c => command(&mut self.groups, &mut self.waiting, &self.quiet, c),
        }
    }
}

fn send(transport: &Transport, group: u64, m: Message) {
    transport.send(group, m);
}

/// Proposals of each group waiting to resolve.
type Waiting = HashMap<u64, Vec<(Proposal, Ack, Reply)>>;

fn command(
    groups: &mut HashMap<u64, Group>,
    waiting: &mut Waiting,
    quiet: &Quiescence,
    c: Command,
) {
    let no_group = |group: u64| ProposeError::Dropped(format!("no group {group} on this node"));
    match c {
        Command::Propose {
            group,
            batch,
            ack,
            reply,
            then,
        } => match groups
            .get_mut(&group)
            .map(|g| (g.propose(batch), g.committed_offset()))
        {
            Some((Ok(p), high_watermark)) => {
                let list = waiting.entry(group).or_default();
                match ack {
                    // In the leader's log now, offsets known: answered before the turn
                    // writes it, so the proposer can send the next one into the same
                    // turn (one write and flush for all of them).
                    Ack::Leader => {
                        let _ = reply.send(Ok(Committed {
                            index: p.index,
                            base_offset: p.base_offset,
                            high_watermark,
                        }));
                    }
                    Ack::Quorum | Ack::Eventually => list.push((p, ack, reply)),
                }
                if let Some((then, ack)) = then {
                    list.push((p, ack, then));
                }
            }
            Some((Err(e), _)) => {
                let _ = reply.send(Err(e));
            }
            None => {
                let _ = reply.send(Err(no_group(group)));
            }
        },
        Command::Forward { group, data, reply } => {
            let result = match groups.get_mut(&group) {
                Some(g) => g.forward(data),
                None => Err(no_group(group)),
            };
            let _ = reply.send(result);
        }
        Command::Watch { reply, .. } => {
            let _ = reply.send(None);
        }
        Command::Hurry { .. } => {}
        Command::Campaign { group, reply } => {
            let result = match groups.get_mut(&group) {
                Some(g) => g
                    .campaign()
                    .map_err(|e| ProposeError::Dropped(e.to_string())),
                None => Err(no_group(group)),
            };
            let _ = reply.send(result);
        }
        Command::ChangeMembership {
            group,
            changes,
            reply,
        } => {
            let proposed = groups
                .get_mut(&group)
                .map(|g| g.change_membership(&changes));
            until_committed(waiting, group, proposed, reply);
        }
        Command::LogStart {
            group,
            offset,
            reply,
        } => {
            let proposed = groups.get_mut(&group).map(|g| g.propose_log_start(offset));
            until_committed(waiting, group, proposed, reply);
        }
        Command::Audit {
            group,
            entry,
            reply,
        } => {
            let proposed = groups.get_mut(&group).map(|g| g.propose_audit_entry(entry));
            until_committed(waiting, group, proposed, reply);
        }
        Command::TransferLeader { group, to, reply } => {
            let result = match groups.get_mut(&group) {
                Some(g) if g.is_leader() => {
                    g.transfer_leader(to);
                    Ok(())
                }
                Some(g) => Err(ProposeError::NotLeader {
                    leader: g.leader().0,
                }),
                None => Err(no_group(group)),
            };
            let _ = reply.send(result);
        }
        Command::AddGroup {
            group,
            replica,
            reply,
        } => {
            let result = match groups.entry(group) {
                std::collections::hash_map::Entry::Occupied(_) => Err(ProposeError::Dropped(
                    format!("group {group} already runs on this node"),
                )),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(*replica);
                    Ok(())
                }
            };
            let _ = reply.send(result);
        }
        Command::RemoveGroup { group, reply } => {
            for (_, _, r) in waiting.remove(&group).unwrap_or_default() {
                let _ = r.send(Err(ProposeError::Dropped(format!(
                    "group {group} was removed from this node"
                ))));
            }
            let _ = reply.send(groups.remove(&group));
        }
        Command::Status { reply } => {
            let mut all: Vec<GroupStatus> = groups
                .iter()
                .map(|(&id, g)| GroupStatus {
                    group: id,
                    quiesced: quiet.is_quiet(id),
                    ..g.status()
                })
                .collect();
            all.sort_unstable_by_key(|s| s.group);
            let _ = reply.send(all);
        }
    }
}

/// Answers `reply` when the proposal commits (or at once when it was refused, or the
/// node has no such group).
fn until_committed(
    waiting: &mut Waiting,
    group: u64,
    proposed: Option<Result<Proposal, ProposeError>>,
    reply: Reply,
) {
    match proposed {
        Some(Ok(p)) => waiting
            .entry(group)
            .or_default()
            .push((p, Ack::Quorum, reply)),
        Some(Err(e)) => {
            let _ = reply.send(Err(e));
        }
        None => {
            let _ = reply.send(Err(ProposeError::Dropped(format!(
                "no group {group} on this node"
            ))));
        }
    }
}

/// Answers the proposals of `group` that resolved: committed, or lost to another
/// leader's entry (acks=1 proposals are answered when proposed).
fn resolve(group: u64, g: &Group, waiting: &mut Waiting) {
    let Some(list) = waiting.get_mut(&group) else {
        return;
    };
    let mut still = Vec::with_capacity(list.len());
    for (p, ack, reply) in list.drain(..) {
        match g.proposal_status(p) {
            ProposalStatus::Pending => still.push((p, ack, reply)),
            ProposalStatus::Committed => {
                let _ = reply.send(Ok(Committed {
                    index: p.index,
                    base_offset: g.base_offset(p.index),
                    high_watermark: g.committed_offset(),
                }));
            }
            ProposalStatus::Lost => {
                let (leader, _) = g.leader();
                let _ = reply.send(Err(ProposeError::NotLeader { leader }));
            }
        }
    }
    *list = still;
}
