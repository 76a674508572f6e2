//! Crash tests: a cleaning stopped before every step of its swaps (as if the process
//! died there) leaves a log that opens, verifies, keeps every latest value, and holds
//! each segment either wholly as it was or wholly cleaned. Damaged leftovers are
//! dropped or refused with a typed error, never a panic.

use super::*;
use crate::{EntryKind, Log};
use std::collections::BTreeMap;
use strata_testkit::{encode_batch, Compression, RecordSpec, NO_PRODUCER};

const NOW_MS: i64 = 1_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 3000,
        index_interval_bytes: 200,
        segment_index_bytes: 4096,
        compact: true,
        delete: false,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 0,
        ..LogConfig::default()
    }
}

/// A log of several segments: keyed updates (some compressed, some tombstones), a
/// non-data entry, a second term, and a cleaning already done so horizons exist.
/// Returns the latest value per key (`None`: deleted).
fn build(dir: &Path) -> (Log, BTreeMap<String, Option<Vec<u8>>>) {
    let mut log = Log::open(dir, config()).unwrap();
    let mut latest = BTreeMap::new();
    for i in 0..150u64 {
        if i == 70 {
            log.append_meta(2, EntryKind::Noop, b"leader").unwrap();
        }
        let key = format!("k{}", (i * 7) % 23);
        let value = (i % 11 != 5).then(|| format!("v{i}").into_bytes());
        latest.insert(key.clone(), value.clone());
        let codec = if i % 4 == 0 {
            Compression::Zstd
        } else {
            Compression::None
        };
        let spec = RecordSpec {
            key: Some(Bytes::from(key)),
            value: value.map(Bytes::from),
            timestamp_ms: NOW_MS,
        };
        let b = encode_batch([spec], NO_PRODUCER, codec).to_vec();
        log.append_with_term(if i < 70 { 1 } else { 2 }, &b)
            .unwrap();
        if i == 60 {
            log.roll().unwrap();
            let hw = log.next_offset();
            clean(&mut log, hw, NOW_MS);
        }
    }
    log.roll().unwrap();
    (log, latest)
}

fn clean(log: &mut Log, up_to: u64, now_ms: i64) {
    let job = log.prepare_clean(up_to, now_ms).unwrap().unwrap();
    let cleaned = job.run(&Cleaner::default()).unwrap();
    drop(job);
    assert!(log.complete_clean(cleaned).unwrap().applied);
}

/// Batches per segment, by base offset.
fn by_segment(log: &Log) -> BTreeMap<u64, Vec<Bytes>> {
    let mut out = BTreeMap::new();
    for s in log.segments() {
        let mut batches = Vec::new();
        let mut offset = s.base_offset;
        while offset < s.next_offset {
            let bytes = log.read(offset, 1).unwrap();
            let (h, b) = crate::Batches::new(bytes).next().unwrap().unwrap();
            offset = h.last_offset() as u64 + 1;
            batches.push(b);
        }
        out.insert(s.base_offset, batches);
    }
    out
}

fn latest_of(log: &Log) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for batches in by_segment(log).values() {
        for b in batches {
            let mut buf = b.clone();
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
            for r in set.records {
                let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                out.insert(key, r.value.map(|v| v.to_vec()));
            }
        }
    }
    out
}

/// Copies the files of a closed log (no subdirectories) to `to`.
fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// `*.deleted` files in `dir`.
fn deleted_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let path = e.as_ref().unwrap().path();
            path.extension()
                .is_some_and(|x| x == segment::DELETED_SUFFIX)
        })
        .count()
}

#[test]
fn a_crash_at_any_step_of_the_swap_keeps_a_valid_log() {
    // Without a delete delay the swap moves files over the old ones; with one it renames
    // each old file `*.deleted` first (one more step per file).
    for delay_ms in [0, crate::config::DEFAULT_FILE_DELETE_DELAY_MS] {
        let config = LogConfig {
            file_delete_delay_ms: delay_ms,
            ..config()
        };
        crash_at_every_swap_step(&config);
    }
}

