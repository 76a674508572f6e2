//! An audit log's Merkle tree (`LogConfig::audit`): one leaf per batch, in offset order,
//! hashed from the batch's bytes as stored (RFC 9162, see [`crate::merkle`]). Every
//! replica stores the same bytes at the same offsets, so every replica's tree is the
//! same.
//!
//! The tree is kept in memory: built from the batches at open, extended by each append,
//! cut by a truncation. It covers the log from offset 0, or from a seal
//! (`audit_seal.rs`: the sealed leaves are represented by their frontier), so a log that
//! starts later than both (a replica restarted from a Raft snapshot) keeps none and says
//! so.

use tracing::warn;

use super::audit_seal::{SealFile, SealState};
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
    /// The leaves before this one are sealed: the tree holds only their frontier.
    first_leaf: u64,
    /// The offset after the sealed leaves (0 without a seal).
    first_offset: u64,
    /// `(base offset, last offset)` of leaf `first_leaf + i`'s batch.
    batches: Vec<(u64, u64)>,
    /// Closed segments whose leaves came from their `.leaves` sidecar at open, by base
    /// offset: the scrub has yet to hash their batches (`audit_leaves.rs`).
    pub(super) unchecked: Vec<u64>,
}

impl AuditTree {
    /// The tree a seal file stands for: its leaves, sealed.
    fn sealed(file: &SealFile) -> Option<AuditTree> {
        Some(AuditTree {
            tree: file.tree()?,
            first_leaf: file.seal.tree_size,
            first_offset: file.seal.next_offset,
            batches: Vec::new(),
            unchecked: Vec::new(),
        })
    }

    /// Adds the leaf `hash` of the batch at `base..=last`.
    pub(super) fn push_hash(&mut self, hash: Hash, base: u64, last: u64) {
        self.tree.push(hash);
        self.batches.push((base, last));
    }

    /// The leaves of the batches from offset `from` to `to` (a segment's range): `None`
    /// unless the tree holds every one, from a batch starting at `from` to one ending
    /// just before `to`.
    pub(super) fn leaves_between(&self, from: u64, to: u64) -> Option<Vec<(u64, u64, Hash)>> {
        let i = self.batches.partition_point(|&(base, _)| base < from);
        let j = self.batches.partition_point(|&(base, _)| base < to);
        let held = &self.batches[i..j];
        let starts = held.first().map_or(from == to, |b| b.0 == from);
        let ends = held.last().map_or(from == to, |b| b.1 + 1 == to);
        if !starts || !ends || from < self.first_offset {
            return None;
        }
        held.iter()
            .enumerate()
            .map(|(k, &(base, last))| {
                let leaf = self.tree.leaf(self.first_leaf + (i + k) as u64)?;
                Some((base, last, leaf))
            })
            .collect()
    }

    /// The leaf of the batch starting at `base` (`None`: not held).
    pub(super) fn leaf_at(&self, base: u64) -> Option<Hash> {
        let i = self.batches.binary_search_by_key(&base, |b| b.0).ok()?;
        self.tree.leaf(self.first_leaf + i as u64)
    }

    /// Forgets the first `size` leaves (sealed), whose batches end before `next_offset`.
    pub(crate) fn forget_before(&mut self, size: u64, next_offset: u64) {
        if size <= self.first_leaf {
            return;
        }
        let drop = usize::try_from(size - self.first_leaf).unwrap_or(usize::MAX);
        self.batches.drain(..drop.min(self.batches.len()));
        self.tree.forget_before(size);
        self.first_leaf = size;
        self.first_offset = next_offset;
    }

    /// The offset after the first `size` leaves' batches (`None`: not held).
    pub(crate) fn next_offset_after(&self, size: u64) -> Option<u64> {
        if size == self.first_leaf {
            return Some(self.first_offset);
        }
        let i = usize::try_from(size.checked_sub(self.first_leaf + 1)?).ok()?;
        self.batches.get(i).map(|&(_, last)| last + 1)
    }

    /// Leaves whose batches lie wholly below `limit_offset`.
    fn size_below(&self, limit_offset: u64) -> u64 {
        self.first_leaf
            + self
                .batches
                .partition_point(|&(_, last)| last < limit_offset) as u64
    }

    /// Adds the batch stored as the concatenation of `parts` at `base..=last`.
    pub(crate) fn push(&mut self, parts: [&[u8]; 2], base: u64, last: u64) {
        self.push_hash(merkle::leaf_hash_parts(&parts), base, last);
    }

    /// The frontier of the first `size` leaves (`None`: not held).
    pub(super) fn frontier(&self, size: u64) -> Option<Vec<Hash>> {
        self.tree.frontier(size)
    }

    /// The offset the held leaves start at (after the seal; 0 without one).
    pub(super) fn first_offset(&self) -> u64 {
        self.first_offset
    }

    /// Leaves sealed: the tree holds only their frontier.
    pub(super) fn sealed_leaves(&self) -> u64 {
        self.first_leaf
    }

    /// The root of the first `size` leaves (`None`: fewer leaves, or sealed ones).
    pub(super) fn root(&self, size: u64) -> Option<Hash> {
        merkle::root(&self.tree, size).ok()
    }

