//! An audit log's Merkle tree: one leaf per stored batch, the same after a reopen, cut
//! with a truncation, and its proofs check against its heads.

mod common;

use std::sync::RwLock;

use bytes::Bytes;
use log_store::log::{scrub_audit_leaves, write_audit_leaves, AuditSeal, SEAL_FILE};
use log_store::merkle::{
    self, verify_consistency, verify_inclusion, LoggedHead, MemoryTree, TreeHead,
};
use log_store::SidecarKind;
use log_store::{failpoint, Cleaner, EntryKind, Log, LogConfig, LogError};
use strata_testkit::{encode_batch, Compression, RecordSpec, NO_PRODUCER};

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

/// Logs a seal of the leaves wholly below `limit` (with `root` in place of the tree's
/// when given), and returns it.
fn log_seal(log: &mut Log, limit: u64, root: Option<merkle::Hash>) -> AuditSeal {
    let h = log.audit_head(limit).unwrap();
    let seal = AuditSeal {
        tree_size: h.size,
        next_offset: h.last_offset.unwrap() + 1,
        root: root.unwrap_or(h.root),
    };
    log.append_meta(1, EntryKind::AuditSeal, &seal.encode())
        .unwrap();
    seal
}

/// Every proof of a batch from `from` on checks against `head`; sealed ones are refused.
fn assert_proves_from(log: &Log, from: u64, head: &log_store::log::AuditHead) {
    for offset in [
        from,
        from + 1,
        (from + log.next_offset()) / 2,
        log.next_offset() - 1,
    ] {
        let p = log.audit_inclusion(offset, head.size).unwrap();
        verify_inclusion(&p.leaf_hash, p.leaf_index, p.tree_size, &p.path, &head.root).unwrap();
    }
    if from > 0 {
        assert!(matches!(
            log.audit_inclusion(from - 1, head.size),
            Err(LogError::AuditRange(_))
        ));
    }
}

#[test]
fn a_seal_lets_retention_remove_the_sealed_segments_and_the_tree_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let removable = LogConfig {
        retention_bytes: Some(1),
        ..config()
    };
    let mut log = Log::open(dir.path(), removable.clone()).unwrap();
    append(&mut log, 1, 60);
    let early = log.audit_head(20).unwrap();
    log_head(&mut log, 1, None); // a head of the whole tree, checked again at each open
    let segments = log.segment_count();
    let head = log.audit_head(u64::MAX).unwrap();
    assert_eq!(
        log.apply_retention().unwrap().deleted_segments,
        0,
        "nothing sealed"
    );
    log.delete_before(50).unwrap();
    assert_eq!(
        log.segment_count(),
        segments,
        "DeleteRecords removes nothing unsealed"
    );
    assert_eq!(log.log_start_offset(), 0, "held until a seal covers it");

    let seal = log_seal(&mut log, 70, None);
    assert!(log.audit_seal().is_none(), "applied once durable");
    assert_eq!(log.delete_before(60).unwrap(), 0);
    log.flush().unwrap();
    assert_eq!(log.audit_seal(), Some(seal));
    assert_eq!(
        log.log_start_offset(),
        seal.next_offset.min(60),
        "the held start"
    );
    assert!(dir.path().join(SEAL_FILE).exists());
    assert_eq!(log.audit_head(u64::MAX).unwrap(), head);
    assert_proves_from(&log, seal.next_offset, &head);
    let p = log.audit_consistency(seal.tree_size, head.size).unwrap();
    verify_consistency(seal.tree_size, head.size, &p, &seal.root, &head.root).unwrap();
    assert!(
        log.audit_consistency(early.size, head.size).is_err(),
        "sealed sizes"
    );

    log.apply_retention().unwrap();
    assert!(log.segment_count() < segments);
    assert!(log.log_start_offset() <= seal.next_offset);
    assert!(log.log_start_offset() > 0);

    drop(log); // an unclean stop: the tree comes back from the seal file and the rest
    let mut log = Log::open(dir.path(), removable).unwrap();
    assert_eq!(log.audit_seal(), Some(seal));
    assert_eq!(log.audit_head(u64::MAX).unwrap(), head);
    assert_eq!(
        log.audit_divergence(),
        None,
        "heads below the seal are not rechecked"
    );
    assert_proves_from(&log, seal.next_offset, &head);
    append(&mut log, 1, 10);
    let later = log.audit_head(u64::MAX).unwrap();
    let p = log.audit_consistency(head.size, later.size).unwrap();
    verify_consistency(head.size, later.size, &p, &head.root, &later.root).unwrap();
    log_head(&mut log, 1, None);
    assert_eq!(log.audit_divergence(), None);
}

