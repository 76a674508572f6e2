//! Compaction (`cleanup.policy=compact`) through the public API: a model-based property
//! test, a 100-key scenario with tombstones and `delete.retention.ms`, compressed
//! batches, the Raft view of a cleaned log, discarded jobs, bounded offset maps, and
//! `strata log verify` on the result.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use log_store::inspect;
use log_store::{Cleaner, CleanerConfig, EntryKind, Log, LogConfig, ManualClock};
use proptest::prelude::*;
use strata_testkit::{encode_batch, Compression, Producer, RecordSpec, NO_PRODUCER};

const T0_MS: i64 = 1_700_000_000_000;
const DAY_MS: i64 = 86_400_000;

/// One record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    key: Option<Bytes>,
    value: Option<Bytes>,
}

fn compact_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        compact: true,
        delete: false,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

fn spec(key: Option<&str>, value: Option<&[u8]>, ts: i64) -> RecordSpec {
    RecordSpec {
        key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: value.map(Bytes::copy_from_slice),
        timestamp_ms: ts,
    }
}

fn producer() -> Producer {
    Producer {
        id: 11,
        epoch: 2,
        first_sequence: 0,
    }
}

/// Every record of the log from its start, decoded with kafka-protocol, in offset order.
fn records(log: &Log) -> Vec<Rec> {
    let mut out = Vec::new();
    for (_, batch) in common::read_all(log, log.log_start_offset()) {
        let mut buf = batch.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf)
            .expect("a cleaned batch decodes");
        for r in set.records {
            out.push(Rec {
                offset: r.offset as u64,
                key: r.key,
                value: r.value,
            });
        }
    }
    out
}

/// prepare → run → complete with a roomy map; `None` when no cleaning was due.
fn clean(log: &mut Log, up_to: u64, now_ms: i64) -> Option<log_store::CleanOutcome> {
    clean_with(log, up_to, now_ms, &Cleaner::default())
}

fn clean_with(
    log: &mut Log,
    up_to: u64,
    now_ms: i64,
    cleaner: &Cleaner,
) -> Option<log_store::CleanOutcome> {
    let job = log.prepare_clean(up_to, now_ms).expect("prepare")?;
    let cleaned = job.run(cleaner).expect("run");
    drop(job);
    Some(log.complete_clean(cleaned).expect("complete"))
}

fn verify(log: &Log) {
    let report = inspect::verify_dir(log.dir(), |_, _| {}).expect("verify runs");
    assert!(report.is_ok(), "verify: {:#?}", report.findings);
}

// ------------------------------------------------------------------ the model

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: Vec<(Option<u8>, bool)>,
        codec: u8,
    },
    Clean {
        up_to_pick: u16,
    },
    Roll,
    Advance {
        ms: i64,
    },
    Reopen {
        clean: bool,
    },
    TruncateTail {
        pick: u16,
    },
    Meta,
}

