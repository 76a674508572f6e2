//! Sealing the front of an audit log, so that it can be removed without losing the tree.
//!
//! An audit log is append-only: nothing is removed from it (DeleteRecords, retention)
//! until it is **sealed**. A seal (`EntryKind::AuditSeal`, logged through Raft once its
//! batches were exported) says that the first `tree_size` leaves, the batches before
//! `next_offset`, are archived elsewhere and may go. Every replica that appends it
//! checks it against its own tree, as a logged head (its root must be the root of its
//! own first `tree_size` leaves, and leaf `tree_size - 1` must end just before
//! `next_offset`), and then:
//!
//! 1. once the entry is durable (the next flush), writes the tree's **frontier** at the
//!    seal (the hashes of the complete subtrees that make up its first `tree_size`
//!    leaves: at most 64) to the file `audit.seal`, through `audit.seal.tmp`, fsynced and
//!    renamed (crash point `audit.seal.before_rename` before the rename), the directory
//!    synced;
//! 2. forgets the sealed leaves in memory (the frontier is all that later roots and
//!    proofs need of them);
//! 3. lets DeleteRecords and retention remove the segments that end at or before
//!    `next_offset`, never later ones. The log start never passes the seal in force: a
//!    DeleteRecords past it (applied by a follower whose own seal is not durable yet)
//!    is held, and carried out when a seal covers it.
//!
//! A crash before step 1 completes leaves the seal's entry in the log and the segments
//! untouched (nothing is removed before step 3): the next open finds the entry and seals
//! again. After step 1 the file stands for the removed prefix: an open builds the tree
//! from the frontier and the batches from `next_offset` on. A seal whose entry Raft
//! later takes back (it was appended but never committed) stays applied on the replicas
//! that applied it; it only ever covers committed batches, which the exporter read.
//!
//! The entry's payload, big-endian: "strata-audit-seal-v1" (20 bytes) | tree size u64 |
//! next offset u64 | root (32 bytes). The file's: "STAS" | version u16 | tree size u64 |
//! next offset u64 | root (32) | frontier count u8 | frontier hashes (32 each, largest
//! subtree first) | crc32 u32 of everything before it.

use std::path::Path;

use tracing::{info, warn};

use super::Log;
use crate::checkpoint::replace_file;
use crate::error::{LogError, Result};
use crate::merkle::{self, Hash, MemoryTree};

/// The seal file's name in the partition directory.
pub const SEAL_FILE: &str = "audit.seal";
const SEAL_TMP: &str = "audit.seal.tmp";
const ENTRY_MAGIC: &[u8; 20] = b"strata-audit-seal-v1";
const ENTRY_BYTES: usize = 20 + 8 + 8 + 32;
const FILE_MAGIC: &[u8; 4] = b"STAS";
const FILE_VERSION: u16 = 1;
const FILE_FIXED_BYTES: usize = 4 + 2 + 8 + 8 + 32 + 1;

/// A seal: the first `tree_size` leaves (the batches before `next_offset`) are archived,
/// and the tree of them has `root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditSeal {
    pub tree_size: u64,
    pub next_offset: u64,
    pub root: Hash,
}

impl AuditSeal {
    /// The payload of the seal's entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENTRY_BYTES);
        out.extend_from_slice(ENTRY_MAGIC);
        out.extend_from_slice(&self.tree_size.to_be_bytes());
        out.extend_from_slice(&self.next_offset.to_be_bytes());
        out.extend_from_slice(&self.root);
        out
    }

    /// The seal an entry's payload holds; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<AuditSeal> {
        if bytes.len() != ENTRY_BYTES || !bytes.starts_with(ENTRY_MAGIC) {
            return None;
        }
        let num = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
        Some(AuditSeal {
            tree_size: num(20),
            next_offset: num(28),
            root: bytes[36..].try_into().ok()?,
        })
    }
}

/// What `audit.seal` holds: the seal in force and the frontier of its leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealFile {
    pub seal: AuditSeal,
    pub frontier: Vec<Hash>,
}