#[test]
fn a_seal_the_tree_disagrees_with_is_a_divergence_and_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    append(&mut log, 1, 40);
    let seal = log_seal(&mut log, 30, Some([7; 32]));
    log.flush().unwrap();
    assert_eq!(log.audit_seal(), None);
    let d = log.audit_divergence().unwrap();
    assert_eq!(
        (d.tree_size, d.logged_root),
        (seal.tree_size, Some([7; 32]))
    );
    assert!(!dir.path().join(SEAL_FILE).exists());
    log.delete_before(30).unwrap();
    assert_eq!(log.audit_sealed_offset(), 0);
    // A malformed seal is skipped, as a malformed head.
    log.append_meta(1, EntryKind::AuditSeal, b"junk").unwrap();
    log.flush().unwrap();
    assert_eq!(log.audit_seal(), None);
}

/// A crash before the seal's entry is flushed, and one before its file's rename: the
/// reopened log finds the entry and seals again.
#[test]
fn a_crash_at_each_step_of_a_seal_seals_at_the_next_open() {
    for point in [None, Some("audit.seal.before_rename")] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config()).unwrap();
        append(&mut log, 1, 40);
        log.flush().unwrap();
        let head = log.audit_head(u64::MAX).unwrap();
        let seal = log_seal(&mut log, 30, None);
        if let Some(point) = point {
            assert!(failpoint::AUDIT_POINTS.contains(&point));
            failpoint::arm(point, 0);
            log.flush().unwrap(); // the seal's write fails; the flush itself stands
            failpoint::disarm();
            assert_eq!(failpoint::take_fired(), vec![point]);
            assert_eq!(log.audit_seal(), None);
        }
        assert!(!dir.path().join(SEAL_FILE).exists());
        drop(log);
        let log = Log::open(dir.path(), config()).unwrap();
        assert_eq!(log.audit_seal(), Some(seal), "{point:?}");
        assert!(dir.path().join(SEAL_FILE).exists());
        assert_eq!(log.audit_head(u64::MAX).unwrap(), head);
        assert_proves_from(&log, seal.next_offset, &head);
    }
}

#[test]
fn a_damaged_seal_file_stops_the_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    append(&mut log, 1, 40);
    log_seal(&mut log, 30, None);
    log.flush().unwrap();
    drop(log);
    let path = dir.path().join(SEAL_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = Log::open(dir.path(), config()).unwrap_err().to_string();
    assert!(err.contains(SEAL_FILE), "{err}");
}

/// Closed segments' leaves are written beside them; an open takes them from there (a
/// batch changed on disk since is not seen at open), and the scrub, hashing the
/// segments again, finds the change. A damaged `.leaves` is ignored: the open hashes.
#[test]
fn leaves_sidecars_spare_the_open_and_the_scrub_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    append(&mut log, 1, 40);
    let head = log.audit_head(u64::MAX).unwrap();
    let segments = log.segments();
    let log = RwLock::new(log);
    assert_eq!(write_audit_leaves(&log).unwrap(), segments.len() - 1);
    assert_eq!(write_audit_leaves(&log).unwrap(), 0, "all written");
    let leaves = SidecarKind::Leaves.path(dir.path(), segments[1].base_offset);
    assert!(leaves.exists());
    log.into_inner().unwrap().close().unwrap();

    let log = RwLock::new(Log::open(dir.path(), config()).unwrap());
    assert_eq!(log.read().unwrap().audit_head(u64::MAX).unwrap(), head);
    assert!(scrub_audit_leaves(&log, usize::MAX).unwrap() > 0);
    assert_eq!(
        log.read().unwrap().audit_divergence(),
        None,
        "an untouched log"
    );
    log.into_inner().unwrap().close().unwrap();

    // The second segment's first batch changes: the open takes its recorded leaf.
    let mut bytes = std::fs::read(&segments[1].path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&segments[1].path, bytes).unwrap();
    let log = RwLock::new(Log::open(dir.path(), config()).unwrap());
    assert_eq!(log.read().unwrap().audit_head(u64::MAX).unwrap(), head);
    assert_eq!(log.read().unwrap().audit_divergence(), None);
    scrub_audit_leaves(&log, 1).unwrap();
    scrub_audit_leaves(&log, usize::MAX).unwrap();
    let d = log
        .read()
        .unwrap()
        .audit_divergence()
        .expect("the scrub finds it");
    assert_eq!(d.changed_offset, Some(segments[1].base_offset));
    assert!(d.to_string().contains("changed on this disk"), "{d}");
    log.into_inner().unwrap().close().unwrap();

    // A damaged sidecar reads as absent: the open hashes the (changed) batches.
    let mut body = std::fs::read(&leaves).unwrap();
    let last = body.len() - 1;
    body[last] ^= 1;
    std::fs::write(&leaves, body).unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    assert_ne!(log.audit_head(u64::MAX).unwrap().root, head.root);
}