fn op() -> impl Strategy<Value = Op> {
    let record = (
        proptest::option::weighted(0.95, 0u8..12),
        proptest::bool::weighted(0.85),
    );
    prop_oneof![
        10 => (proptest::collection::vec(record, 1..8), 0u8..5)
            .prop_map(|(records, codec)| Op::Append { records, codec }),
        3 => any::<u16>().prop_map(|up_to_pick| Op::Clean { up_to_pick }),
        1 => Just(Op::Roll),
        2 => (1i64..8_000).prop_map(|ms| Op::Advance { ms }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => any::<u16>().prop_map(|pick| Op::TruncateTail { pick }),
        1 => Just(Op::Meta),
    ]
}

fn codec(c: u8) -> Compression {
    match c {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    }
}

struct Model {
    /// Every record ever appended and not truncated, by offset.
    appended: BTreeMap<u64, Rec>,
    /// Batch spans (base, last) in order, for truncation.
    batches: Vec<(u64, u64)>,
    next_offset: u64,
    /// Raft index → term of every entry.
    terms: Vec<u64>,
    /// Offsets below this were committed ("high watermark" given to a cleaning) and are
    /// never truncated by the test.
    committed: u64,
}

fn check(log: &Log, model: &Model, just_cleaned: Option<u64>) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.next_offset(), model.next_offset);
    prop_assert_eq!(log.last_raft_index(), model.terms.len() as u64);
    for (i, term) in model.terms.iter().enumerate() {
        let idx = i as u64 + 1;
        prop_assert_eq!(log.term_of(idx).unwrap(), *term);
        prop_assert_eq!(log.entry(idx).unwrap().raft_index, idx);
    }
    let got = records(log);
    // Offsets strictly increasing; every record unchanged at its offset.
    for w in got.windows(2) {
        prop_assert!(w[0].offset < w[1].offset);
    }
    for r in &got {
        prop_assert_eq!(Some(r), model.appended.get(&r.offset));
    }
    // Per key: the latest record survives unless it is a tombstone, and a key whose
    // latest record is gone has no record left at all (nothing resurrects).
    let mut latest: HashMap<Option<Bytes>, &Rec> = HashMap::new();
    for r in model.appended.values() {
        latest.insert(r.key.clone(), r);
    }
    let present: std::collections::HashSet<u64> = got.iter().map(|r| r.offset).collect();
    for (key, r) in &latest {
        if key.is_none() {
            continue;
        }
        if r.value.is_some() {
            prop_assert!(present.contains(&r.offset), "latest of {:?} lost", key);
        } else if !present.contains(&r.offset) {
            prop_assert!(
                !got.iter().any(|g| &g.key == key),
                "older record of {:?} resurrected",
                key
            );
        }
    }
    // Unkeyed records and everything from the first dirty offset on are untouched.
    for r in model.appended.values() {
        if r.key.is_none() || r.offset >= log.first_dirty_offset() {
            prop_assert!(present.contains(&r.offset), "record {} lost", r.offset);
        }
    }
    // Right after a cleaning up to `up_to`, the clean section holds only the latest record
    // of each key among those below `up_to`.
    if let Some(up_to) = just_cleaned {
        let mut latest_below: HashMap<Option<Bytes>, u64> = HashMap::new();
        for r in model.appended.range(..up_to).map(|(_, r)| r) {
            latest_below.insert(r.key.clone(), r.offset);
        }
        for r in got.iter().filter(|r| r.offset < log.first_dirty_offset()) {
            if r.key.is_some() {
                prop_assert_eq!(latest_below.get(&r.key), Some(&r.offset));
            }
        }
    }
    Ok(())
}