impl SealFile {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FILE_FIXED_BYTES + 32 * self.frontier.len() + 4);
        out.extend_from_slice(FILE_MAGIC);
        out.extend_from_slice(&FILE_VERSION.to_be_bytes());
        out.extend_from_slice(&self.seal.tree_size.to_be_bytes());
        out.extend_from_slice(&self.seal.next_offset.to_be_bytes());
        out.extend_from_slice(&self.seal.root);
        // At most 64 hashes: one per bit of a u64.
        out.push(self.frontier.len() as u8);
        for h in &self.frontier {
            out.extend_from_slice(h);
        }
        out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> std::result::Result<SealFile, &'static str> {
        let body_len = bytes.len().checked_sub(4).ok_or("too short")?;
        let (body, crc) = bytes.split_at(body_len);
        if crc32fast::hash(body).to_be_bytes() != crc {
            return Err("its checksum does not match");
        }
        if body.len() < FILE_FIXED_BYTES || &body[..4] != FILE_MAGIC {
            return Err("not a seal file");
        }
        if body[4..6] != FILE_VERSION.to_be_bytes() {
            return Err("an unknown version");
        }
        let num = |at: usize| u64::from_be_bytes(body[at..at + 8].try_into().unwrap_or([0; 8]));
        let seal = AuditSeal {
            tree_size: num(6),
            next_offset: num(14),
            root: body[22..54].try_into().map_err(|_| "too short")?,
        };
        let count = body[54] as usize;
        let hashes = &body[FILE_FIXED_BYTES..];
        if hashes.len() != 32 * count {
            return Err("its frontier has the wrong length");
        }
        let frontier = hashes
            .chunks_exact(32)
            .map(|c| c.try_into().map_err(|_| "a short hash"))
            .collect::<std::result::Result<Vec<Hash>, _>>()?;
        let file = SealFile { seal, frontier };
        file.tree().ok_or("its frontier does not make its root")?;
        Ok(file)
    }

    /// The seal file of the partition directory `dir` (`None` when there is none); a
    /// file that does not check out is an error naming it.
    pub fn read(dir: &Path) -> Result<Option<SealFile>> {
        let path = dir.join(SEAL_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LogError::io(&path, e)),
        };
        SealFile::decode(&bytes)
            .map(Some)
            .map_err(|why| LogError::corrupt(&path, why))
    }

    /// The tree of the sealed leaves, holding their frontier only; `None` when the
    /// frontier does not make the seal's root.
    pub fn tree(&self) -> Option<MemoryTree> {
        let tree = MemoryTree::from_frontier(self.seal.tree_size, &self.frontier)?;
        (merkle::root(&tree, self.seal.tree_size).ok()? == self.seal.root).then_some(tree)
    }
}

/// The seal in force, and one logged but not yet durable.
#[derive(Debug, Default)]
pub(crate) struct SealState {
    applied: Option<AuditSeal>,
    /// The newest seal appended since, with its Raft index.
    pending: Option<(u64, AuditSeal)>,
    /// A log start a DeleteRecords asked for past the seal in force, to move to once a
    /// seal covers it.
    held_start: Option<u64>,
}

impl SealState {
    /// The state at open: the seal file's seal in force, nothing pending.
    pub(crate) fn applied(seal: Option<AuditSeal>) -> SealState {
        SealState {
            applied: seal,
            ..SealState::default()
        }
    }

    /// Remembers a log start asked for past the seal.
    pub(crate) fn hold_start(&mut self, offset: u64) {
        self.held_start = Some(self.held_start.map_or(offset, |o| o.max(offset)));
    }

    /// Forgets a pending seal at or after `raft_index` (a truncation).
    pub(crate) fn truncate_from(&mut self, raft_index: u64) {
        if self.pending.is_some_and(|(i, _)| i >= raft_index) {
            self.pending = None;
        }
    }
}

impl Log {
    /// The seal in force (see the module documentation), if any.
    pub fn audit_seal(&self) -> Option<AuditSeal> {
        self.audit_seal.applied
    }

