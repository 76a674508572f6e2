//! The tree heads an audit log records (non-data entries, [`EntryKind::AuditHead`]) and
//! their check against this replica's own tree.
//!
//! A leader logs a head of its committed tree; the entry reaches every replica through
//! Raft after every batch the head covers, so each replica that appends it can compare
//! the head's root with the root of its own first `tree_size` leaves. Replicas store the
//! same bytes, so the roots agree unless some replica's batches were changed behind
//! Raft's back (a disk edited, a segment swapped): this one's, or the leader's that
//! signed the head. The first head that disagrees is kept as the log's
//! [`AuditDivergence`]; the broker finds out which side is wrong by asking the other
//! replicas for their roots. The same check runs over every logged head when the log
//! opens, so a log changed while the broker was stopped is caught before it serves.
//!
//! A malformed payload arriving through Raft (the leader's bug or a forged frame) is
//! skipped on every replica alike: it is appended, as Raft requires, but counts as no
//! head. One that does not read back at open (a bad checksum, bytes that do not
//! decode) was changed on this disk, and is a divergence. The check compares roots
//! only: signatures are for clients (`strata audit verify --public-key`).

use tracing::{error, warn};

use super::Log;
use crate::entries::EntryKind;
use crate::error::Result;
use crate::merkle::{self, Hash, LoggedHead};

/// A head recorded in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadMark {
    pub raft_index: u64,
    pub tree_size: u64,
    pub root: Hash,
    pub timestamp_ms: i64,
}

/// A logged head this replica's tree does not agree with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditDivergence {
    /// The head's entry.
    pub raft_index: u64,
    pub tree_size: u64,
    /// `None`: the head's entry did not read back (at open).
    pub logged_root: Option<Hash>,
    /// This replica's root of `tree_size` leaves; `None` when it holds fewer leaves.
    pub own_root: Option<Hash>,
    /// Set when no head is involved: the batch at this offset no longer hashes to the
    /// leaf recorded when it was appended (the scrub's finding, `audit_leaves.rs`).
    pub changed_offset: Option<u64>,
}

impl std::fmt::Display for AuditDivergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(offset) = self.changed_offset {
            return write!(
                f,
                "the batch at offset {offset} no longer hashes to the leaf recorded when it was appended: it was changed on this disk"
            );
        }
        let Some(logged) = self.logged_root else {
            let at = self.raft_index;
            return write!(f, "the head logged at raft index {at} does not read back");
        };
        let own = self.own_root.map_or_else(
            || "no such tree (fewer leaves)".into(),
            |r| merkle::to_hex(&r),
        );
        write!(
            f,
            "the head logged at raft index {} says the tree of {} leaves has root {}; \
             this replica's is {own}",
            self.raft_index,
            self.tree_size,
            merkle::to_hex(&logged)
        )
    }
}

/// The heads of an audit log, and the first one found wrong.
#[derive(Debug, Default)]
pub(crate) struct LoggedHeads {
    marks: Vec<HeadMark>,
    divergence: Option<AuditDivergence>,
}

impl LoggedHeads {
    /// Forgets the heads at or after `raft_index` (a truncation), and a divergence found
    /// there.
    pub(crate) fn truncate_from(&mut self, raft_index: u64) {
        self.marks.retain(|m| m.raft_index < raft_index);
        // A changed batch found by the scrub stays found: it names no entry.
        if self
            .divergence
            .is_some_and(|d| d.raft_index >= raft_index && d.changed_offset.is_none())
        {
            self.divergence = None;
        }
    }
}

impl Log {
    /// The heads this log records, in log order.
    pub fn audit_heads(&self) -> &[HeadMark] {
        &self.audit_heads.marks
    }

    /// The first logged head this replica's tree disagrees with, if any.
    pub fn audit_divergence(&self) -> Option<AuditDivergence> {
        self.audit_heads.divergence
    }

    /// The head logged at `raft_index`, as it was logged (with its signature).
    pub fn logged_head(&self, raft_index: u64) -> Result<LoggedHead> {
        let payload = self.entry_payload(raft_index)?;
        LoggedHead::decode(&payload)
            .map_err(|e| crate::LogError::AuditRange(format!("raft index {raft_index}: {e}")))
    }

    /// Records (and checks) the head whose entry was just appended at `raft_index`.
    pub(super) fn note_audit_head(&mut self, raft_index: u64, payload: &[u8]) {
        let logged = match LoggedHead::decode(payload) {
            Ok(l) => l,
            Err(e) => {
                warn!(dir = %self.dir.display(), raft_index, error = %e, "logged tree head skipped");
                return;
            }
        };
        let mark = HeadMark {
            raft_index,
            tree_size: logged.head.tree_size,
            root: logged.head.root,
            timestamp_ms: logged.head.timestamp_ms,
        };
        self.check_head(&mark);
        self.audit_heads.marks.push(mark);
    }

    /// Compares `mark` with this replica's tree (none kept: nothing to compare with).
    fn check_head(&mut self, mark: &HeadMark) {
        let Some(tree) = &self.audit else { return };
        if mark.tree_size < tree.sealed_leaves() {
            return; // checked before the seal; the export proves those leaves
        }
        let own_root = tree.root(mark.tree_size);
        if own_root == Some(mark.root) || self.audit_heads.divergence.is_some() {
            return;
        }
        self.note_divergence(AuditDivergence {
            raft_index: mark.raft_index,
            tree_size: mark.tree_size,
            logged_root: Some(mark.root),
            own_root,
            changed_offset: None,
        });
    }

    pub(super) fn note_divergence(&mut self, d: AuditDivergence) {
        error!(dir = %self.dir.display(), divergence = %d, "audit tree divergence");
        self.audit_heads.divergence = Some(d);
    }

    /// Collects and checks every head and seal the log records (at open, after the tree
    /// is built). Non-audit logs keep none.
    pub(super) fn collect_audit_heads(&mut self) -> Result<()> {
        self.audit_heads = LoggedHeads::default();
        if !self.config.audit {
            return Ok(());
        }
        for raft_index in self.first_raft_index()..=self.last_raft_index() {
            match self.entry(raft_index)?.kind {
                EntryKind::AuditHead => {}
                EntryKind::AuditSeal => {
                    match self.entry_payload(raft_index) {
                        Ok(payload) => self.note_audit_seal(raft_index, &payload),
                        // Changed on this disk, as an unreadable head below.
                        Err(_) if self.audit_heads.divergence.is_some() => {}
                        Err(_) => self.note_divergence(AuditDivergence {
                            raft_index,
                            tree_size: 0,
                            logged_root: None,
                            own_root: None,
                            changed_offset: None,
                        }),
                    }
                    continue;
                }
                _ => continue,
            }
            match self.entry_payload(raft_index) {
                Ok(payload) if LoggedHead::decode(&payload).is_ok() => {
                    self.note_audit_head(raft_index, &payload)
                }
                // Changed on this disk: the leader never logs a malformed head.
                _ if self.audit_heads.divergence.is_some() => {}
                _ => self.note_divergence(AuditDivergence {
                    raft_index,
                    tree_size: 0,
                    logged_root: None,
                    own_root: None,
                    changed_offset: None,
                }),
            }
        }
        Ok(())
    }
}