fn run_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let config = LogConfig {
        delete_retention_ms: 10_000,
        ..compact_config(1024)
    };
    let open = |clock: &Arc<ManualClock>| {
        Log::open_with_clock(dir.path(), config.clone(), clock.clone()).unwrap()
    };
    let mut log = open(&clock);
    let mut model = Model {
        appended: BTreeMap::new(),
        batches: Vec::new(),
        next_offset: 0,
        terms: Vec::new(),
        committed: 0,
    };
    let mut seq = 0u32;
    let now = |clock: &Arc<ManualClock>| log_store::Clock::now_ms(clock.as_ref());
    for op in ops {
        let mut just_cleaned = None;
        match op {
            Op::Append { records, codec: c } => {
                let ts = now(&clock);
                let specs: Vec<RecordSpec> = records
                    .iter()
                    .map(|(k, has_value)| {
                        seq += 1;
                        let key = k.map(|k| format!("k{k}"));
                        let value = has_value.then(|| format!("v{seq}").into_bytes());
                        spec(key.as_deref(), value.as_deref(), ts)
                    })
                    .collect();
                let b = encode_batch(specs.clone(), NO_PRODUCER, codec(c)).to_vec();
                let info = log.append_with_term(1, &b).unwrap();
                for (i, s) in specs.into_iter().enumerate() {
                    let offset = info.base_offset + i as u64;
                    model.appended.insert(
                        offset,
                        Rec {
                            offset,
                            key: s.key,
                            value: s.value,
                        },
                    );
                }
                model.batches.push((info.base_offset, info.last_offset));
                model.next_offset = info.last_offset + 1;
                model.terms.push(1);
            }
            Op::Meta => {
                log.append_meta(1, EntryKind::Noop, b"noop").unwrap();
                model.terms.push(1);
            }
            Op::Clean { up_to_pick } => {
                let span = model.next_offset - model.committed + 1;
                let up_to = model.committed + u64::from(up_to_pick) % span;
                model.committed = up_to;
                if clean(&mut log, up_to, now(&clock)).is_some_and(|o| o.applied) {
                    just_cleaned = Some(up_to);
                }
            }
            Op::Roll => log.roll().unwrap(),
            Op::Advance { ms } => clock.advance_ms(ms),
            Op::Reopen { clean } => {
                if clean {
                    log.close().unwrap();
                } else {
                    drop(log);
                }
                log = open(&clock);
            }
            Op::TruncateTail { pick } => {
                // Only uncommitted batches, as Raft would.
                let cut = model.committed + u64::from(pick) % 64;
                let i = model.batches.partition_point(|(_, last)| *last < cut);
                let above_committed = model.batches.get(i).is_some_and(|b| b.0 >= model.committed);
                if cut < model.next_offset && above_committed {
                    log.truncate_from(cut).unwrap();
                    let i = model.batches.partition_point(|(_, last)| *last < cut);
                    let base = model.batches[i].0;
                    model.batches.truncate(i);
                    model.appended.split_off(&base);
                    model.next_offset = base;
                    model.terms.truncate((log.last_raft_index()) as usize);
                }
            }
        }
        check(&log, &model, just_cleaned)?;
    }
    verify(&log);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random appends (keyed, unkeyed, tombstones, every codec), cleanings at random high
    /// watermarks, rolls, clock moves, reopens and tail truncations: reads always match
    /// the model.
    #[test]
    fn compaction_matches_the_model(ops in proptest::collection::vec(op(), 1..70)) {
        run_model(ops)?;
    }
}

// ------------------------------------------------------------------ the 100-key scenario

