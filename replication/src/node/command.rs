//! What the node's handles ask its task ([`Command`]), one variant per request: the
//! group it is about, its arguments and where the answer goes.

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use super::{Ack, GroupView, Reply};
use crate::group::{AuditEntry, Group, GroupStatus, MemberChange, ProposeError};

pub(super) enum Command {
    Propose {
        group: u64,
        batch: Bytes,
        ack: Ack,
        reply: Reply,
        /// Also answer here when the entry commits, hurrying the flush or not
        /// ([`NodeHandle::propose_tracked`]).
        then: Option<(Reply, Ack)>,
    },
    Forward {
        group: u64,
        data: Bytes,
        reply: oneshot::Sender<Result<(), ProposeError>>,
    },
    Watch {
        group: u64,
        reply: oneshot::Sender<Option<watch::Receiver<GroupView>>>,
    },
    Campaign {
        group: u64,
        reply: oneshot::Sender<Result<(), ProposeError>>,
    },
    ChangeMembership {
        group: u64,
        changes: Vec<MemberChange>,
        reply: Reply,
    },
    LogStart {
        group: u64,
        offset: u64,
        reply: Reply,
    },
    Audit {
        group: u64,
        entry: AuditEntry,
        reply: Reply,
    },
    TransferLeader {
        group: u64,
        to: u64,
        reply: oneshot::Sender<Result<(), ProposeError>>,
    },
    AddGroup {
        group: u64,
        replica: Box<Group>,
        reply: oneshot::Sender<Result<(), ProposeError>>,
    },
    RemoveGroup {
        group: u64,
        reply: oneshot::Sender<Option<Group>>,
    },
    /// Start the group's pending flush now ([`NodeHandle::hurry`]).
    Hurry { group: u64 },
    Status {
        reply: oneshot::Sender<Vec<GroupStatus>>,
    },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Propose { group, batch, .. } => {
                write!(f, "Propose(group {group}, {} bytes)", batch.len())
            }
            Command::Forward { group, data, .. } => {
                write!(f, "Forward(group {group}, {} bytes)", data.len())
            }
            Command::Watch { group, .. } => write!(f, "Watch({group})"),
            Command::Campaign { group, .. } => write!(f, "Campaign({group})"),
            Command::ChangeMembership { group, changes, .. } => {
                write!(f, "ChangeMembership(group {group}, {changes:?})")
            }
            Command::LogStart { group, offset, .. } => {
                write!(f, "LogStart(group {group}, {offset})")
            }
            Command::Audit { group, .. } => write!(f, "Audit({group})"),
            Command::TransferLeader { group, to, .. } => {
                write!(f, "TransferLeader(group {group} to {to})")
            }
            Command::AddGroup { group, .. } => write!(f, "AddGroup({group})"),
            Command::RemoveGroup { group, .. } => write!(f, "RemoveGroup({group})"),
            Command::Hurry { group } => write!(f, "Hurry({group})"),
            Command::Status { .. } => write!(f, "Status"),
        }
    }
}

impl Command {
    /// The group a command is about.
    pub(super) fn group(&self) -> Option<u64> {
        match self {
            Command::Propose { group, .. }
            | Command::Forward { group, .. }
            | Command::Campaign { group, .. }
            | Command::ChangeMembership { group, .. }
            | Command::LogStart { group, .. }
            | Command::Audit { group, .. }
            | Command::TransferLeader { group, .. }
            | Command::AddGroup { group, .. }
            | Command::Hurry { group } => Some(*group),
            Command::RemoveGroup { .. } | Command::Status { .. } | Command::Watch { .. } => None,
        }
    }
}
