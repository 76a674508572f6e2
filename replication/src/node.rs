//! A broker's Raft node: every partition group this broker replicates, one tick driver,
//! the transport, and the proposal API.
//!
//! One task owns all groups. Each turn of its loop takes every event that is waiting —
//! ticks, messages from peers, proposals — then handles each group's Ready once: entries
//! that arrived for a group during the turn are appended together and made durable by
//! one flush of that group's log (group commit across proposals and peers' messages).
//! Groups keep separate log files, so "one fsync for many groups" is not possible
//! without a shared write-ahead log, which ARCHITECTURE.md rules out (the partition log
//! is the Raft log); each group's flush covers all of that group's appends of the turn.
//!
//! A proposal resolves when its entry commits (the caller's acks=all) with the Kafka
//! offset after it, or fails when the replica is not the leader or a new leader replaced
//! the entry.

use std::collections::HashMap;
use std::time::Duration;

use raft::eraftpb::Message;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::warn;

use crate::group::{Group, Proposal, ProposalStatus, ProposeError};
use crate::transport::{Envelope, Transport};

/// Commands queued to the node task before it pushes back.
pub const COMMAND_QUEUE: usize = 4096;
/// Events handled per turn before Readies are processed (bounds latency under load).
pub const EVENTS_PER_TURN: usize = 4096;

/// What a committed proposal reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub index: u64,
    /// The group's committed Kafka offset once this entry committed (its high watermark).
    pub high_watermark: u64,
}

type Reply = oneshot::Sender<Result<Committed, ProposeError>>;

enum Command {
    Propose {
        group: u64,
        batch: Vec<u8>,
        reply: Reply,
    },
}

/// A handle to the node task. Cheap to clone.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Propose { group, batch, .. } => {
                write!(f, "Propose(group {group}, {} bytes)", batch.len())
            }
        }
    }
}

impl NodeHandle {
    /// Proposes a Kafka batch to `group` and waits until it commits.
    pub async fn propose(&self, group: u64, batch: Vec<u8>) -> Result<Committed, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Propose {
                group,
                batch,
                reply,
            })
            .await
            .map_err(|_| ProposeError::Dropped("the node has stopped".into()))?;
        rx.await
            .map_err(|_| ProposeError::Dropped("the node has stopped".into()))?
    }
}

/// Starts the node task over `groups` (keyed by group id). Messages from peers arrive on
/// `inbound` (from `transport::serve`); messages to peers leave through `transport`.
pub fn start(
    groups: HashMap<u64, Group>,
    transport: Transport,
    inbound: mpsc::Receiver<Envelope>,
    tick: Duration,
    shutdown: watch::Receiver<bool>,
) -> (NodeHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let task = tokio::spawn(run(groups, transport, rx, inbound, tick, shutdown));
    (NodeHandle { commands: tx }, task)
}

enum Event {
    Tick,
    Command(Command),
    Message(Envelope),
}

async fn run(
    mut groups: HashMap<u64, Group>,
    transport: Transport,
    mut commands: mpsc::Receiver<Command>,
    mut inbound: mpsc::Receiver<Envelope>,
    tick: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut waiting: HashMap<u64, Vec<(Proposal, Reply)>> = HashMap::new();
    loop {
        let first = tokio::select! {
            _ = ticker.tick() => Event::Tick,
            Some(c) = commands.recv() => Event::Command(c),
            Some(m) = inbound.recv() => Event::Message(m),
            _ = shutdown.changed() => break,
        };
        let mut events = vec![first];
        while events.len() < EVENTS_PER_TURN {
            if let Ok(m) = inbound.try_recv() {
                events.push(Event::Message(m));
            } else if let Ok(c) = commands.try_recv() {
                events.push(Event::Command(c));
            } else {
                break;
            }
        }
        for event in events {
            match event {
                Event::Tick => groups.values_mut().for_each(Group::tick),
                Event::Message(e) => match groups.get_mut(&e.group) {
                    Some(g) => {
                        if let Err(err) = g.step(e.message) {
                            warn!(group = e.group, error = %err, "raft message refused");
                        }
                    }
                    None => warn!(
                        group = e.group,
                        "message for a group this node does not have"
                    ),
                },
                Event::Command(Command::Propose {
                    group,
                    batch,
                    reply,
                }) => match groups.get_mut(&group) {
                    Some(g) => match g.propose(batch) {
                        Ok(p) => waiting.entry(group).or_default().push((p, reply)),
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    },
                    None => {
                        let _ = reply.send(Err(ProposeError::Dropped(format!(
                            "no group {group} on this node"
                        ))));
                    }
                },
            }
        }
        // Readies: persistence blocks this task, so let the runtime move other tasks
        // (transport, connections) off this thread meanwhile.
        tokio::task::block_in_place(|| {
            for (&id, g) in groups.iter_mut() {
                match g.handle_ready() {
                    Ok(out) => {
                        for m in out.messages {
                            send(&transport, id, m);
                        }
                    }
                    Err(e) => warn!(group = id, error = %e, "ready failed"),
                }
                resolve(id, g, &mut waiting);
            }
        });
    }
    for (_, list) in waiting.drain() {
        for (_, reply) in list {
            let _ = reply.send(Err(ProposeError::Dropped("the node stopped".into())));
        }
    }
}

fn send(transport: &Transport, group: u64, m: Message) {
    transport.send(group, m);
}

/// Answers the proposals of `group` that committed or were lost.
fn resolve(group: u64, g: &Group, waiting: &mut HashMap<u64, Vec<(Proposal, Reply)>>) {
    let Some(list) = waiting.get_mut(&group) else {
        return;
    };
    let mut still = Vec::with_capacity(list.len());
    for (p, reply) in list.drain(..) {
        match g.proposal_status(p) {
            ProposalStatus::Pending => still.push((p, reply)),
            ProposalStatus::Committed => {
                let _ = reply.send(Ok(Committed {
                    index: p.index,
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