/// 100 keys, 100 000 updates: compaction leaves exactly the last value of each key; keys
/// deleted with tombstones disappear once `delete.retention.ms` has passed since the
/// cleaning that first saw the tombstones, and not before.
#[test]
fn hundred_keys_hundred_thousand_updates() {
    const KEYS: u64 = 100;
    const UPDATES: u64 = 100_000;
    const PER_BATCH: u64 = 500;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let config = compact_config(256 * 1024);
    let mut log = Log::open_with_clock(dir.path(), config.clone(), clock.clone()).unwrap();
    let mut last: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut n = 0u64;
    while n < UPDATES {
        let specs: Vec<RecordSpec> = (n..n + PER_BATCH)
            .map(|u| {
                // A fixed pseudo-random walk over the keys.
                let key = (u * 7919 + u / 13) % KEYS;
                let value = format!("value-{u}").into_bytes();
                last.insert(key, value.clone());
                spec(Some(&format!("key-{key}")), Some(&value), T0_MS + u as i64)
            })
            .collect();
        let b = encode_batch(specs, producer(), Compression::None).to_vec();
        log.append(&b).unwrap();
        n += PER_BATCH;
    }
    assert!(log.segment_count() > 4, "{} segments", log.segment_count());
    let size_before = log.size_bytes();
    log.roll().unwrap();
    let hw = log.next_offset();
    let outcome = clean(&mut log, hw, T0_MS).expect("dirty enough to clean");
    assert!(outcome.applied);
    assert_eq!(outcome.records_removed, UPDATES - KEYS);
    assert_eq!(outcome.map_keys, KEYS);
    let got = records(&log);
    let want: Vec<(Bytes, Bytes)> = last
        .iter()
        .map(|(k, v)| (Bytes::from(format!("key-{k}")), Bytes::from(v.clone())))
        .collect();
    let mut got_kv: Vec<(Bytes, Bytes)> = got
        .iter()
        .map(|r| (r.key.clone().unwrap(), r.value.clone().unwrap()))
        .collect();
    got_kv.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got_kv, want_sorted);
    assert!(
        log.size_bytes() < size_before / 20,
        "{} of {size_before}",
        log.size_bytes()
    );
    // Offsets are preserved: each surviving record sits at the offset it was written at.
    for r in &got {
        let u = r.offset;
        assert_eq!(r.value.as_deref(), Some(format!("value-{u}").as_bytes()));
    }
    verify(&log);

    // Delete ten keys.
    let deleted: Vec<u64> = (0..10).map(|i| i * 10).collect();
    let specs: Vec<RecordSpec> = deleted
        .iter()
        .map(|k| spec(Some(&format!("key-{k}")), None, T0_MS + 200_000))
        .collect();
    let b = encode_batch(specs, producer(), Compression::None).to_vec();
    log.append(&b).unwrap();
    log.roll().unwrap();
    let hw = log.next_offset();
    let first_seen = T0_MS + 1_000;
    clock.set_ms(first_seen);
    let o = clean(&mut log, hw, first_seen).expect("the tombstones are dirty");
    assert_eq!(o.records_removed, 10, "the deleted keys' values go");
    assert_eq!(log.next_delete_horizon_ms(), Some(first_seen + DAY_MS));
    let live = |log: &Log| {
        records(log)
            .into_iter()
            .map(|r| (r.key.unwrap(), r.value.is_some()))
            .collect::<BTreeMap<_, _>>()
    };
    let before = live(&log);
    assert_eq!(before.len(), KEYS as usize, "tombstones kept");
    assert_eq!(before.values().filter(|v| !**v).count(), 10);
    // Just before the horizon: nothing to do, the tombstones stay (reopen in between).
    log.close().unwrap();
    let mut log = Log::open_with_clock(dir.path(), config.clone(), clock.clone()).unwrap();
    assert!(clean(&mut log, hw, first_seen + DAY_MS - 1).is_none());
    assert_eq!(live(&log), before);
    // At the horizon the cleaning starts by itself and removes them.
    let o = clean(&mut log, hw, first_seen + DAY_MS).expect("horizon due");
    assert_eq!(o.tombstones_removed, 10);
    let after = live(&log);
    assert_eq!(after.len(), (KEYS - 10) as usize);
    assert!(after.values().all(|v| *v));
    for k in &deleted {
        assert!(!after.contains_key(format!("key-{k}").as_bytes()));
    }
    assert_eq!(log.next_delete_horizon_ms(), None);
    verify(&log);
}

/// A replicated log removes a due tombstone only below the offset every replica holds:
/// held back, the tombstone stays, and the due horizon starts no further cleaning until
/// that bound moves; once it passes the tombstone's batch, the tombstone goes.
#[test]
fn tombstones_wait_for_every_replica_to_hold_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let config = compact_config(1024 * 1024);
    let mut log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    let values = encode_batch(
        vec![spec(Some("k"), Some(b"v1"), T0_MS)],
        producer(),
        Compression::None,
    )
    .to_vec();
    log.append(&values).unwrap();
    let tombstone_offset = log.next_offset();
    let tombstone = encode_batch(
        vec![spec(Some("k"), None, T0_MS)],
        producer(),
        Compression::None,
    )
    .to_vec();
    log.append(&tombstone).unwrap();
    log.roll().unwrap();
    let hw = log.next_offset();
    let clean_below = |log: &mut Log, below: u64, now: i64| {
        let job = log.prepare_clean_below(hw, below, now).expect("prepare")?;
        let cleaned = job.run(&Cleaner::default()).expect("run");
        drop(job);
        Some(log.complete_clean(cleaned).expect("complete"))
    };
    // The first cleaning removes the older value and sets the horizon.
    let o = clean_below(&mut log, 0, T0_MS).expect("dirty");
    assert_eq!((o.records_removed, o.tombstones_removed), (1, 0));
    let due = T0_MS + DAY_MS;
    // Due, but one replica holds nothing past the tombstone's batch: it stays.
    let o = clean_below(&mut log, tombstone_offset, due).expect("horizon due");
    assert_eq!(o.tombstones_removed, 0);
    assert_eq!(records(&log).len(), 1, "the tombstone is kept");
    // The same bound later: no cleaning is started for nothing.
    assert!(clean_below(&mut log, tombstone_offset, due + 1).is_none());
    // Every replica holds the tombstone's batch now: it goes.
    let o = clean_below(&mut log, tombstone_offset + 1, due + 2).expect("bound moved");
    assert_eq!(o.tombstones_removed, 1);
    assert!(records(&log).is_empty());
    assert_eq!(log.next_offset(), hw, "offsets are kept");
    verify(&log);
}

