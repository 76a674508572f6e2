//! An audit log's Merkle tree: one leaf per stored batch, the same after a reopen, cut
//! with a truncation, and its proofs check against its heads.

mod common;

use log_store::merkle::{
    self, verify_consistency, verify_inclusion, LoggedHead, MemoryTree, TreeHead,
};
use log_store::{EntryKind, Log, LogConfig, LogError};

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

/// Logs the head of the log's whole tree, with `root` in place of its own when given.
fn log_head(log: &mut Log, term: u64, root: Option<merkle::Hash>) -> u64 {
    let own = log.audit_head(u64::MAX).unwrap();
    let logged = LoggedHead {
        head: TreeHead {
            topic: "trail".into(),
            partition: 0,
            tree_size: own.size,
            root: root.unwrap_or(own.root),
            last_offset: own.last_offset,
            timestamp_ms: 1_000,
        },
        signature: Some([5; 64]),
    };
    log.append_meta(term, EntryKind::AuditHead, &logged.encode())
        .unwrap()
}

#[test]
fn logged_heads_are_checked_against_the_tree_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    append(&mut log, 1, 30);
    let first = log_head(&mut log, 1, None);
    append(&mut log, 1, 5);
    log.append_meta(1, EntryKind::AuditHead, b"not a head")
        .unwrap();
    assert_eq!(log.audit_divergence(), None);
    assert_eq!(
        log.audit_heads().len(),
        1,
        "a malformed head counts as none"
    );
    assert_eq!(log.audit_heads()[0].raft_index, first);
    assert_eq!(log.audit_heads()[0].tree_size, 30);
    assert_eq!(log.logged_head(first).unwrap().signature, Some([5; 64]));

    let bad = log_head(&mut log, 1, Some([0; 32]));
    let d = log.audit_divergence().expect("the wrong root is caught");
    assert_eq!(
        (d.raft_index, d.tree_size, d.logged_root),
        (bad, 35, Some([0; 32]))
    );
    assert_eq!(d.own_root, Some(log.audit_head(u64::MAX).unwrap().root));
    assert!(d.to_string().contains("35 leaves"), "{d}");

    // A truncation takes the later heads with it, and the divergence found there.
    log.truncate_from_raft_index(first + 1).unwrap();
    assert_eq!(log.audit_heads().len(), 1);
    assert_eq!(log.audit_divergence(), None);
    drop(log);
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(log.audit_heads().len(), 1);
    assert_eq!(log.audit_divergence(), None, "what is left agrees");
}

#[test]
fn a_batch_changed_on_disk_is_caught_by_the_heads_when_the_log_opens() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    append(&mut log, 1, 30);
    let logged = log_head(&mut log, 1, None);
    append(&mut log, 1, 5);
    let first_segment = log.segments()[0].path.clone();
    log.close().unwrap();

    // A record value byte of the first batch, in a closed segment that a clean open
    // does not scan: only the tree sees it.
    let mut bytes = std::fs::read(&first_segment).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&first_segment, bytes).unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    let d = log
        .audit_divergence()
        .expect("the change is caught at open");
    assert_eq!((d.raft_index, d.tree_size), (logged, 30));
    assert_ne!(d.own_root, d.logged_root);
}

#[test]
fn the_heads_of_a_directory_read_offline_as_logged() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    append(&mut log, 1, 30);
    let first = log_head(&mut log, 1, None);
    append(&mut log, 1, 30);
    log.append_meta(1, EntryKind::AuditHead, b"not a head")
        .unwrap();
    let second = log_head(&mut log, 2, None);
    assert!(log.segment_count() > 3);
    let logged = [first, second].map(|i| log.logged_head(i).unwrap());
    drop(log); // as a copy of a running broker's directory would be

    let found = log_store::logged_heads::read_logged_heads(dir.path()).unwrap();
    assert_eq!(found.len(), 3);
    assert_eq!(
        (found[0].0, found[0].1.as_ref().unwrap()),
        (first, &logged[0])
    );
    assert!(found[1].1.is_err(), "the malformed head is reported");
    assert_eq!(
        (found[2].0, found[2].1.as_ref().unwrap()),
        (second, &logged[1])
    );
    assert_eq!(logged[1].head.tree_size, 60);
}

#[test]
fn a_logged_head_changed_on_disk_is_a_divergence_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    append(&mut log, 1, 5);
    let logged = log_head(&mut log, 1, None);
    log.close().unwrap();
    let data = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "entrydata"))
        .expect("the head's payload file");
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 70; // inside the head's root
    bytes[last] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    let d = log.audit_divergence().expect("the changed head is caught");
    assert_eq!((d.raft_index, d.logged_root), (logged, None));
    assert!(d.to_string().contains("does not read back"), "{d}");
}
