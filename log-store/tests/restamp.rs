//! `restamp_zero_terms`: a log written without terms (every entry term 0, as
//! `Log::append` writes on a fresh log) gets a term in every entry record, batch leader
//! epoch and the checkpoint's entry before the first, keeps every other byte, and opens
//! the same cleanly and after an unclean stop. A restamp stopped at each of its steps
//! and run again ends the same way.

mod common;

use std::fs;
use std::path::Path;

use bytes::Bytes;
use log_store::failpoint;
use log_store::{restamp_zero_terms, BatchHeader, Log, LogConfig};

const BATCHES: u64 = 60;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 512,
        segment_index_bytes: 16 * 1024,
        ..LogConfig::default()
    }
}

/// A term-0 log of several segments whose first segment was deleted (so the
/// checkpoint names a term-0 entry before the first), closed cleanly. Returns the
/// batches it holds, with base offset and leader epoch zeroed.
fn build(dir: &Path) -> Vec<(u64, Vec<u8>)> {
    let mut log = Log::open(dir, config()).unwrap();
    for i in 0..BATCHES {
        let b = common::batch(
            i,
            1 + (i as usize % 3),
            100 + (i as usize * 53) % 300,
            i as i64,
        );
        let info = log.append(&b).unwrap();
        assert_eq!(info.term, 0, "precondition: a log written without terms");
    }
    let second = log.segments()[1].base_offset;
    log.delete_before(second).unwrap();
    assert!(
        log.segments().len() >= 4,
        "precondition: several segments: {:?}",
        log.segments()
            .iter()
            .map(|s| (s.base_offset, s.size_bytes))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        log.prev_raft_entry().1,
        0,
        "precondition: a term-0 entry before"
    );
    assert!(
        log.prev_raft_entry().0 > 0,
        "precondition: the first segment is gone"
    );
    let held = stripped(&common::read_all(&log, log.log_start_offset()));
    log.close().unwrap();
    held
}

fn stripped(batches: &[(u64, Bytes)]) -> Vec<(u64, Vec<u8>)> {
    batches
        .iter()
        .map(|(o, b)| (*o, common::unpatched(b)))
        .collect()
}

/// Every entry has `term`, every batch carries it as its epoch, the entry before the
/// first has it too, and the batches are the ones built.
fn assert_restamped(log: &Log, term: u64, held: &[(u64, Vec<u8>)]) {
    for i in log.first_raft_index()..=log.last_raft_index() {
        assert_eq!(log.entry(i).unwrap().term, term, "raft entry {i}");
    }
    assert_eq!(log.prev_raft_entry().1, term);
    let read = common::read_all(log, log.log_start_offset());
    for (_, b) in &read {
        let h = BatchHeader::parse_validated(b).unwrap();
        assert_eq!(h.partition_leader_epoch, term as i32);
    }
    assert_eq!(stripped(&read), held);
}

/// Opens the restamped log cleanly, checks it, closes it; then opens it as after a
/// crash (no marker) and checks that recovery found nothing to cut.
fn assert_opens_restamped(dir: &Path, term: u64, held: &[(u64, Vec<u8>)]) {
    let log = Log::open(dir, config()).unwrap();
    assert!(log.open_report().clean);
    assert_restamped(&log, term, held);
    log.close().unwrap();
    fs::remove_file(dir.join(log_store::log::CLEAN_SHUTDOWN_FILE)).unwrap();
    let log = Log::open(dir, config()).unwrap();
    let report = log.open_report();
    assert!(!report.clean && report.recovered_segments > 0, "{report:?}");
    assert_eq!(report.truncated_bytes, 0, "{report:?}");
    assert_eq!(report.removed_segments, 0, "{report:?}");
    assert_restamped(&log, term, held);
}

#[test]
fn a_log_without_terms_gets_one_and_keeps_every_batch() {
    let dir = tempfile::tempdir().unwrap();
    let held = build(dir.path());
    let done = restamp_zero_terms(dir.path(), 1).unwrap();
    assert!(done.segments >= 3 && done.checkpoint, "{done:?}");
    assert!(done.entries as u64 >= held.len() as u64, "{done:?}");
    // Nothing left to do: a second run changes nothing.
    let again = restamp_zero_terms(dir.path(), 1).unwrap();
    assert_eq!(again, Default::default());
    assert_opens_restamped(dir.path(), 1, &held);
}

#[test]
fn a_restamp_stopped_at_any_step_finishes_when_run_again() {
    let built = tempfile::tempdir().unwrap();
    let held = build(built.path());
    let segments = fs::read_dir(built.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "entries")
        })
        .count() as u32;
    let mut trials = vec![("log.restamp.before_checkpoint", 0)];
    trials.extend((0..segments).map(|skip| ("log.restamp.before_table", skip)));
    // Every offline point of the restamp is among the trials.
    assert!(failpoint::OFFLINE_POINTS
        .iter()
        .filter(|p| p.starts_with("log.restamp."))
        .all(|p| trials.iter().any(|(t, _)| t == p)));
    for (point, skip) in trials {
        let dir = tempfile::tempdir().unwrap();
        common::copy_dir(built.path(), dir.path());
        failpoint::arm(point, skip);
        let stopped = restamp_zero_terms(dir.path(), 1);
        failpoint::disarm();
        assert_eq!(failpoint::take_fired(), vec![point], "{point} after {skip}");
        assert!(stopped.is_err(), "{point} after {skip}");
        assert!(
            dir.path()
                .join(log_store::log::CLEAN_SHUTDOWN_FILE)
                .exists(),
            "the marker stays while terms are mixed"
        );
        restamp_zero_terms(dir.path(), 1).unwrap();
        assert_opens_restamped(dir.path(), 1, &held);
    }
}

#[test]
fn a_log_not_closed_cleanly_or_a_zero_term_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    assert!(restamp_zero_terms(dir.path(), 0).is_err());
    fs::remove_file(dir.path().join(log_store::log::CLEAN_SHUTDOWN_FILE)).unwrap();
    let e = restamp_zero_terms(dir.path(), 1).unwrap_err();
    assert!(e.to_string().contains("not closed cleanly"), "{e}");
}