// ------------------------------------------------------------------ codecs

#[test]
fn compressed_batches_are_cleaned_with_their_codec() {
    for c in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), compact_config(2048)).unwrap();
        let mut want = BTreeMap::new();
        for round in 0..40u64 {
            let specs: Vec<RecordSpec> = (0..10u64)
                .map(|i| {
                    let key = (round * 3 + i) % 17;
                    let value = format!("{c:?}-{round}-{i}-{}", "x".repeat(20));
                    want.insert(format!("k{key}"), value.clone());
                    spec(Some(&format!("k{key}")), Some(value.as_bytes()), T0_MS)
                })
                .collect();
            let b = encode_batch(specs, producer(), c).to_vec();
            log.append(&b).unwrap();
        }
        log.roll().unwrap();
        let o = {
            let hw = log.next_offset();
            clean(&mut log, hw, T0_MS)
        }
        .unwrap();
        assert!(o.applied && o.records_removed == 400 - 17, "{c:?}: {o:?}");
        let got: BTreeMap<String, String> = records(&log)
            .into_iter()
            .map(|r| {
                let k = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                (k, String::from_utf8(r.value.unwrap().to_vec()).unwrap())
            })
            .collect();
        assert_eq!(got, want, "{c:?}");
        for (_, b) in common::read_all(&log, 0) {
            let h = log_store::BatchHeader::parse_validated(&b).unwrap();
            assert!(h.records_count == 0 || h.compression() == c as u8, "{c:?}");
            assert_eq!((h.producer_id, h.producer_epoch), (11, 2));
        }
        verify(&log);
    }
}

// ------------------------------------------------------------------ Raft view

/// Builds a log with data and non-data entries over several terms and segments.
fn raft_log(dir: &std::path::Path) -> (Log, Vec<(u64, Option<u64>)>) {
    let mut log = Log::open(dir, compact_config(1024)).unwrap();
    let mut entries = Vec::new(); // (term, base offset for data)
    let mut term = 1;
    for i in 0..120u64 {
        if i % 30 == 29 {
            term += 1;
            log.append_meta(term, EntryKind::Noop, b"leader").unwrap();
            entries.push((term, None));
        }
        let specs: Vec<RecordSpec> = (0..3u64)
            .map(|j| {
                let v = format!("v{i}-{j}");
                spec(
                    Some(&format!("k{}", (i + j) % 9)),
                    Some(v.as_bytes()),
                    T0_MS,
                )
            })
            .collect();
        let b = encode_batch(specs, producer(), Compression::None).to_vec();
        let info = log.append_with_term(term, &b).unwrap();
        entries.push((term, Some(info.base_offset)));
    }
    (log, entries)
}

