//! `file.delete.delay.ms`: segments removed by DeleteRecords, retention or a cleaning keep
//! their files as `*.deleted` until the delay has passed (by the log's clock), readers
//! keep their bytes, a log open removes leftover `*.deleted` files, and a crash at each
//! step of a deletion leaves a log holding exactly the records it should.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use log_store::failpoint;
use log_store::{Cleaner, Log, LogConfig, ManualClock};
use strata_testkit::{encode_batch, Compression, RecordSpec, NO_PRODUCER};

const T0_MS: i64 = 1_700_000_000_000;
const DELAY_MS: i64 = 60_000;
const TERM: u64 = 3;

fn config(file_delete_delay_ms: i64) -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        file_delete_delay_ms,
        ..LogConfig::default()
    }
}

/// Appended batches as stored, with their base offsets.
type Stored = Vec<(u64, Vec<u8>)>;

/// A log of several segments at `T0_MS` on a manual clock; returns it, the clock and the
/// batches as stored.
fn build(dir: &Path, delay_ms: i64) -> (Log, Arc<ManualClock>, Stored) {
    let clock = Arc::new(ManualClock::new(T0_MS));
    let mut log = Log::open_with_clock(dir, config(delay_ms), clock.clone()).unwrap();
    let mut appended = Vec::new();
    for i in 0..40u64 {
        let b = common::batch(i, 2, 150, T0_MS);
        let info = log.append_with_term(TERM, &b).unwrap();
        appended.push((
            info.base_offset,
            common::as_stored(b, info.base_offset, TERM),
        ));
    }
    assert!(log.segment_count() >= 4, "{} segments", log.segment_count());
    (log, clock, appended)
}

/// Files of `dir` whose name ends in `.deleted`, sorted.
fn deleted_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deleted"))
        .collect();
    v.sort();
    v
}

/// The names a segment's files get when deleted with a delay (it has no `.entrydata`).
fn deleted_names(base: u64) -> Vec<String> {
    let mut v: Vec<String> = ["entries", "index", "log", "timeindex"]
        .iter()
        .map(|s| format!("{base:020}.{s}.deleted"))
        .collect();
    v.sort();
    v
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The log holds exactly the batches of `appended` from its log start on, and knows the
/// term of the entry before its first.
fn assert_holds_from_start(log: &Log, appended: &[(u64, Vec<u8>)], start: u64) {
    assert_eq!(log.log_start_offset(), start);
    let want: Vec<&Vec<u8>> = appended
        .iter()
        .filter(|(base, _)| *base >= start)
        .map(|(_, b)| b)
        .collect();
    let got = common::read_all(log, start);
    assert_eq!(got.len(), want.len());
    for ((_, g), w) in got.iter().zip(want) {
        assert!(g[..] == w[..], "a batch differs");
    }
    assert_eq!(log.term_of(log.first_raft_index() - 1).unwrap(), TERM);
}

#[test]
fn deleted_segments_wait_out_the_delay_and_readers_keep_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, clock, appended) = build(dir.path(), DELAY_MS);
    let first = log.segments()[0].clone();
    let held: Bytes = log.read(0, 1 << 20).unwrap();
    let copy = held.to_vec();
    let second = log.segments()[1].base_offset;
    log.delete_before(second).unwrap();
    assert_eq!(names(&deleted_files(dir.path())), deleted_names(0));
    assert!(!first.path.exists());
    assert!(held[..] == copy[..]);
    // Retention passes before the delay leave the files; the one after removes them.
    clock.advance_ms(DELAY_MS - 1);
    log.apply_retention().unwrap();
    assert_eq!(deleted_files(dir.path()).len(), 4);
    clock.advance_ms(1);
    log.apply_retention().unwrap();
    assert!(deleted_files(dir.path()).is_empty());
    assert!(held[..] == copy[..], "a reader's bytes outlive the files");
    assert_holds_from_start(&log, &appended, second);
}

#[test]
fn retention_defers_and_a_later_deletion_removes_what_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, clock, _) = build(dir.path(), DELAY_MS);
    let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset).collect();
    log.set_config(LogConfig {
        retention_bytes: Some(log.size_bytes() - log.segments()[0].size_bytes),
        ..config(DELAY_MS)
    })
    .unwrap();
    assert_eq!(log.apply_retention().unwrap().deleted_segments, 1);
    assert_eq!(names(&deleted_files(dir.path())), deleted_names(bases[0]));
    // DeleteRecords after the delay removes the due files along with its own deletion's
    // renames, which wait.
    clock.advance_ms(DELAY_MS);
    log.delete_before(bases[2]).unwrap();
    assert_eq!(names(&deleted_files(dir.path())), deleted_names(bases[1]));
}

