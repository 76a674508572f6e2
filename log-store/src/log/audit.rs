//! An audit log's Merkle tree (`LogConfig::audit`): one leaf per batch, in offset order,
//! hashed from the batch's bytes as stored (RFC 9162, see [`crate::merkle`]). Every
//! replica stores the same bytes at the same offsets, so every replica's tree is the
//! same.
//!
//! The tree is kept in memory: built from the batches at open, extended by each append,
//! cut by a truncation. It covers the log from offset 0, so a log that starts later (a
//! replica restarted from a Raft snapshot) keeps none and says so.

use tracing::warn;

use super::Log;
use crate::batch::Batches;
use crate::error::{LogError, Result};
use crate::merkle::{self, Hash, MemoryTree};

/// Bytes read per step when building the tree at open.
const BUILD_READ_BYTES: usize = 1 << 20;

/// The tree and, per leaf, the offsets of its batch.
#[derive(Debug, Default)]
pub(crate) struct AuditTree {
    tree: MemoryTree,
    /// `(base offset, last offset)` of leaf i's batch.
    batches: Vec<(u64, u64)>,
}

impl AuditTree {
    /// Adds the batch stored as the concatenation of `parts` at `base..=last`.
    pub(crate) fn push(&mut self, parts: [&[u8]; 2], base: u64, last: u64) {
        self.tree.push(merkle::leaf_hash_parts(&parts));
        self.batches.push((base, last));
    }

    /// The root of the first `size` leaves (`None`: fewer leaves).
    pub(super) fn root(&self, size: u64) -> Option<Hash> {
        merkle::root(&self.tree, size).ok()
    }

    /// Drops the leaves of batches at or past `offset` (a truncation).
    pub(crate) fn truncate_from(&mut self, offset: u64) {
        let keep = self.batches.partition_point(|&(base, _)| base < offset);
        self.batches.truncate(keep);
        self.tree.truncate(keep as u64);
    }
}

/// The tree's head: its size, root and the last offset it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditHead {
    /// Leaves: batches from offset 0.
    pub size: u64,
    pub root: Hash,
    /// Last offset of the last leaf's batch (`None` for the empty tree).
    pub last_offset: Option<u64>,
}

/// The inclusion proof of the batch holding an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    pub base_offset: u64,
    pub last_offset: u64,
    pub leaf_hash: Hash,
    /// Sibling hashes from the leaf up (RFC 9162's inclusion path).
    pub path: Vec<Hash>,
}

impl Log {
    /// Builds the tree from the log's batches when the config asks for one (none
    /// otherwise, or when the log does not start at offset 0), then collects and checks
    /// the heads the log records.
    pub(super) fn build_audit_tree(&mut self) -> Result<()> {
        self.audit = self.tree_from_batches()?;
        self.collect_audit_heads()
    }

    fn tree_from_batches(&self) -> Result<Option<AuditTree>> {
        if !self.config.audit {
            return Ok(None);
        }
        if self.log_start_offset() != 0 {
            warn!(dir = %self.dir.display(), log_start = self.log_start_offset(),
                "audit log does not start at offset 0: no tree kept");
            return Ok(None);
        }
        let mut tree = AuditTree::default();
        let mut offset = 0;
        loop {
            let chunk = self.read(offset, BUILD_READ_BYTES)?;
            if chunk.is_empty() {
                break;
            }
            for item in Batches::new(chunk) {
                let (h, bytes) = item?;
                let (base, last) = (h.base_offset as u64, h.last_offset() as u64);
                tree.push([&bytes, &[]], base, last);
                offset = last + 1;
            }
        }
        Ok(Some(tree))
    }

    fn audit_tree(&self) -> Result<&AuditTree> {
        match &self.audit {
            Some(t) => Ok(t),
            None if !self.config.audit => Err(LogError::NoAuditTree("not an audit log")),
            None => Err(LogError::NoAuditTree(
                "this replica's log does not start at offset 0",
            )),
        }
    }

    /// The head of the tree of the batches wholly below `limit_offset` (the high
    /// watermark, for a head of committed batches only).
    pub fn audit_head(&self, limit_offset: u64) -> Result<AuditHead> {
        let t = self.audit_tree()?;
        let size = self.audit_size(limit_offset)?;
        let leaves = size as usize;
        Ok(AuditHead {
            size,
            root: merkle::root(&t.tree, size).map_err(range)?,
            last_offset: t.batches[..leaves].last().map(|&(_, last)| last),
        })
    }

    /// Leaves whose batches lie wholly below `limit_offset`.
    pub fn audit_size(&self, limit_offset: u64) -> Result<u64> {
        let t = self.audit_tree()?;
        Ok(t.batches.partition_point(|&(_, last)| last < limit_offset) as u64)
    }

    /// The root of the tree of the first `size` leaves.
    pub fn audit_root(&self, size: u64) -> Result<Hash> {
        merkle::root(&self.audit_tree()?.tree, size).map_err(range)
    }

    /// The inclusion proof of the batch holding `offset` in the tree of the first
    /// `tree_size` leaves.
    pub fn audit_inclusion(&self, offset: u64, tree_size: u64) -> Result<InclusionProof> {
        let t = self.audit_tree()?;
        let i = t.batches.partition_point(|&(_, last)| last < offset);
        let Some(&(base_offset, last_offset)) = t.batches.get(i).filter(|b| b.0 <= offset) else {
            return Err(LogError::AuditRange(format!(
                "no batch holds offset {offset}"
            )));
        };
        let leaf_index = i as u64;
        let path = merkle::inclusion_proof(&t.tree, leaf_index, tree_size).map_err(range)?;
        // Invariant: leaf i exists for every batch i listed.
        let leaf_hash = t.tree.leaf(leaf_index).expect("a leaf per batch");
        Ok(InclusionProof {
            leaf_index,
            tree_size,
            base_offset,
            last_offset,
            leaf_hash,
            path,
        })
    }

    /// The consistency proof between the trees of the first `first` and `second` leaves.
    pub fn audit_consistency(&self, first: u64, second: u64) -> Result<Vec<Hash>> {
        let t = self.audit_tree()?;
        if second > t.tree.size() {
            return Err(LogError::AuditRange(format!(
                "tree size {second} is past the tree's {}",
                t.tree.size()
            )));
        }
        merkle::consistency_proof(&t.tree, first, second).map_err(range)
    }
}

fn range(e: merkle::TreeError<std::convert::Infallible>) -> LogError {
    LogError::AuditRange(e.to_string())
}
