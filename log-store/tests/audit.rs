//! An audit log's Merkle tree: one leaf per stored batch, the same after a reopen, cut
//! with a truncation, and its proofs check against its heads.

mod common;

use log_store::merkle::{self, verify_consistency, verify_inclusion, MemoryTree};
use log_store::{Log, LogConfig, LogError};

fn config() -> LogConfig {
    LogConfig {
        audit: true,
        retention_ms: None,
        ..common::four_kib_segments()
    }
}

fn append(log: &mut Log, term: u64, count: u64) {
    for i in 0..count {
        let b = common::batch(i, 1 + (i % 3) as usize, 200, 1_000 + i as i64);
        log.append_with_term(term, &b).unwrap();
    }
}

/// The tree of the log's stored batches, built here from what a reader gets.
fn tree_of_read(log: &Log) -> MemoryTree {
    let mut tree = MemoryTree::default();
    for (_, bytes) in common::read_all(log, 0) {
        tree.push(merkle::leaf_hash(&bytes));
    }
    tree
}

#[test]
fn the_tree_covers_every_stored_batch_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    append(&mut log, 1, 60);
    assert!(log.segment_count() > 3);
    let head = log.audit_head(u64::MAX).unwrap();
    let reference = tree_of_read(&log);
    assert_eq!(head.size, 60);
    assert_eq!(head.root, merkle::root(&reference, 60).unwrap());
    assert_eq!(Some(log.next_offset() - 1), head.last_offset);
    let committed = log.audit_head(log.next_offset() - 1).unwrap();
    assert_eq!(
        committed.size, 59,
        "the last batch is not wholly below the limit"
    );

    for offset in [0, 1, 17, log.next_offset() / 2, log.next_offset() - 1] {
        let p = log.audit_inclusion(offset, head.size).unwrap();
        assert!((p.base_offset..=p.last_offset).contains(&offset));
        verify_inclusion(&p.leaf_hash, p.leaf_index, p.tree_size, &p.path, &head.root).unwrap();
    }
    assert!(matches!(
        log.audit_inclusion(log.next_offset(), head.size),
        Err(LogError::AuditRange(_))
    ));

    drop(log); // an unclean stop: the tree is rebuilt from the segments
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(log.audit_head(u64::MAX).unwrap(), head);
    log.close().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(log.audit_head(u64::MAX).unwrap(), head);
}

#[test]
fn a_truncation_cuts_the_tree_and_later_heads_extend_the_kept_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    append(&mut log, 1, 40);
    let early = log.audit_head(u64::MAX).unwrap();
    append(&mut log, 1, 20);
    let p = log.audit_consistency(early.size, 60).unwrap();
    let later = log.audit_head(u64::MAX).unwrap();
    verify_consistency(early.size, later.size, &p, &early.root, &later.root).unwrap();

    // A new term replaces the last 20 batches with others.
    let cut = log
        .audit_inclusion(early.last_offset.unwrap() + 1, 60)
        .unwrap();
    log.truncate_from(cut.base_offset).unwrap();
    assert_eq!(log.audit_head(u64::MAX).unwrap(), early);
    append(&mut log, 2, 25);
    let rewritten = log.audit_head(u64::MAX).unwrap();
    assert_eq!(rewritten.size, 65);
    assert_eq!(
        rewritten.root,
        merkle::root(&tree_of_read(&log), 65).unwrap()
    );
    let p = log.audit_consistency(early.size, rewritten.size).unwrap();
    verify_consistency(early.size, rewritten.size, &p, &early.root, &rewritten.root).unwrap();
    // The replaced tail is not a prefix of the new tree.
    let p = log.audit_consistency(60, rewritten.size).unwrap();
    assert!(verify_consistency(60, rewritten.size, &p, &later.root, &rewritten.root).is_err());
}

#[test]
fn a_log_without_audit_keeps_no_tree() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), common::four_kib_segments()).unwrap();
    append(&mut log, 1, 3);
    assert!(matches!(
        log.audit_head(u64::MAX),
        Err(LogError::NoAuditTree(_))
    ));
    let mut audited = config();
    audited.retention_ms = None;
    log.set_config(audited).unwrap();
    assert_eq!(log.audit_head(u64::MAX).unwrap().size, 3);
}
