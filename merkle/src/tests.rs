//! RFC 9162 trees: the Certificate Transparency reference roots and proof, a naive
//! recursive reference for every size up to 130, and proofs that fail when anything
//! about them is changed.

use proptest::prelude::*;

use super::*;

/// CT's reference leaves (certificate-transparency's merkle tree tests).
const CT_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// CT's reference roots for the first 0..=8 leaves.
const CT_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hash(s: &str) -> Hash {
    unhex(s).try_into().unwrap()
}

fn tree_of(leaves: &[Hash]) -> MemoryTree {
    let mut t = MemoryTree::default();
    for l in leaves {
        t.push(*l);
    }
    t
}

/// RFC 9162's MTH, straight from its definition.
fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = n.next_power_of_two() / 2;
            node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
        }
    }
}

fn leaves(n: usize, seed: u8) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&[seed, i as u8, (i >> 8) as u8]))
        .collect()
}

#[test]
fn roots_match_the_ct_reference() {
    let leaves: Vec<Hash> = CT_LEAVES.iter().map(|l| leaf_hash(&unhex(l))).collect();
    let tree = tree_of(&leaves);
    for (size, want) in CT_ROOTS.iter().enumerate() {
        assert_eq!(root(&tree, size as u64).unwrap(), hash(want), "size {size}");
    }
    let proof = inclusion_proof(&tree, 0, 8).unwrap();
    let want = [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ];
    assert_eq!(proof, want.map(hash));
}

#[test]
fn every_proof_of_every_small_tree_verifies() {
    let all = leaves(130, 7);
    let tree = tree_of(&all);
    for n in 1..=all.len() {
        let size = n as u64;
        let r = root(&tree, size).unwrap();
        assert_eq!(r, reference_root(&all[..n]), "root of {n}");
        for m in 0..size {
            let proof = inclusion_proof(&tree, m, size).unwrap();
            assert!(proof.len() <= 64 - (size - 1).leading_zeros() as usize);
            verify_inclusion(&all[m as usize], m, size, &proof, &r).unwrap();
        }
        for m in 0..=size {
            let proof = consistency_proof(&tree, m, size).unwrap();
            let old = root(&tree, m).unwrap();
            verify_consistency(m, size, &proof, &old, &r).unwrap();
        }
    }
}

#[test]
fn a_truncated_tree_is_the_tree_of_its_prefix() {
    let all = leaves(77, 3);
    for keep in [0, 1, 2, 31, 32, 33, 64, 76] {
        let mut t = tree_of(&all);
        t.truncate(keep as u64);
        assert_eq!(t.size(), keep as u64);
        for l in &all[keep..] {
            t.push(*l);
        }
        for size in 0..=all.len() as u64 {
            assert_eq!(
                root(&t, size).unwrap(),
                reference_root(&all[..size as usize])
            );
        }
    }
}

