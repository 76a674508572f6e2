//! Entry records rebuilt from the `.log`. A rebuildable table's data records are not
//! synced by a data-only flush, so a power loss may take any of them after the last
//! non-data record; recovery gives them back, numbered and termed exactly as appended.
//! What it must never do: number batches that followed a lost non-data entry, or bring
//! back bytes a truncation cut. Each test builds a one-segment log, stops it, applies the
//! worst loss the persist order allows at that point, and reopens it.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use log_store::failpoint;
use log_store::{EntryKind, Log, LogConfig};

const HEADER: u64 = 32;
const RECORD: u64 = 48;

use common::Appended as Entry;

fn config() -> LogConfig {
    LogConfig {
        segment_index_bytes: 16 * 1024,
        ..LogConfig::default()
    }
}

fn table(dir: &Path) -> PathBuf {
    dir.join(format!("{:020}.entries", 0))
}

fn append_data(log: &mut Log, out: &mut Vec<Entry>, term: u64, seed: u64) {
    let b = common::batch(seed, 1 + seed as usize % 3, 60, 1_000 + seed as i64);
    let info = log.append_with_term(term, &b).unwrap();
    out.push(Entry {
        raft_index: info.raft_index,
        term,
        kind: EntryKind::Data,
        bytes: common::as_stored(b, info.base_offset, term),
    });
}

fn append_meta(log: &mut Log, out: &mut Vec<Entry>, term: u64, kind: EntryKind) {
    let payload = format!("{kind:?}-{}", out.len()).into_bytes();
    let raft_index = log.append_meta(term, kind, &payload).unwrap();
    out.push(Entry {
        raft_index,
        term,
        kind,
        bytes: payload,
    });
}

/// Data at term 1, a no-op at term 2, data, a configuration change, then `tail` data
/// entries (terms 2 and 3) after it: everything flushed, the log dropped uncleanly.
fn build(dir: &Path, tail: u64) -> Vec<Entry> {
    let mut log = Log::open(dir, config()).unwrap();
    let mut out = Vec::new();
    for seed in 10..14 {
        append_data(&mut log, &mut out, 1, seed);
    }
    append_meta(&mut log, &mut out, 2, EntryKind::Noop);
    for seed in 20..23 {
        append_data(&mut log, &mut out, 2, seed);
    }
    append_meta(&mut log, &mut out, 2, EntryKind::ConfChangeV2);
    for seed in 30..30 + tail {
        let term = if seed < 30 + tail / 2 { 2 } else { 3 };
        append_data(&mut log, &mut out, term, seed);
    }
    log.flush().unwrap();
    assert_eq!(log.segment_count(), 1);
    out
}

/// The table slot of the last non-data entry.
fn last_meta_slot(entries: &[Entry]) -> u64 {
    let last = entries.iter().rev().find(|e| e.kind != EntryKind::Data);
    last.unwrap().raft_index - 1
}

/// A power loss that took the table's bytes from `at` on: cut (`zero` false) or left as
/// zeroed pages (`zero` true).
fn lose_table_from(dir: &Path, at: u64, zero: bool) {
    let path = table(dir);
    let mut bytes = fs::read(&path).unwrap();
    let at = (at as usize).min(bytes.len());
    if zero {
        bytes[at..].fill(0);
    } else {
        bytes.truncate(at);
    }
    fs::write(&path, bytes).unwrap();
}

/// Opens the log and checks it holds exactly `want`: Raft index, term, kind and bytes of
/// every entry, and the batches a reader gets.
fn open_exactly(dir: &Path, want: &[Entry]) -> Log {
    let log = Log::open(dir, config()).unwrap_or_else(|e| panic!("open failed: {e}"));
    assert_eq!(log.last_raft_index(), want.len() as u64);
    common::assert_holds(&log, want);
    log
}

/// The log takes the next append right after its entries.
fn takes_an_append(mut log: Log) {
    let (next, index) = (log.next_offset(), log.last_raft_index() + 1);
    let info = log
        .append_with_term(log.last_term(), &common::batch(99, 1, 10, 5))
        .unwrap();
    assert_eq!((info.base_offset, info.raft_index), (next, index));
}

/// Whether the table's header still has the rebuildable flag.
fn rebuildable(dir: &Path) -> bool {
    fs::read(table(dir)).unwrap()[6] & 1 == 1
}

#[test]
fn data_records_lost_after_the_last_non_data_entry_are_rebuilt() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    let entries = build(&src, 8);
    let first_lost = last_meta_slot(&entries) + 1;
    let end = HEADER + entries.len() as u64 * RECORD;
    let mut trial = 0;
    for at in (HEADER + first_lost * RECORD..=end).step_by(RECORD as usize / 3) {
        for zero in [false, true] {
            let dir = base.path().join(format!("trial-{trial}"));
            trial += 1;
            common::copy_dir(&src, &dir);
            lose_table_from(&dir, at, zero);
            let log = open_exactly(&dir, &entries);
            let whole = (at - HEADER) / RECORD;
            assert_eq!(
                log.open_report().rebuilt_entries as u64,
                entries.len() as u64 - whole,
                "table lost from byte {at} (zeroed: {zero})"
            );
            drop(log);
            // A second crash, before anything was synced again, changes nothing.
            lose_table_from(&dir, at, zero);
            takes_an_append(open_exactly(&dir, &entries));
            fs::remove_dir_all(&dir).unwrap();
        }
    }
}