#[test]
fn raft_entries_survive_cleaning_truncation_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, entries) = raft_log(dir.path());
    let check = |log: &Log, upto: usize| {
        assert_eq!(log.last_raft_index(), upto as u64);
        for (i, (term, base)) in entries[..upto].iter().enumerate() {
            let idx = i as u64 + 1;
            assert_eq!(log.term_of(idx).unwrap(), *term, "term of {idx}");
            let e = log.entry(idx).unwrap();
            match base {
                Some(b) => {
                    assert_eq!(
                        (e.kind, e.base_offset, e.next_offset),
                        (EntryKind::Data, *b, b + 3)
                    );
                    let payload = log.entry_payload(idx).unwrap();
                    let h = log_store::BatchHeader::parse_validated(&payload).unwrap();
                    assert_eq!((h.base_offset as u64, h.last_offset_delta), (*b, 2));
                    assert_eq!(h.partition_leader_epoch as u64, *term);
                }
                None => {
                    assert_eq!(e.kind, EntryKind::Noop);
                    assert_eq!(&log.entry_payload(idx).unwrap()[..], b"leader");
                }
            }
        }
    };
    let hw = log.next_offset() - 30;
    let o = clean(&mut log, hw, T0_MS).unwrap();
    assert!(o.applied && o.records_removed > 100, "{o:?}");
    check(&log, entries.len());
    verify(&log);
    // Truncate into the active segment (uncommitted entries), then reopen both ways.
    let cut_index = entries.len() - 5;
    log.truncate_from_raft_index(cut_index as u64 + 1).unwrap();
    check(&log, cut_index);
    drop(log);
    let log = Log::open(dir.path(), compact_config(1024)).unwrap();
    check(&log, cut_index);
    log.close().unwrap();
    let log = Log::open(dir.path(), compact_config(1024)).unwrap();
    check(&log, cut_index);
    // A lost checkpoint means a full recovery scan, which validates cleaned segments
    // entry by entry.
    drop(log);
    std::fs::remove_file(dir.path().join(log_store::checkpoint::CHECKPOINT_FILE)).unwrap();
    let log = Log::open(dir.path(), compact_config(1024)).unwrap();
    assert_eq!(log.open_report().truncated_bytes, 0);
    check(&log, cut_index);
    verify(&log);
    // Timestamps still find batches.
    assert_eq!(
        log.offset_for_timestamp(T0_MS).unwrap(),
        Some(log.log_start_offset())
    );
}

// ------------------------------------------------------------------ jobs and limits

#[test]
fn a_job_is_discarded_when_the_log_changes_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = raft_log(dir.path());
    log.roll().unwrap();
    let hw = log.next_offset();
    let before = common::read_all(&log, 0);
    let job = log.prepare_clean(hw, T0_MS).unwrap().unwrap();
    assert!(
        log.prepare_clean(hw, T0_MS).is_err(),
        "one cleaning at a time"
    );
    let cleaned = job.run(&Cleaner::default()).unwrap();
    drop(job);
    log.truncate_from(hw - 3).unwrap();
    let o = log.complete_clean(cleaned).unwrap();
    assert!(!o.applied);
    assert_eq!(
        common::read_all(&log, 0),
        before[..before.len() - 1].to_vec()
    );
    assert!(!dir.path().join(log_store::cleaner::STAGING_DIR).exists());
    // The flag is released: a new job can start and apply.
    let o = {
        let hw = log.next_offset();
        clean(&mut log, hw, T0_MS)
    }
    .unwrap();
    assert!(o.applied);
    verify(&log);
}

#[test]
fn retention_of_the_oldest_segments_meanwhile_keeps_the_rest_of_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = raft_log(dir.path());
    log.roll().unwrap();
    let job = log
        .prepare_clean(log.next_offset(), T0_MS)
        .unwrap()
        .unwrap();
    let cleaned = job.run(&Cleaner::default()).unwrap();
    let second = log.segments()[1].base_offset;
    log.delete_before(second).unwrap();
    log.apply_retention().unwrap();
    let o = log.complete_clean(cleaned).unwrap();
    assert!(o.applied);
    assert_eq!(o.segments_cleaned, job.segments_to_clean() - 1);
    assert_eq!(log.log_start_offset(), second);
    verify(&log);
}

