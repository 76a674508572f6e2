//! Sidecar files: read back only while they match the log (the anchor), whole (the
//! checksum), and with their segment (retention, truncation, open).

mod common;

use std::path::Path;

use log_store::{Anchor, Log, LogConfig, SidecarKind, StagedSidecar};

fn config() -> LogConfig {
    common::four_kib_segments()
}

/// Appends batches in `term` until the log has `segments` segments.
fn fill(log: &mut Log, term: u64, segments: usize) {
    let mut i = log.next_offset();
    while log.segment_count() < segments {
        let b = common::batch(i, 2, 300, 1_000 + i as i64);
        log.append_with_term(term, &b).unwrap();
        i += 1;
    }
}

/// Writes both sidecars of every closed segment, each body naming its kind and base.
fn write_all(log: &Log) -> usize {
    let mut written = 0;
    for seg in log.segments() {
        // The broker's two kinds (`.leaves` is tests/audit.rs's).
        for kind in [SidecarKind::TxnIndex, SidecarKind::Snapshot] {
            let Some(anchor) = log.sidecar_anchor(kind, seg.base_offset) else {
                continue;
            };
            let body = body(kind, seg.base_offset);
            let staged =
                StagedSidecar::write(log.dir(), kind, seg.base_offset, anchor, &body).unwrap();
            assert!(log.install_sidecar(staged).unwrap());
            written += 1;
        }
    }
    written
}

fn body(kind: SidecarKind, base: u64) -> Vec<u8> {
    format!("{}@{base}", kind.suffix()).into_bytes()
}

fn sidecar_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .to_string();
            name.ends_with(".txnindex") || name.ends_with(".snapshot")
        })
        .count()
}

#[test]
fn a_sidecar_reads_back_until_its_segment_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    fill(&mut log, 1, 4);
    let segs = log.segments();
    // Three closed segments with a .txnindex each; four with a .snapshot (the active
    // one included).
    assert_eq!(write_all(&log), 7);
    for seg in &segs {
        let want = (!seg.active).then(|| body(SidecarKind::TxnIndex, seg.base_offset));
        assert_eq!(
            log.read_sidecar(SidecarKind::TxnIndex, seg.base_offset),
            want
        );
        assert_eq!(
            log.read_sidecar(SidecarKind::Snapshot, seg.base_offset),
            Some(body(SidecarKind::Snapshot, seg.base_offset))
        );
    }

    // A new leader's term rewrites the log from inside the second segment: that
    // segment's .txnindex and every later sidecar stop matching; earlier ones still do.
    let second = &segs[1];
    let cut = second.base_raft_index + 2;
    log.truncate_from_raft_index(cut).unwrap();
    fill(&mut log, 2, 4);
    let now = log.segments();
    assert_eq!(now[1].base_offset, second.base_offset);
    assert_eq!(
        log.read_sidecar(SidecarKind::TxnIndex, segs[0].base_offset),
        Some(body(SidecarKind::TxnIndex, segs[0].base_offset))
    );
    assert_eq!(
        log.read_sidecar(SidecarKind::Snapshot, second.base_offset),
        Some(body(SidecarKind::Snapshot, second.base_offset)),
        "the state at the segment's start did not change"
    );
    assert_eq!(
        log.read_sidecar(SidecarKind::TxnIndex, second.base_offset),
        None
    );
    for seg in &now[2..] {
        for kind in SidecarKind::ALL {
            assert_eq!(
                log.read_sidecar(kind, seg.base_offset),
                None,
                "{kind:?} {seg:?}"
            );
        }
    }
}

#[test]
fn a_staged_sidecar_is_refused_when_the_log_moved_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    fill(&mut log, 1, 3);
    let seg = log.segments()[1].clone();
    let anchor = log
        .sidecar_anchor(SidecarKind::TxnIndex, seg.base_offset)
        .unwrap();
    let staged = StagedSidecar::write(
        log.dir(),
        SidecarKind::TxnIndex,
        seg.base_offset,
        anchor,
        b"x",
    )
    .unwrap();
    log.truncate_from_raft_index(seg.base_raft_index + 1)
        .unwrap();
    fill(&mut log, 2, 3);
    assert!(!log.install_sidecar(staged).unwrap());
    assert_eq!(sidecar_count(dir.path()), 0, "the staged file is gone too");
    let forged = Anchor {
        raft_index: anchor.raft_index,
        term: 1,
    };
    assert_ne!(
        log.sidecar_anchor(SidecarKind::TxnIndex, seg.base_offset),
        Some(forged)
    );
}

#[test]
fn a_damaged_sidecar_reads_as_absent() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    fill(&mut log, 1, 2);
    write_all(&log);
    let base = log.segments()[0].base_offset;
    let path = SidecarKind::TxnIndex.path(dir.path(), base);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(log.read_sidecar(SidecarKind::TxnIndex, base), None);
    std::fs::write(&path, &bytes[..10]).unwrap();
    assert_eq!(log.read_sidecar(SidecarKind::TxnIndex, base), None);
}

#[test]
fn sidecars_go_with_their_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    fill(&mut log, 1, 5);
    write_all(&log);
    assert_eq!(sidecar_count(dir.path()), 9);
    let segs = log.segments();
    // DeleteRecords past the first two segments: their four sidecars go with them.
    log.delete_before(segs[2].base_offset).unwrap();
    assert_eq!(sidecar_count(dir.path()), 5);
    assert!(log
        .read_sidecar(SidecarKind::Snapshot, segs[2].base_offset)
        .is_some());
    // A truncation removes the later segments' sidecars and the .txnindex of the
    // segment it reopens.
    log.truncate_from_raft_index(segs[3].base_raft_index + 1)
        .unwrap();
    assert_eq!(sidecar_count(dir.path()), 3);
    // A sidecar left without its segment (a crash midway through a removal) goes at
    // open, as does a staged one.
    drop(log);
    let orphan = SidecarKind::Snapshot.path(dir.path(), 1 << 40);
    std::fs::write(&orphan, b"left over").unwrap();
    let tmp = dir
        .path()
        .join(format!("{:020}.txnindex.tmp", segs[2].base_offset));
    std::fs::write(&tmp, b"half written").unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    assert!(!orphan.exists() && !tmp.exists());
    assert_eq!(sidecar_count(dir.path()), 3);
    assert!(log
        .read_sidecar(SidecarKind::TxnIndex, segs[2].base_offset)
        .is_some());
}
