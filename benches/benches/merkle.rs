//! Criterion benchmarks of audit topics' Merkle trees (`log_store::merkle`):
//!
//! | bench | what one iteration does | limit |
//! |---|---|---|
//! | `merkle/inclusion_proof` | the inclusion proof of a random leaf in a tree of 655 360 leaves (a 10 GiB partition of 16 KiB batches) | < 1 ms |
//! | `merkle/consistency_proof` | the consistency proof between a random earlier size and the whole tree | < 1 ms |
//! | `merkle/verify_inclusion` | checking such an inclusion proof (what a client does per batch) | — |
//! | `merkle/leaf_hash_16KiB` | hashing one 16 KiB batch as a leaf (the cost an audit append adds) | — |
//!
//! The tree is kept in memory as the log keeps it (`MemoryTree`). Under `cargo test
//! --benches` it has 4 096 leaves and each routine runs once.
//!
//! Run: `cargo bench -j2 -p strata-benches --bench merkle`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use log_store::merkle::{self, MemoryTree};
use strata_benches::{Mode, SplitMix64};

/// Leaves of a 10 GiB partition of 16 KiB batches.
const FULL_LEAVES: u64 = 10 * (1 << 30) / (16 << 10);
const SMOKE_LEAVES: u64 = 4096;

fn tree(leaves: u64) -> MemoryTree {
    let mut t = MemoryTree::default();
    for i in 0..leaves {
        t.push(merkle::leaf_hash(&i.to_be_bytes()));
    }
    t
}

fn proofs(c: &mut Criterion) {
    let mode = Mode::from_args();
    let leaves = match mode {
        Mode::Full => FULL_LEAVES,
        Mode::Smoke => SMOKE_LEAVES,
    };
    let t = tree(leaves);
    let root = merkle::root(&t, leaves).expect("the whole tree");
    let mut rng = SplitMix64::new(7);
    let mut g = c.benchmark_group("merkle");
    g.bench_function("inclusion_proof", |b| {
        b.iter(|| merkle::inclusion_proof(&t, rng.below(leaves), black_box(leaves)))
    });
    g.bench_function("consistency_proof", |b| {
        b.iter(|| merkle::consistency_proof(&t, 1 + rng.below(leaves - 1), black_box(leaves)))
    });
    let index = leaves / 3;
    let proof = merkle::inclusion_proof(&t, index, leaves).expect("a leaf of the tree");
    let leaf = t.leaf(index).expect("a leaf of the tree");
    g.bench_function("verify_inclusion", |b| {
        b.iter(|| merkle::verify_inclusion(&leaf, index, leaves, black_box(&proof), &root))
    });
    let batch = vec![7u8; 16 << 10];
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("leaf_hash_16KiB", |b| {
        b.iter(|| merkle::leaf_hash(black_box(&batch)))
    });
    g.finish();
}

criterion_group!(benches, proofs);
criterion_main!(benches);
