//! [`NodeHandle`]: what the rest of the broker holds to talk to a node task. Every call
//! is a command on the task's bounded queue; a stopped node answers as "stopped" (or
//! `None`), never hangs.

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use super::{Ack, Command, Committed, GroupView, Tracked};
use crate::group::{AuditEntry, Group, GroupStatus, MemberChange, ProposeError};

/// A handle to the node task. Cheap to clone.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    pub(super) commands: mpsc::Sender<Command>,
    /// The peer nodes heard from within an election timeout, as of the last tick.
    pub(super) alive: watch::Receiver<Vec<u64>>,
    /// Calls to and from peer nodes.
    pub(super) rpc: std::sync::Arc<super::rpc::Rpc>,
}

fn stopped() -> ProposeError {
    ProposeError::Dropped("the node has stopped".into())
}

impl NodeHandle {
    /// Calls between this node and its peers ([`super::rpc`]).
    pub fn rpc(&self) -> &std::sync::Arc<super::rpc::Rpc> {
        &self.rpc
    }

    /// Resolves once the node's task has ended (stopped, or failed) and dropped its
    /// groups: nothing writes to their logs any more.
    pub async fn stopped(&self) {
        self.commands.closed().await;
    }

    /// True once the node's task has ended (see [`NodeHandle::stopped`]).
    pub fn is_stopped(&self) -> bool {
        self.commands.is_closed()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Proposes a Kafka batch to `group`; resolves as `ack` says.
    pub async fn propose(
        &self,
        group: u64,
        batch: impl Into<Bytes>,
        ack: Ack,
    ) -> Result<Committed, ProposeError> {
        let batch = batch.into();
        self.ask(|reply| Command::Propose {
            group,
            batch,
            ack,
            reply,
            then: None,
        })
        .await
        .unwrap_or_else(|| Err(stopped()))
    }

    /// Proposes a Kafka batch and answers twice: once the leader appended it (its
    /// offsets are then known, [`Tracked::appended`]) and, through
    /// [`Tracked::committed`], once it commits or is lost to another leader. For a
    /// partition leader that must record where a batch went before it answers the next
    /// request, and answer acks=all producers only on commit. `commit` is
    /// [`Ack::Quorum`] when someone waits for that answer now (the flush starts at once)
    /// or [`Ack::Eventually`] when it only tracks it (a lone voter may hold the flush).
    pub async fn propose_tracked(
        &self,
        group: u64,
        batch: impl Into<Bytes>,
        commit: Ack,
    ) -> Result<Tracked, ProposeError> {
        let batch = batch.into();
        let (then, committed) = oneshot::channel();
        let appended = self
            .ask(|reply| Command::Propose {
                group,
                batch,
                ack: Ack::Leader,
                reply,
                then: Some((then, commit)),
            })
            .await
            .unwrap_or_else(|| Err(stopped()))?;
        Ok(Tracked {
            appended,
            committed,
        })
    }

    /// Hands `data` to `group`'s leader, wherever it is: proposed here on the leader,
    /// forwarded by raft-rs from a follower. Nothing reports whether it committed: for
    /// idempotent records whose effect the caller watches for and retries.
    pub async fn forward(&self, group: u64, data: impl Into<Bytes>) -> Result<(), ProposeError> {
        let data = data.into();
        self.ask(|reply| Command::Forward { group, data, reply })
            .await
            .unwrap_or_else(|| Err(stopped()))
    }

    /// Makes this node's replica of `group` stand for election now (a new group's
    /// preferred leader).
    pub async fn campaign(&self, group: u64) -> Result<(), ProposeError> {
        self.ask(|reply| Command::Campaign { group, reply })
            .await
            .unwrap_or_else(|| Err(stopped()))
    }

    /// A receiver of `group`'s [`GroupView`], updated after every turn that touched the
    /// group; `None` when the group does not run on this node.
    pub async fn watch(&self, group: u64) -> Option<watch::Receiver<GroupView>> {
        self.ask(|reply| Command::Watch { group, reply })
            .await
            .flatten()
    }

    /// Changes `group`'s membership (this node must lead it); resolves when the change
    /// commits. Several changes at once go through joint consensus, which raft-rs
    /// leaves by itself right after: wait for [`GroupStatus::joint`] to clear before the
    /// next change.
    pub async fn change_membership(
        &self,
        group: u64,
        changes: Vec<MemberChange>,
    ) -> Result<Committed, ProposeError> {
        self.ask(|reply| Command::ChangeMembership {
            group,
            changes,
            reply,
        })
        .await
        .unwrap_or_else(|| Err(stopped()))
    }

    /// Moves `group`'s log start to `offset` on every replica (a replicated
    /// DeleteRecords; this node must lead the group); resolves when the entry commits,
    /// by which time this replica applied it.
    pub async fn move_log_start(&self, group: u64, offset: u64) -> Result<Committed, ProposeError> {
        self.ask(|reply| Command::LogStart {
            group,
            offset,
            reply,
        })
        .await
        .unwrap_or_else(|| Err(stopped()))
    }

    /// Logs an audit log's tree head or seal in `group` (this node must lead the
    /// group); resolves when the entry commits.
    pub async fn log_audit_entry(
        &self,
        group: u64,
        entry: AuditEntry,
    ) -> Result<Committed, ProposeError> {
        self.ask(|reply| Command::Audit {
            group,
            entry,
            reply,
        })
        .await
        .unwrap_or_else(|| Err(stopped()))
    }

    /// Asks this node, leader of `group`, to hand leadership to `to`. Returns once the
    /// request is made; the transfer completes when `to` wins its election (watch
    /// [`NodeHandle::status`]).
    pub async fn transfer_leader(&self, group: u64, to: u64) -> Result<(), ProposeError> {
        self.ask(|reply| Command::TransferLeader { group, to, reply })
            .await
            .unwrap_or_else(|| Err(stopped()))
    }

    /// Starts driving another group's replica on this node (e.g. one opened with no
    /// voters, about to be added by a membership change).
    pub async fn add_group(&self, group: u64, replica: Group) -> Result<(), ProposeError> {
        self.ask(|reply| Command::AddGroup {
            group,
            replica: Box::new(replica),
            reply,
        })
        .await
        .unwrap_or_else(|| Err(stopped()))
    }

    /// Stops driving `group` here and hands its replica back (after the group removed
    /// this replica, or when the partition is deleted). Waiting proposals fail.
    pub async fn remove_group(&self, group: u64) -> Option<Group> {
        self.ask(|reply| Command::RemoveGroup { group, reply })
            .await
            .flatten()
    }

    /// Asks for `group`'s pending flush to start now instead of after
    /// [`LAZY_FLUSH_DELAY`](super::LAZY_FLUSH_DELAY) (someone waits for entries already
    /// appended to commit). Does not wait; when the node's queue is full the request is
    /// dropped and the flush comes within that delay anyway.
    pub fn hurry(&self, group: u64) {
        let _ = self.commands.try_send(Command::Hurry { group });
    }

    /// Whether this node heard from `peer` within an election timeout, as of its last
    /// tick (a replica on a peer it did not is "offline" in Metadata).
    pub fn is_alive(&self, peer: u64) -> bool {
        self.alive.borrow().binary_search(&peer).is_ok()
    }

    /// Every group's status as this node sees it, ordered by group id.
    pub async fn status(&self) -> Vec<GroupStatus> {
        self.ask(|reply| Command::Status { reply })
            .await
            .unwrap_or_default()
    }
}