    /// Drops the leaves of batches at or past `offset` (a truncation).
    pub(crate) fn truncate_from(&mut self, offset: u64) {
        let keep = self.batches.partition_point(|&(base, _)| base < offset);
        self.batches.truncate(keep);
        self.tree.truncate(self.first_leaf + keep as u64);
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
    /// Builds the tree from the seal file and the log's batches when the config asks for
    /// one (none otherwise, or when the log starts after both offset 0 and the seal),
    /// then collects and checks the heads and seals the log records.
    pub(super) fn build_audit_tree(&mut self) -> Result<()> {
        let file = match self.config.audit {
            true => self.seal_file()?,
            false => None,
        };
        self.audit_seal = SealState::applied(file.as_ref().map(|f| f.seal));
        self.audit = self.tree_from_batches(file.as_ref())?;
        self.collect_audit_heads()
    }

    /// The seal file, unless it is ahead of the log (its seal's entry was not durable
    /// yet, so the log still holds every batch it covers, and logs the seal again).
    fn seal_file(&self) -> Result<Option<SealFile>> {
        let Some(file) = SealFile::read(&self.dir)? else {
            return Ok(None);
        };
        if file.seal.next_offset > self.next_offset() {
            warn!(dir = %self.dir.display(), sealed = file.seal.next_offset,
                next_offset = self.next_offset(), "audit seal file past the log's end: ignored");
            return Ok(None);
        }
        Ok(Some(file))
    }

    fn tree_from_batches(&self, file: Option<&SealFile>) -> Result<Option<AuditTree>> {
        if !self.config.audit {
            return Ok(None);
        }
        // Invariant: `SealFile::read` only returns files whose frontier makes the root.
        let mut tree = file.map_or_else(AuditTree::default, |f| {
            AuditTree::sealed(f).expect("a checked seal file")
        });
        if self.log_start_offset() > tree.first_offset {
            warn!(dir = %self.dir.display(), log_start = self.log_start_offset(),
                sealed = tree.first_offset,
                "audit log starts after offset 0 and its seal: no tree kept");
            return Ok(None);
        }
        let mut offset = tree.first_offset;
        loop {
            // A closed segment's leaves from its sidecar, left for the scrub to check.
            if let Some((leaves, next)) = self.leaves_sidecar_at(offset) {
                for (base, last, hash) in leaves {
                    tree.push_hash(hash, base, last);
                }
                tree.unchecked.push(offset);
                offset = next;
                continue;
            }
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
        let size = t.size_below(limit_offset);
        Ok(AuditHead {
            size,
            root: merkle::root(&t.tree, size).map_err(range)?,
            last_offset: t.next_offset_after(size).and_then(|n| n.checked_sub(1)),
        })
    }

    /// Leaves whose batches lie wholly below `limit_offset`.
    pub fn audit_size(&self, limit_offset: u64) -> Result<u64> {
        Ok(self.audit_tree()?.size_below(limit_offset))
    }

    /// The root of the tree of the first `size` leaves.
    pub fn audit_root(&self, size: u64) -> Result<Hash> {
        let t = self.audit_tree()?;
        sealed_check(t, size)?;
        merkle::root(&t.tree, size).map_err(range)
    }

    /// The seal of the first `tree_size` leaves, as the leader logs it: their root, and
    /// the offset after them. Refused for sizes already sealed or past the tree.
    pub fn audit_seal_for(&self, tree_size: u64) -> Result<super::AuditSeal> {
        let t = self.audit_tree()?;
        if tree_size <= t.first_leaf {
            return Err(LogError::AuditRange(format!(
                "the first {} leaves are sealed already",
                t.first_leaf
            )));
        }
        let next_offset = t.next_offset_after(tree_size).ok_or_else(|| {
            LogError::AuditRange(format!(
                "tree size {tree_size} is past the tree's {}",
                t.tree.size()
            ))
        })?;
        Ok(super::AuditSeal {
            tree_size,
            next_offset,
            root: merkle::root(&t.tree, tree_size).map_err(range)?,
        })
    }

    /// The frontier of the first `size` leaves (the hashes of the complete subtrees
    /// that make them up, largest first), as an export starting there needs it.
    pub fn audit_frontier(&self, size: u64) -> Result<Vec<Hash>> {
        let t = self.audit_tree()?;
        t.frontier(size).ok_or_else(|| {
            LogError::AuditRange(format!(
                "no frontier of {size} leaves (the tree holds {} from leaf {})",
                t.tree.size() - t.first_leaf,
                t.first_leaf
            ))
        })
    }

    /// The inclusion proof of the batch holding `offset` in the tree of the first
    /// `tree_size` leaves.
    pub fn audit_inclusion(&self, offset: u64, tree_size: u64) -> Result<InclusionProof> {
        let t = self.audit_tree()?;
        if offset < t.first_offset {
            return Err(LogError::AuditRange(format!(
                "offset {offset} is sealed (before {}): its proof is in the export",
                t.first_offset
            )));
        }
        let i = t.batches.partition_point(|&(_, last)| last < offset);
        let Some(&(base_offset, last_offset)) = t.batches.get(i).filter(|b| b.0 <= offset) else {
            return Err(LogError::AuditRange(format!(
                "no batch holds offset {offset}"
            )));
        };
        let leaf_index = t.first_leaf + i as u64;
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
        sealed_check(t, first)?;
        if second > t.tree.size() {
            return Err(LogError::AuditRange(format!(
                "tree size {second} is past the tree's {}",
                t.tree.size()
            )));
        }
        merkle::consistency_proof(&t.tree, first, second).map_err(range)
    }
}

/// Refuses a tree size the seal made unanswerable (smaller than the sealed leaves).
fn sealed_check(t: &AuditTree, size: u64) -> Result<()> {
    if size < t.first_leaf {
        return Err(LogError::AuditRange(format!(
            "tree size {size} is below the {} sealed leaves",
            t.first_leaf
        )));
    }
    Ok(())
}

fn range(e: merkle::TreeError<std::convert::Infallible>) -> LogError {
    LogError::AuditRange(e.to_string())
}