#[test]
fn requests_outside_the_tree_are_refused() {
    let tree = tree_of(&leaves(5, 1));
    assert!(inclusion_proof(&tree, 5, 5).is_err());
    assert!(consistency_proof(&tree, 6, 5).is_err());
    assert!(matches!(
        root(&tree, 6),
        Err(proof::TreeError::Missing { .. })
    ));
    let r = root(&tree, 5).unwrap();
    assert_eq!(
        verify_inclusion(&r, 5, 5, &[], &r),
        Err(ProofError::LeafOutOfRange { index: 5, size: 5 })
    );
    assert_eq!(
        verify_consistency(0, 5, &[], &r, &r),
        Err(ProofError::RootMismatch),
        "only the empty tree has size 0"
    );
    assert!(verify_consistency(0, 5, &[], &empty_root(), &r).is_ok());
    assert_eq!(
        verify_consistency(6, 5, &[], &r, &r),
        Err(ProofError::SizesOutOfOrder {
            first: 6,
            second: 5
        })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any change to an inclusion proof, its leaf, index, size or root fails it.
    #[test]
    fn a_changed_inclusion_proof_fails(
        n in 1usize..300, m_frac in 0.0f64..1.0, flip in any::<(usize, u8)>(), seed in any::<u8>()
    ) {
        let all = leaves(n, seed);
        let tree = tree_of(&all);
        let size = n as u64;
        let m = ((m_frac * n as f64) as u64).min(size - 1);
        let r = root(&tree, size).unwrap();
        let proof = inclusion_proof(&tree, m, size).unwrap();
        let leaf = all[m as usize];
        prop_assert!(verify_inclusion(&leaf, m, size, &proof, &r).is_ok());
        let bit = 1u8 << (flip.1 % 8);
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let i = flip.0 % bad.len();
            bad[i][flip.0 % 32] ^= bit;
            prop_assert!(verify_inclusion(&leaf, m, size, &bad, &r).is_err());
            prop_assert!(verify_inclusion(&leaf, m, size, &proof[..proof.len() - 1], &r).is_err());
        }
        let mut longer = proof.clone();
        longer.push(leaf);
        prop_assert!(verify_inclusion(&leaf, m, size, &longer, &r).is_err());
        let mut other = leaf;
        other[flip.0 % 32] ^= bit;
        prop_assert!(verify_inclusion(&other, m, size, &proof, &r).is_err());
        if size > 1 {
            let wrong = (m + 1) % size;
            if all[wrong as usize] != leaf {
                prop_assert!(verify_inclusion(&leaf, wrong, size, &proof, &r).is_err());
            }
        }
    }

    /// A consistency proof holds for the sizes and roots it was made for only: a
    /// rewritten, dropped or swapped leaf below the old size fails it.
    #[test]
    fn a_rewritten_history_fails_consistency(
        n in 2usize..300, m_frac in 0.0f64..1.0, change in any::<(usize, u8)>(), seed in any::<u8>()
    ) {
        let all = leaves(n, seed);
        let tree = tree_of(&all);
        let size = n as u64;
        let m = ((m_frac * n as f64) as u64).clamp(1, size - 1);
        let old = root(&tree, m).unwrap();
        let new = root(&tree, size).unwrap();
        let proof = consistency_proof(&tree, m, size).unwrap();
        prop_assert!(verify_consistency(m, size, &proof, &old, &new).is_ok());
        // The log rewrites leaf i < m after publishing the old root.
        let i = change.0 % m as usize;
        let mut rewritten = all.clone();
        match change.1 % 3 {
            0 => rewritten[i][0] ^= 1,
            1 => { rewritten.remove(i); rewritten.push(leaf_hash(b"filler")); }
            _ => rewritten.swap(i, (i + 1) % n),
        }
        if rewritten[..m as usize] != all[..m as usize] {
            let forged = tree_of(&rewritten);
            let forged_root = root(&forged, size).unwrap();
            let forged_proof = consistency_proof(&forged, m, size).unwrap();
            prop_assert!(verify_consistency(m, size, &forged_proof, &old, &forged_root).is_err());
        }
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let j = change.0 % bad.len();
            bad[j][change.0 % 32] ^= 1;
            prop_assert!(verify_consistency(m, size, &bad, &old, &new).is_err());
        }
    }
}

#[test]
fn hashes_round_trip_through_hex() {
    let h = leaf_hash(b"x");
    assert_eq!(from_hex(&to_hex(&h)), Some(h));
    assert_eq!(from_hex(&to_hex(&h).to_uppercase()), Some(h));
    assert_eq!(from_hex(&to_hex(&h)[1..]), None);
    assert_eq!(from_hex(&"zz".repeat(32)), None);
    assert_eq!(from_hex(&"é".repeat(32)), None);
}

/// Every root, inclusion and consistency proof a forgetful tree still answers is the
/// full tree's; a tree rebuilt from a frontier answers the same.
fn assert_answers_as_full(full: &MemoryTree, part: &MemoryTree, n: u64, size: u64) {
    for m in n..=size {
        assert_eq!(root(part, m).unwrap(), root(full, m).unwrap(), "root {m}");
    }
    for m in [n, (n + size) / 2, size] {
        for leaf in n..m {
            assert_eq!(
                inclusion_proof(part, leaf, m).unwrap(),
                inclusion_proof(full, leaf, m).unwrap(),
                "leaf {leaf} of {m}"
            );
        }
        if n > 0 {
            assert_eq!(
                consistency_proof(part, n, m).unwrap(),
                consistency_proof(full, n, m).unwrap()
            );
        }
    }
}

#[test]
fn a_tree_that_forgot_a_prefix_still_proves_the_rest() {
    for size in 0..48u64 {
        let all = leaves(size as usize, 7);
        let full = tree_of(&all);
        for n in 0..=size {
            let mut part = full.clone();
            part.forget_before(n);
            assert_eq!(part.size(), size);
            assert_eq!(part.first_held(), n & !1);
            assert_answers_as_full(&full, &part, n, size);
            let mut rebuilt = MemoryTree::from_frontier(n, &full.frontier(n).unwrap()).unwrap();
            for l in &all[n as usize..] {
                rebuilt.push(*l);
            }
            assert_answers_as_full(&full, &rebuilt, n, size);
            // Truncating back to the forgotten point and growing again works too.
            part.truncate(n);
            assert_eq!(part.size(), n);
            for l in &all[n as usize..] {
                part.push(*l);
            }
            assert_answers_as_full(&full, &part, n, size);
        }
    }
}

#[test]
fn a_forgotten_leaf_cannot_be_proven() {
    let full = tree_of(&leaves(13, 1));
    let mut part = full.clone();
    part.forget_before(9);
    assert!(inclusion_proof(&part, 3, 13).is_err());
    assert!(root(&part, 5).is_err());
    assert!(part.frontier(5).is_none());
    assert_eq!(part.frontier(9), full.frontier(9));
    assert!(MemoryTree::from_frontier(9, &[[0; 32]]).is_none());
}