/// A log of 40 batches in `dir`, its closed segments' `.leaves` written, closed; its
/// segments.
fn closed_with_leaves(dir: &std::path::Path) -> Vec<log_store::SegmentInfo> {
    let mut log = Log::open(dir, config()).unwrap();
    append(&mut log, 1, 40);
    let segments = log.segments();
    let log = RwLock::new(log);
    write_audit_leaves(&log).unwrap();
    log.into_inner().unwrap().close().unwrap();
    segments
}

/// A batch that no longer parses (its magic byte changed) behind its `.leaves` is found
/// by the scrub too.
#[test]
fn the_scrub_finds_a_batch_that_no_longer_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let segments = closed_with_leaves(dir.path());
    let mut bytes = std::fs::read(&segments[1].path).unwrap();
    bytes[16] = 0x7f; // the first batch's magic
    std::fs::write(&segments[1].path, bytes).unwrap();
    let log = RwLock::new(Log::open(dir.path(), config()).unwrap());
    assert_eq!(log.read().unwrap().audit_divergence(), None);
    scrub_audit_leaves(&log, usize::MAX).unwrap();
    let d = log.read().unwrap().audit_divergence().expect("found");
    assert_eq!(d.changed_offset, Some(segments[1].base_offset));
}

/// With `compact`, an audit log cleans nothing before a seal, then only the sealed
/// segments: every batch from the seal on stays as it was, proven by the same head,
/// through a reopen.
#[test]
fn compaction_rewrites_only_sealed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let compacting = LogConfig {
        compact: true,
        delete: false,
        min_cleanable_dirty_ratio: 0.0,
        ..config()
    };
    let mut log = Log::open(dir.path(), compacting.clone()).unwrap();
    for i in 0..120u64 {
        let spec = RecordSpec {
            key: Some(Bytes::from(format!("k{}", i % 3))),
            value: Some(Bytes::from(format!("value-{i}"))),
            timestamp_ms: 1_000,
        };
        let b = encode_batch([spec], NO_PRODUCER, Compression::None).to_vec();
        log.append_with_term(1, &b).unwrap();
    }
    log.roll().unwrap();
    let hw = log.next_offset();
    assert!(
        log.prepare_clean(hw, 10_000).unwrap().is_none(),
        "nothing sealed"
    );
    let head = log.audit_head(u64::MAX).unwrap();
    let first_end = log.segments()[0].next_offset;
    let seal = log_seal(&mut log, first_end, None);
    log.flush().unwrap();
    assert_eq!(seal.next_offset, first_end);
    let sealed_bytes = |log: &Log| -> usize {
        common::read_all(log, 0)
            .iter()
            .filter(|(o, _)| *o < first_end)
            .map(|(_, b)| b.len())
            .sum()
    };
    let before = sealed_bytes(&log);
    let job = log
        .prepare_clean(hw, 10_000)
        .unwrap()
        .expect("the sealed segment is due");
    let cleaned = job.run(&Cleaner::default()).unwrap();
    drop(job);
    assert!(log.complete_clean(cleaned).unwrap().applied);
    assert!(
        sealed_bytes(&log) < before,
        "the sealed segment was compacted"
    );
    assert_proves_from(&log, first_end, &head);
    drop(log);
    let log = Log::open(dir.path(), compacting).unwrap();
    assert_eq!(log.audit_head(u64::MAX).unwrap(), head);
    assert_eq!(log.audit_divergence(), None);
    assert_proves_from(&log, first_end, &head);
}

/// A log start moved inside a segment waiting for the scrub (a seal, then DeleteRecords
/// up to it), and a seal covering part of it: the scrub checks what is left, and finds
/// nothing wrong with an untouched log.
#[test]
fn the_scrub_starts_at_the_log_start_and_the_seal() {
    let dir = tempfile::tempdir().unwrap();
    let segments = closed_with_leaves(dir.path());
    let mut log = Log::open(dir.path(), config()).unwrap();
    let seal = log_seal(&mut log, segments[1].base_offset + 3, None);
    log.flush().unwrap();
    assert!(seal.next_offset > segments[1].base_offset);
    assert_eq!(
        log.delete_before(seal.next_offset).unwrap(),
        seal.next_offset
    );
    let log = RwLock::new(log);
    assert!(scrub_audit_leaves(&log, usize::MAX).unwrap() > 0);
    assert_eq!(log.read().unwrap().audit_divergence(), None);
}