/// Batches after a non-data entry whose record is gone (damage a crash cannot cause:
/// the record is synced before the append returns) cannot be numbered; the log ends
/// where the table's valid records end.
#[test]
fn batches_after_a_lost_non_data_record_are_not_rebuilt() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    let entries = build(&src, 4);
    let meta = last_meta_slot(&entries);
    for zero in [false, true] {
        let dir = base.path().join(format!("zero-{zero}"));
        common::copy_dir(&src, &dir);
        lose_table_from(&dir, HEADER + meta * RECORD, zero);
        let log = open_exactly(&dir, &entries[..meta as usize]);
        assert_eq!(log.open_report().rebuilt_entries, 0);
        takes_an_append(log);
    }
}

/// A crash inside a non-data append: before its payload is written (every record before
/// it was synced first), or after it was written but before the syncs (then its payload,
/// its record, both or neither may be lost). Every earlier entry survives, the data ones
/// whether or not their records did.
#[test]
fn a_crash_inside_a_non_data_append_keeps_every_earlier_entry() {
    let base = tempfile::tempdir().unwrap();
    for point in ["log.meta.before_write", "log.meta.before_sync"] {
        assert!(failpoint::SEGMENT_POINTS.contains(&point));
        let src = base.path().join(point);
        let mut entries = build(&src, 4);
        let mut log = Log::open(&src, config()).unwrap();
        append_data(&mut log, &mut entries, 3, 77);
        log.flush().unwrap();
        failpoint::arm(point, 0);
        assert!(log
            .append_meta(3, EntryKind::ConfChange, b"interrupted")
            .is_err());
        assert_eq!(failpoint::take_fired(), [point]);
        drop(log);
        let meta_slot = entries.len() as u64;
        let record_at = HEADER + meta_slot * RECORD;
        let entrydata = src.join(format!("{:020}.entrydata", 0));
        let payload_at = fs::metadata(&entrydata).unwrap().len() - b"interrupted".len() as u64;
        // (record lost, payload lost)
        for (lose_record, lose_payload) in [(true, false), (true, true), (false, true)] {
            let dir = base
                .path()
                .join(format!("{point}-{lose_record}-{lose_payload}"));
            common::copy_dir(&src, &dir);
            if lose_record {
                lose_table_from(&dir, record_at, false);
            }
            if lose_payload && point == "log.meta.before_sync" {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join(entrydata.file_name().unwrap()))
                    .unwrap();
                f.set_len(payload_at).unwrap();
            }
            takes_an_append(open_exactly(&dir, &entries));
        }
    }
}

/// `build(dir, 0)` reopened with three data entries of term 5 after it, flushed: the
/// log, every entry, and how many came before those three.
fn with_a_term_5_tail(dir: &Path) -> (Log, Vec<Entry>, usize) {
    let mut entries = build(dir, 0);
    let mut log = Log::open(dir, config()).unwrap();
    let keep = entries.len();
    for seed in [500, 501, 502] {
        append_data(&mut log, &mut entries, 5, seed);
    }
    log.flush().unwrap();
    (log, entries, keep)
}

/// A crash at either step of a truncation (its records synced; then its flag cleared)
/// leaves the log as it was.
#[test]
fn a_crash_inside_a_truncation_leaves_the_log_whole() {
    let base = tempfile::tempdir().unwrap();
    for point in ["log.truncate.before_flag", "log.truncate.before_cut"] {
        assert!(failpoint::SEGMENT_POINTS.contains(&point));
        let dir = base.path().join(point);
        let (mut log, entries, keep) = with_a_term_5_tail(&dir);
        let keep = keep as u64;
        failpoint::arm(point, 0);
        assert!(log.truncate_from_raft_index(keep + 1).is_err());
        assert_eq!(failpoint::take_fired(), [point]);
        drop(log);
        assert_eq!(rebuildable(&dir), point == "log.truncate.before_flag");
        takes_an_append(open_exactly(&dir, &entries));
    }
}

/// A truncation clears the rebuildable flag before it cuts: a replacing entry (here of a
/// lower term than the entries it replaced, as after a leader change) whose record a
/// power loss took is not rebuilt, and neither are the cut batches a reader kept in the
/// `.log` after it, though their offsets and terms would continue it.
#[test]
fn a_truncation_stops_rebuilds_before_it_cuts() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    let (mut log, mut entries, keep) = with_a_term_5_tail(&src);
    assert!(rebuildable(&src));
    // A reader holds the stale tail, so the `.log` keeps its bytes.
    let reader = log.read(0, 1 << 20).unwrap();
    let stale = entries.split_off(keep);
    log.truncate_from_raft_index(keep as u64 + 1).unwrap();
    // Same record count and size as the first stale batch, a lower term.
    append_data(&mut log, &mut entries, 4, 503);
    assert_eq!(entries[keep].bytes.len(), stale[0].bytes.len());
    drop(log);
    drop(reader);
    assert!(!rebuildable(&src));
    let dir = base.path().join("lost");
    common::copy_dir(&src, &dir);
    lose_table_from(&dir, HEADER + keep as u64 * RECORD, false);
    let log = open_exactly(&dir, &entries[..keep]);
    assert_eq!(log.open_report().rebuilt_entries, 0);
    takes_an_append(log);
    takes_an_append(open_exactly(&src, &entries));
}