fn crash_at_every_swap_step(config: &LogConfig) {
    let template = tempfile::tempdir().unwrap();
    let (log, latest) = build(template.path());
    let original = by_segment(&log);
    assert!(original.len() >= 4, "{} segments", original.len());
    let hw = log.next_offset();
    log.close().unwrap();
    // The fully cleaned result, for comparison.
    let full_dir = tempfile::tempdir().unwrap();
    copy_dir(template.path(), full_dir.path());
    let mut full = Log::open(full_dir.path(), config.clone()).unwrap();
    clean(&mut full, hw, NOW_MS + 10);
    assert_eq!(
        deleted_files(full_dir.path()) > 0,
        config.file_delete_delay_ms > 0
    );
    let cleaned_segments = by_segment(&full);
    let mut stop = 0;
    loop {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template.path(), dir.path());
        let mut log = Log::open(dir.path(), config.clone()).unwrap();
        let terms: Vec<u64> = (1..=log.last_raft_index())
            .map(|i| log.term_of(i).unwrap())
            .collect();
        let job = log.prepare_clean(hw, NOW_MS + 10).unwrap().unwrap();
        let cleaned = job.run(&Cleaner::default()).unwrap();
        drop(job);
        let finished = log
            .complete_clean_steps(cleaned, Some(stop))
            .unwrap()
            .is_some();
        drop(log); // the process dies here
        let log = Log::open(dir.path(), config.clone()).unwrap();
        assert_eq!(deleted_files(dir.path()), 0, "stop {stop}");
        let report = crate::inspect::verify_dir(dir.path(), |_, _| {}).unwrap();
        assert!(report.is_ok(), "stop {stop}: {:#?}", report.findings);
        assert!(!dir.path().join(STAGING_DIR).exists());
        let got = by_segment(&log);
        for (base, batches) in &got {
            assert!(
                original.get(base) == Some(batches) || cleaned_segments.get(base) == Some(batches),
                "stop {stop}: segment {base} is a mix"
            );
        }
        // Every live key keeps its latest value; deleted keys keep nothing older.
        let now = latest_of(&log);
        for (k, v) in &latest {
            match v {
                Some(v) => assert_eq!(now.get(k), Some(&Some(v.clone())), "stop {stop}: {k}"),
                None => assert!(matches!(now.get(k), None | Some(None)), "stop {stop}: {k}"),
            }
        }
        let after: Vec<u64> = (1..=log.last_raft_index())
            .map(|i| log.term_of(i).unwrap())
            .collect();
        assert_eq!(after, terms, "stop {stop}");
        if finished {
            assert_eq!(got, cleaned_segments);
            break;
        }
        stop += 1;
    }
    assert!(stop >= 6, "only {stop} steps");
}

#[test]
fn damaged_leftovers_are_dropped_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, latest) = build(dir.path());
    let first = log.segments()[0].base_offset;
    log.close().unwrap();
    // A cleaning that died while writing: partial staging files, no swap.
    let stage = dir.path().join(STAGING_DIR);
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::write(
        stage.join(segment::segment_file_name(first, "log")),
        b"partial",
    )
    .unwrap();
    std::fs::write(
        stage.join(segment::segment_file_name(first, "entries")),
        b"xx",
    )
    .unwrap();
    // A damaged swap file before anything moved: dropped, the old segment stays.
    let swap = dir
        .path()
        .join(segment::segment_file_name(first, SWAP_SUFFIX));
    std::fs::write(&swap, b"garbage garbage garbage garbage garbage").unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    assert!(!swap.exists() && !stage.exists());
    assert_eq!(latest_of(&log).len(), latest.len());
    log.close().unwrap();
    // A damaged swap with nothing left to move: finished, and the segment's own checks
    // refuse it with a typed error.
    std::fs::write(&swap, b"garbage garbage garbage garbage garbage").unwrap();
    match Log::open(dir.path(), config()) {
        Err(LogError::CorruptFile { .. }) => {}
        other => panic!("expected a corrupt-file error, got {other:?}"),
    }
}