#[test]
fn no_delay_removes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, appended) = build(dir.path(), 0);
    let second = log.segments()[1].base_offset;
    log.delete_before(second).unwrap();
    assert!(deleted_files(dir.path()).is_empty());
    assert!(!dir.path().join(format!("{:020}.entries", 0)).exists());
    assert_holds_from_start(&log, &appended, second);
}

#[test]
fn deleted_files_left_by_a_stop_are_removed_at_open() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, appended) = build(dir.path(), DELAY_MS);
        let third = log.segments()[2].base_offset;
        log.delete_before(third).unwrap();
        assert_eq!(deleted_files(dir.path()).len(), 8);
        if clean {
            log.close().unwrap();
        } else {
            drop(log);
        }
        let log = Log::open(dir.path(), config(DELAY_MS)).unwrap();
        assert!(deleted_files(dir.path()).is_empty(), "clean {clean}");
        assert_holds_from_start(&log, &appended, third);
    }
}

/// A cleaning's swap keeps each replaced file as `*.deleted` until the delay passes.
#[test]
fn a_cleaning_keeps_the_replaced_files_until_the_delay_passes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let config = LogConfig {
        compact: true,
        delete: false,
        min_cleanable_dirty_ratio: 0.0,
        ..config(DELAY_MS)
    };
    let mut log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    for i in 0..60u64 {
        let value = format!("value-{i}");
        let spec = RecordSpec {
            key: Some(Bytes::from(format!("k{}", i % 5))),
            value: Some(Bytes::from(value)),
            timestamp_ms: T0_MS,
        };
        log.append(&encode_batch([spec], NO_PRODUCER, Compression::None))
            .unwrap();
    }
    log.roll().unwrap();
    let held = log.read(0, 1 << 20).unwrap();
    let copy = held.to_vec();
    let hw = log.next_offset();
    let job = log.prepare_clean(hw, T0_MS).unwrap().unwrap();
    let cleaned = job.run(&Cleaner::default()).unwrap();
    drop(job);
    let outcome = log.complete_clean(cleaned).unwrap();
    assert!(outcome.applied && outcome.segments_cleaned > 0);
    let deleted = deleted_files(dir.path());
    assert_eq!(deleted.len(), 4 * outcome.segments_cleaned, "{deleted:?}");
    clock.advance_ms(DELAY_MS);
    log.apply_retention().unwrap();
    assert!(deleted_files(dir.path()).is_empty());
    assert!(
        held[..] == copy[..],
        "a reader's bytes outlive the cleaning"
    );
}

/// Arms `point` (after `skip` hits), runs `f`, which must fail there, and checks it fired.
fn crash_at(point: &'static str, skip: u32, f: impl FnOnce() -> log_store::Result<u64>) {
    failpoint::arm(point, skip);
    let result = f();
    failpoint::disarm();
    assert!(result.is_err(), "{point} after {skip}: no crash");
    assert_eq!(failpoint::take_fired(), vec![point]);
}

/// Every step of a deletion, with and without a delay: DeleteRecords of two segments
/// stops at the point (the process dies), and the reopened log holds exactly the
/// records from the new log start, with no file of the deleted segments left.
#[test]
fn a_crash_at_each_step_of_a_deletion_leaves_the_records_it_should() {
    assert!(failpoint::POINTS.contains(&"log.delete.before_segments"));
    let steps = [
        ("log.delete.before_segments", 0),
        ("log.delete.before_table_rename", 0),
        ("log.delete.before_table_rename", 1),
        ("log.delete.before_purge", 0),
    ];
    for delay_ms in [0, DELAY_MS] {
        for (point, skip) in steps {
            assert!(
                failpoint::POINTS.contains(&point) || failpoint::DELETE_POINTS.contains(&point)
            );
            let dir = tempfile::tempdir().unwrap();
            let (mut log, clock, appended) = build(dir.path(), delay_ms);
            let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset).collect();
            let third = bases[2];
            if point == "log.delete.before_purge" && delay_ms > 0 {
                log.delete_before(third).unwrap();
                clock.advance_ms(delay_ms);
                crash_at(point, skip, || log.apply_retention().map(|_| 0));
            } else {
                crash_at(point, skip, || log.delete_before(third));
            }
            drop(log);
            let log = Log::open(dir.path(), config(delay_ms)).unwrap();
            let case = format!("{point} after {skip}, delay {delay_ms}");
            assert_eq!(log.segments()[0].base_offset, third, "{case}");
            assert_holds_from_start(&log, &appended, third);
            assert!(deleted_files(dir.path()).is_empty(), "{case}");
            for base in &bases[..2] {
                for suffix in ["log", "index", "timeindex", "entries"] {
                    let p = dir.path().join(format!("{base:020}.{suffix}"));
                    assert!(!p.exists(), "{case}: {} left", p.display());
                }
            }
        }
    }
}
