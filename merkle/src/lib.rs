//! Merkle trees over a partition's batches, as RFC 9162 (Certificate Transparency 2.0)
//! defines them, for audit topics: the tree's leaves are the batches in offset order,
//! its root commits to every byte of every batch and to their order, and two proofs
//! let a client check the log without reading it:
//!
//! - an **inclusion proof** shows that a leaf is the `m`-th of a tree of size `n` with a
//!   given root ([`inclusion_proof`], checked by [`verify_inclusion`]);
//! - a **consistency proof** shows that the tree of size `m` is a prefix of the tree of
//!   size `n`: nothing before `m` was changed, removed or reordered since
//!   ([`consistency_proof`], checked by [`verify_consistency`]).
//!
//! Hashing is RFC 9162's, with SHA-256 and domain separation so that a leaf can never be
//! taken for an interior node: a leaf's hash is `SHA-256(0x00 || data)`, a node's
//! `SHA-256(0x01 || left || right)`, and the empty tree's root is `SHA-256()`. A tree of
//! `n > 1` leaves splits at `k`, the largest power of two below `n`: the left subtree
//! holds the first `k` leaves, the right one the rest.
//!
//! Proofs are built from the hashes of *complete* subtrees (`2^level` leaves starting at
//! a multiple of `2^level`), which a [`SubtreeHashes`] store answers, so a proof costs
//! O(log² n) lookups and hashes whatever the tree's size. [`MemoryTree`] keeps them in
//! memory; any store that keeps every complete subtree's hash works the same.

mod head;
mod memory;
mod proof;
mod verify;

use sha2::{Digest, Sha256};

pub use head::{verify_signature, HeadError, LoggedHead, TreeHead, HEAD_CONTEXT, SIGNATURE_BYTES};
pub use memory::MemoryTree;
pub use proof::{consistency_proof, inclusion_proof, root, SubtreeHashes, TreeError};
pub use verify::{verify_consistency, verify_inclusion, ProofError};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The hash of a leaf holding `data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    leaf_hash_parts(&[data])
}

/// The hash of a leaf holding the concatenation of `parts`.
pub fn leaf_hash_parts(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The hash of the interior node over `left` and `right`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// `bytes` (a hash, a signature) in lowercase hex, as proofs travel in JSON.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A hash from 64 hex digits (either case); `None` for anything else.
pub fn from_hex(text: &str) -> Option<Hash> {
    bytes_from_hex(text)?.try_into().ok()
}

/// Bytes (a key, a signature) from hex digits (either case); `None` for anything else.
pub fn bytes_from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests;
