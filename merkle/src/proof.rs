//! Roots and proofs (RFC 9162, 2.1.1, 2.1.3.1 and 2.1.4.1) from a store of complete
//! subtree hashes.

use super::{empty_root, node_hash, Hash};

/// A store of a tree's complete subtree hashes: the hash of leaves
/// `index·2^level .. (index+1)·2^level`, `None` when the store does not hold it (the
/// tree is smaller, or the store lost it).
pub trait SubtreeHashes {
    type Error: std::error::Error + 'static;

    fn subtree(&self, level: u32, index: u64) -> Result<Option<Hash>, Self::Error>;
}

/// Why a root or proof could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TreeError<E: std::error::Error + 'static> {
    #[error("leaf {index} is not in a tree of {size} leaves")]
    LeafOutOfRange { index: u64, size: u64 },
    #[error("a tree of {first} leaves cannot be a prefix of one of {second}")]
    SizesOutOfOrder { first: u64, second: u64 },
    #[error("no hash stored for the {leaves} leaves from leaf {first}")]
    Missing { first: u64, leaves: u64 },
    #[error(transparent)]
    Store(E),
}

type TreeResult<T, S> = Result<T, TreeError<<S as SubtreeHashes>::Error>>;

/// The largest power of two below `n` (`n >= 2`): where a tree of `n` leaves splits.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The root of leaves `lo..hi` (`lo < hi`), as a tree of its own.
fn range_hash<S: SubtreeHashes>(store: &S, lo: u64, hi: u64) -> TreeResult<Hash, S> {
    let n = hi - lo;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        let level = n.trailing_zeros();
        return store
            .subtree(level, lo >> level)
            .map_err(TreeError::Store)?
            .ok_or(TreeError::Missing {
                first: lo,
                leaves: n,
            });
    }
    let k = split(n);
    Ok(node_hash(
        &range_hash(store, lo, lo + k)?,
        &range_hash(store, lo + k, hi)?,
    ))
}

/// The root of the tree of the first `size` leaves.
pub fn root<S: SubtreeHashes>(store: &S, size: u64) -> TreeResult<Hash, S> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(store, 0, size)
}

/// The inclusion proof of leaf `index` in the tree of the first `size` leaves: the
/// sibling hashes from the leaf up to the root.
pub fn inclusion_proof<S: SubtreeHashes>(
    store: &S,
    index: u64,
    size: u64,
) -> TreeResult<Vec<Hash>, S> {
    if index >= size {
        return Err(TreeError::LeafOutOfRange { index, size });
    }
    let mut proof = Vec::new();
    path(store, index, 0, size, &mut proof)?;
    Ok(proof)
}

/// RFC 9162's PATH(index, D[lo:hi]), appended to `out` deepest first.
fn path<S: SubtreeHashes>(
    store: &S,
    index: u64,
    lo: u64,
    hi: u64,
    out: &mut Vec<Hash>,
) -> TreeResult<(), S> {
    let n = hi - lo;
    if n == 1 {
        return Ok(());
    }
    let k = split(n);
    if index < lo + k {
        path(store, index, lo, lo + k, out)?;
        out.push(range_hash(store, lo + k, hi)?);
    } else {
        path(store, index, lo + k, hi, out)?;
        out.push(range_hash(store, lo, lo + k)?);
    }
    Ok(())
}

/// The consistency proof between the trees of the first `first` and the first `second`
/// leaves: empty when `first` is 0 or equals `second`.
pub fn consistency_proof<S: SubtreeHashes>(
    store: &S,
    first: u64,
    second: u64,
) -> TreeResult<Vec<Hash>, S> {
    if first > second {
        return Err(TreeError::SizesOutOfOrder { first, second });
    }
    let mut proof = Vec::new();
    if first > 0 && first < second {
        subproof(store, first, 0, second, true, &mut proof)?;
    }
    Ok(proof)
}

/// RFC 9162's SUBPROOF(m, D[lo:hi], complete), appended to `out`.
fn subproof<S: SubtreeHashes>(
    store: &S,
    m: u64,
    lo: u64,
    hi: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> TreeResult<(), S> {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push(range_hash(store, lo, hi)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(store, m, lo, lo + k, complete, out)?;
        out.push(range_hash(store, lo + k, hi)?);
    } else {
        subproof(store, m - k, lo + k, hi, false, out)?;
        out.push(range_hash(store, lo, lo + k)?);
    }
    Ok(())
}