#[test]
fn a_small_offset_map_cleans_in_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(2048)).unwrap();
    let mut last = BTreeMap::new();
    for i in 0..300u64 {
        // Keys drift over time, so each segment brings new ones.
        let key = format!("k{}", i / 2 + (i % 3) * 7);
        let value = format!("v{i}");
        last.insert(key.clone(), value.clone());
        let b = encode_batch(
            [spec(Some(&key), Some(value.as_bytes()), T0_MS)],
            NO_PRODUCER,
            Compression::None,
        )
        .to_vec();
        log.append(&b).unwrap();
    }
    log.roll().unwrap();
    let hw = log.next_offset();
    let cleaner = Cleaner::new(CleanerConfig {
        dedupe_buffer_bytes: 64 * log_store::offset_map::OFFSET_MAP_ENTRY_BYTES,
        io_max_bytes_per_second: None,
    });
    let mut passes = 0;
    while let Some(o) = clean_with(&mut log, hw, T0_MS, &cleaner) {
        assert!(o.applied && o.map_keys <= 64);
        passes += 1;
        assert!(passes < 50, "no progress");
        if log.first_dirty_offset() == hw {
            break;
        }
    }
    assert!(passes > 1, "the map should have overflowed");
    assert_eq!(log.first_dirty_offset(), hw);
    // One more pass with a map big enough for everything leaves one record per key.
    log.append(&encode_batch(
        [spec(Some("k0"), Some(b"z"), T0_MS)],
        NO_PRODUCER,
        Compression::None,
    ))
    .unwrap();
    last.insert("k0".into(), "z".into());
    log.roll().unwrap();
    {
        let hw = log.next_offset();
        clean(&mut log, hw, T0_MS)
    }
    .unwrap();
    let got: BTreeMap<String, String> = records(&log)
        .into_iter()
        .map(|r| {
            (
                String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            )
        })
        .collect();
    assert_eq!(got, last);
    assert_eq!(records(&log).len(), last.len());
    verify(&log);
}

#[test]
fn dirty_ratio_lag_and_policy_decide_when_to_clean() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        min_compaction_lag_ms: 60_000,
        retention_ms: Some(1),
        ..compact_config(1024)
    };
    let mut log = Log::open_with_clock(dir.path(), config.clone(), clock.clone()).unwrap();
    for i in 0..60u64 {
        let v = format!("value-{i}");
        let b = encode_batch(
            [spec(Some("k"), Some(v.as_bytes()), T0_MS)],
            NO_PRODUCER,
            Compression::None,
        )
        .to_vec();
        log.append(&b).unwrap();
    }
    log.roll().unwrap();
    let hw = log.next_offset();
    // Too young for min.compaction.lag.ms.
    assert!(log.prepare_clean(hw, T0_MS + 59_999).unwrap().is_none());
    // Not compacted when the policy is delete only.
    log.set_config(LogConfig {
        compact: false,
        ..config.clone()
    })
    .unwrap();
    assert!(log.prepare_clean(hw, T0_MS + 60_000).unwrap().is_none());
    log.set_config(config.clone()).unwrap();
    let o = clean(&mut log, hw, T0_MS + 60_000).unwrap();
    assert_eq!(records(&log).len(), 1, "{o:?}");
    // Nothing dirty now: the ratio is 0.
    assert!(log.prepare_clean(hw, T0_MS + 60_000).unwrap().is_none());
    // Without `delete` in the policy, retention by time deletes nothing.
    clock.set_ms(T0_MS + DAY_MS);
    assert_eq!(log.apply_retention().unwrap().deleted_segments, 0);
    log.set_config(LogConfig {
        delete: true,
        ..config
    })
    .unwrap();
    assert!(log.apply_retention().unwrap().deleted_segments > 0);
}