    /// The offset before which segments may be removed: the seal's `next_offset` (0
    /// without a seal). Only meaningful for an audit log.
    pub fn audit_sealed_offset(&self) -> u64 {
        self.audit_seal.applied.map_or(0, |s| s.next_offset)
    }

    /// Records (and checks) the seal whose entry was just appended at `raft_index`, to be
    /// applied once durable. One this replica's tree disagrees with is a divergence and
    /// is never applied; a malformed one is skipped, as a malformed head.
    pub(super) fn note_audit_seal(&mut self, raft_index: u64, payload: &[u8]) {
        let Some(seal) = AuditSeal::decode(payload) else {
            warn!(dir = %self.dir.display(), raft_index, "malformed audit seal skipped");
            return;
        };
        let newest = self
            .audit_seal
            .pending
            .map(|(_, s)| s)
            .or(self.audit_seal.applied);
        if newest.is_some_and(|s| s.tree_size >= seal.tree_size)
            || !self.seal_agrees(raft_index, &seal)
        {
            return;
        }
        self.audit_seal.pending = Some((raft_index, seal));
        self.apply_durable_audit_seal();
    }

    /// Whether `seal` matches this replica's tree (no tree kept: nothing to compare
    /// with, and the seal stands).
    fn seal_agrees(&mut self, raft_index: u64, seal: &AuditSeal) -> bool {
        let Some(tree) = &self.audit else { return true };
        let own_root = tree.root(seal.tree_size);
        let ends = tree.next_offset_after(seal.tree_size);
        if own_root == Some(seal.root) && ends == Some(seal.next_offset) {
            return true;
        }
        if self.audit_divergence().is_none() {
            self.note_divergence(super::AuditDivergence {
                raft_index,
                tree_size: seal.tree_size,
                logged_root: Some(seal.root),
                own_root,
                changed_offset: None,
            });
        }
        false
    }

    /// Applies the pending seal when its entry is durable (after a flush): writes the
    /// seal file, then forgets the sealed leaves, then moves the log start to one a
    /// DeleteRecords asked for, as far as the seal allows. A failed write is retried at
    /// the next flush or retention pass; until then nothing more may be removed.
    pub(super) fn apply_durable_audit_seal(&mut self) {
        let Some((raft_index, seal)) = self.audit_seal.pending else {
            return;
        };
        if raft_index > self.flushed_raft_index {
            return;
        }
        match self.write_seal_file(&seal) {
            Ok(()) => {
                self.audit_seal.pending = None;
                self.audit_seal.applied = Some(seal);
                if let Some(tree) = &mut self.audit {
                    tree.forget_before(seal.tree_size, seal.next_offset);
                }
                info!(dir = %self.dir.display(), tree_size = seal.tree_size,
                    next_offset = seal.next_offset, "audit log sealed");
                if let Some(start) = self.audit_seal.held_start.take() {
                    if let Err(e) = self.delete_before(start) {
                        warn!(dir = %self.dir.display(), error = %e, "held log start not applied");
                    }
                }
            }
            Err(e) => {
                warn!(dir = %self.dir.display(), error = %e, "audit seal not written; retrying at the next flush")
            }
        }
    }

    /// Writes `audit.seal` for `seal` (crash order in the module documentation). A
    /// replica that keeps no tree has no frontier to write, and writes nothing.
    fn write_seal_file(&self, seal: &AuditSeal) -> Result<()> {
        let Some(tree) = &self.audit else {
            return Ok(());
        };
        let frontier = tree.frontier(seal.tree_size).ok_or_else(|| {
            LogError::AuditRange(format!("no frontier of {} leaves", seal.tree_size))
        })?;
        let file = SealFile {
            seal: *seal,
            frontier,
        };
        replace_file(
            &self.dir,
            SEAL_TMP,
            SEAL_FILE,
            &file.encode(),
            Some("audit.seal.before_rename"),
        )
    }
}
