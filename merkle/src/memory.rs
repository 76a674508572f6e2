//! A tree kept in memory: the hash of every complete subtree it still needs, level by
//! level.
//!
//! A tree can forget the leaves before a point `n` (they were sealed: exported, and
//! removed or about to be removed from the log) and still extend itself and prove every
//! leaf from `n` on, in every tree of at least `n` leaves. It keeps what those roots
//! and proofs use: the **frontier** of `n` (the complete subtrees RFC 9162's split
//! makes of the first `n` leaves, one per bit set in `n`) and every node from `n` on.
//! A sibling left of a leaf past `n` that lies wholly before `n` is always one of the
//! frontier's subtrees, so nothing else before `n` is ever asked for.

use super::{node_hash, proof::SubtreeHashes, Hash};

/// A tree kept in memory (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    /// `levels[l][i]`: the hash of leaves `(start_l + i)·2^l .. (start_l + i + 1)·2^l`.
    levels: Vec<Vec<Hash>>,
    /// `starts[l]`: the index of the first node held at level `l` (even, so that a
    /// node's sibling is held with it).
    starts: Vec<u64>,
}

/// The first node kept at `level` once the leaves before `n` are forgotten: the
/// frontier's node at that level when `n` has that bit, else the first node from `n`,
/// rounded down to even.
fn kept_from(n: u64, level: usize) -> u64 {
    n.checked_shr(level as u32).unwrap_or(0) & !1
}

impl MemoryTree {
    /// A tree of `size` leaves holding only the frontier of `size` (`frontier`: the
    /// hashes of its complete subtrees, largest first, as [`MemoryTree::frontier`]
    /// gives them). `None` when the count of hashes does not match `size`.
    pub fn from_frontier(size: u64, frontier: &[Hash]) -> Option<MemoryTree> {
        if frontier.len() != size.count_ones() as usize {
            return None;
        }
        let top = 64 - size.leading_zeros() as usize;
        let mut tree = MemoryTree {
            levels: vec![Vec::new(); top],
            starts: (0..top).map(|l| kept_from(size, l)).collect(),
        };
        let mut hashes = frontier.iter();
        for level in (0..top).rev() {
            if size >> level & 1 == 1 {
                tree.levels[level].push(*hashes.next()?);
            }
        }
        Some(tree)
    }

    /// The hashes of the complete subtrees that make up the first `size` leaves, largest
    /// first (`None` when the tree does not hold them: it is smaller, or forgot them).
    pub fn frontier(&self, size: u64) -> Option<Vec<Hash>> {
        let top = 64 - size.leading_zeros() as usize;
        (0..top)
            .rev()
            .filter(|&level| size >> level & 1 == 1)
            .map(|level| self.get(level, (size >> level) - 1))
            .collect()
    }

    /// Forgets the leaves before `n` and every node only they need (see the module
    /// documentation). The size, the roots of trees of at least `n` leaves and the
    /// proofs of leaves from `n` on are unchanged.
    pub fn forget_before(&mut self, n: u64) {
        let n = n.min(self.size());
        for (level, nodes) in self.levels.iter_mut().enumerate() {
            let start = &mut self.starts[level];
            let from = kept_from(n, level).max(*start);
            let drop = usize::try_from(from - *start).unwrap_or(usize::MAX);
            nodes.drain(..drop.min(nodes.len()));
            *start = from;
        }
    }

    /// The first leaf the tree still holds (0 unless it forgot some).
    pub fn first_held(&self) -> u64 {
        self.starts.first().copied().unwrap_or(0)
    }

    /// Leaves appended.
    pub fn size(&self) -> u64 {
        self.first_held() + self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Leaf `index`'s hash (`None` past the end, or forgotten).
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.get(0, index)
    }

    fn get(&self, level: usize, index: u64) -> Option<Hash> {
        let i = index.checked_sub(*self.starts.get(level)?)?;
        self.levels[level].get(usize::try_from(i).ok()?).copied()
    }

    /// Keeps the first `size` leaves (and the complete subtrees over them only). A tree
    /// cannot be cut below the leaves it forgot: a smaller `size` cuts at the first leaf
    /// held (callers never cut below the point they forgot before).
    pub fn truncate(&mut self, size: u64) {
        let size = size.max(self.first_held());
        for (level, nodes) in self.levels.iter_mut().enumerate() {
            let complete = size.checked_shr(level as u32).unwrap_or(0);
            let keep = complete.saturating_sub(self.starts[level]);
            nodes.truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        }
        while self.levels.last().is_some_and(Vec::is_empty) && self.starts.last() == Some(&0) {
            self.levels.pop();
            self.starts.pop();
        }
    }

    /// Appends a leaf by its hash, and every complete subtree it completes.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
                self.starts.push(0);
            }
            let nodes = &mut self.levels[level];
            nodes.push(hash);
            // `starts` are even, so the count held has the parity of the count at this
            // level: odd means the new node waits for its right sibling.
            if nodes.len() % 2 == 1 {
                return;
            }
            hash = node_hash(&nodes[nodes.len() - 2], &nodes[nodes.len() - 1]);
            level += 1;
        }
    }
}

impl SubtreeHashes for MemoryTree {
    type Error = std::convert::Infallible;

    fn subtree(&self, level: u32, index: u64) -> Result<Option<Hash>, Self::Error> {
        Ok(self.get(level as usize, index))
    }
}