#[test]
fn unkeyed_records_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(1024)).unwrap();
    for i in 0..30u64 {
        let v = format!("v{i}");
        let key = (i % 2 == 0).then_some("k");
        let b = encode_batch(
            [spec(key, Some(v.as_bytes()), T0_MS)],
            NO_PRODUCER,
            Compression::None,
        )
        .to_vec();
        log.append(&b).unwrap();
    }
    log.roll().unwrap();
    {
        let hw = log.next_offset();
        clean(&mut log, hw, T0_MS)
    }
    .unwrap();
    let got = records(&log);
    assert_eq!(got.iter().filter(|r| r.key.is_none()).count(), 15);
    assert_eq!(got.iter().filter(|r| r.key.is_some()).count(), 1);
    verify(&log);
}

/// Rewrites a batch's record count and fixes its CRC, so only the record walk can tell.
fn lie_about_record_count(batch: &mut [u8], count: i32) {
    batch[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn damaged_bytes_stop_the_cleaning_with_a_typed_error() {
    // A batch whose CRC is right but whose records don't match its count.
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(1024)).unwrap();
    for i in 0..20u64 {
        let v = format!("v{i}");
        let mut b = encode_batch(
            [spec(Some("k"), Some(v.as_bytes()), T0_MS)],
            NO_PRODUCER,
            Compression::None,
        )
        .to_vec();
        if i == 3 {
            lie_about_record_count(&mut b, i32::MAX);
        }
        log.append(&b).unwrap();
    }
    log.roll().unwrap();
    let before = common::read_all(&log, 0);
    let job = log
        .prepare_clean(log.next_offset(), T0_MS)
        .unwrap()
        .unwrap();
    match job.run(&Cleaner::default()) {
        Err(log_store::LogError::CorruptFile { reason, .. }) => {
            assert!(reason.contains("offset 3"), "{reason}")
        }
        other => panic!("expected a corrupt-file error, got {other:?}"),
    }
    drop(job);
    assert_eq!(common::read_all(&log, 0), before);

    // A flipped bit in a closed segment (found by the CRC check while cleaning).
    let first = log.segments()[0].path.clone();
    log.close().unwrap();
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[70] ^= 0x10;
    std::fs::write(&first, bytes).unwrap();
    let log = Log::open(dir.path(), compact_config(1024)).unwrap();
    let job = log
        .prepare_clean(log.next_offset(), T0_MS)
        .unwrap()
        .unwrap();
    assert!(matches!(
        job.run(&Cleaner::default()),
        Err(log_store::LogError::CorruptFile { .. })
    ));
}

#[test]
fn the_throttle_paces_a_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(16 * 1024)).unwrap();
    for i in 0..200u64 {
        let v = vec![b'x'; 400];
        let key = format!("k{}", i % 50);
        let b = encode_batch(
            [spec(Some(&key), Some(&v), T0_MS)],
            NO_PRODUCER,
            Compression::None,
        )
        .to_vec();
        log.append(&b).unwrap();
    }
    log.roll().unwrap();
    const RATE_BYTES_PER_SECOND: u64 = 400_000;
    let cleaner = Cleaner::new(CleanerConfig {
        io_max_bytes_per_second: Some(RATE_BYTES_PER_SECOND),
        ..CleanerConfig::default()
    });
    let job = log
        .prepare_clean(log.next_offset(), T0_MS)
        .unwrap()
        .unwrap();
    let started = std::time::Instant::now();
    let cleaned = job.run(&cleaner).unwrap();
    let elapsed = started.elapsed();
    let o = cleaned.outcome();
    let io = o.bytes_read + o.bytes_written;
    // The rate may be exceeded by at most what one window's start allows.
    let floor = std::time::Duration::from_secs_f64(io as f64 / RATE_BYTES_PER_SECOND as f64 * 0.8);
    assert!(
        elapsed >= floor,
        "{io} bytes in {elapsed:?}, floor {floor:?}"
    );
}
