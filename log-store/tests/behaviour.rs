//! Focused behaviour tests: timestamp lookup, index sparsity, segment roll by size and by
//! time, retention by size and by time, DeleteRecords, bad input, the Raft view, and
//! readers that outlive truncation.

mod common;

use std::sync::Arc;

use log_store::{Clock, EntryKind, Log, LogConfig, LogError, ManualClock};

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        segment_index_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

#[test]
fn timestamp_lookup_finds_the_earliest_batch_at_or_after_t() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small()).unwrap();
    // Timestamps rise overall but not monotonically: batch i has max ts 1000 + 10 * i,
    // except every 7th batch, which carries an old timestamp.
    let mut max_ts = Vec::new();
    for i in 0..400i64 {
        let ts = if i % 7 == 3 { 500 } else { 1000 + 10 * i };
        let b = common::batch(i as u64, 1, 200, ts);
        log.append(&b).unwrap();
        max_ts.push(ts);
    }
    assert!(log.segment_count() > 3);
    for t in [
        0, 499, 500, 501, 1000, 1001, 1005, 2000, 2345, 4990, 4991, 10_000,
    ] {
        let want = max_ts.iter().position(|ts| *ts >= t).map(|i| i as u64);
        assert_eq!(log.offset_for_timestamp(t).unwrap(), want, "t = {t}");
    }
    // The answer never precedes the log start.
    log.delete_before(100).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some(100));
    assert_eq!(log.offset_for_timestamp(2345).unwrap(), Some(135));
}

#[test]
fn indexes_are_sparse_one_entry_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 4096,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let mut total = 0u64;
    for i in 0..2000u64 {
        let b = common::batch(i, 1, 100, i as i64);
        total += b.len() as u64;
        log.append(&b).unwrap();
    }
    let seg = log.segments()[0].clone();
    log.close().unwrap();
    let index_len = std::fs::metadata(seg.path.with_extension("index"))
        .unwrap()
        .len();
    let entries = index_len / 8;
    // One entry per index.interval.bytes of log (Kafka's rule), never one per batch.
    let per_interval = total / 4096;
    assert!(
        entries > 0 && entries <= per_interval + 1,
        "{entries} entries for {total} bytes"
    );
    assert!(
        entries + 2 >= per_interval,
        "{entries} entries for {total} bytes"
    );
    // The closed index was trimmed to its entries; the time index ends with the max.
    let time_len = std::fs::metadata(seg.path.with_extension("timeindex"))
        .unwrap()
        .len();
    assert_eq!(time_len % 12, 0);
    let t = std::fs::read(seg.path.with_extension("timeindex")).unwrap();
    let last_ts = i64::from_be_bytes(t[t.len() - 12..t.len() - 4].try_into().unwrap());
    assert_eq!(last_ts, 1999);
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    // Every offset is still found exactly.
    for o in (0..2000).step_by(37) {
        let bytes = log.read(o, 1).unwrap();
        let (base, _) = common::split(&bytes)[0].clone();
        assert_eq!(base, o);
    }
}

#[test]
fn segments_roll_by_size_and_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let config = LogConfig {
        segment_bytes: 4096,
        segment_ms: Some(60_000),
        ..small()
    };
    let mut log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    // Size: no segment exceeds segment.bytes; each rolled one is nearly full.
    for i in 0..40u64 {
        let b = common::batch(i, 1, 300, clock.now_ms());
        log.append(&b).unwrap();
    }
    let segs = log.segments();
    assert!(segs.len() >= 4);
    for s in &segs {
        assert!(s.size_bytes <= 4096);
    }
    for s in &segs[..segs.len() - 1] {
        assert!(
            s.size_bytes > 4096 - 400,
            "segment {} rolled early",
            s.base_offset
        );
        assert!(!s.active);
    }
    // Age: the next append after segment.ms rolls even a small segment.
    let before = log.segment_count();
    clock.advance_ms(59_999);
    let b = common::batch(99, 1, 10, clock.now_ms());
    log.append(&b).unwrap();
    assert_eq!(log.segment_count(), before);
    clock.advance_ms(60_000);
    let b = common::batch(100, 1, 10, clock.now_ms());
    log.append(&b).unwrap();
    assert_eq!(log.segment_count(), before + 1);
    // Segment files are named by base offset, 20 digits, as Kafka names them.
    let last = log.segments().pop().unwrap();
    assert_eq!(last.base_offset, log.next_offset() - 1);
    assert_eq!(
        last.path.file_name().unwrap().to_str().unwrap(),
        format!("{:020}.log", last.base_offset)
    );
    // An empty active segment never rolls (no two segments share a name).
    log.roll().unwrap();
    let n = log.segment_count();
    log.roll().unwrap();
    assert_eq!(log.segment_count(), n);
}

#[test]
fn retention_by_time_deletes_old_closed_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(10_000_000));
    let config = LogConfig {
        segment_bytes: 4096,
        retention_ms: Some(3_600_000),
        ..small()
    };
    let mut log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    for i in 0..30u64 {
        let b = common::batch(i, 1, 300, clock.now_ms());
        log.append(&b).unwrap();
    }
    let phase_two = clock.now_ms() + 1_800_000;
    clock.advance_ms(1_800_000);
    for i in 30..60u64 {
        let b = common::batch(i, 1, 300, clock.now_ms());
        log.append(&b).unwrap();
    }
    assert_eq!(log.apply_retention().unwrap().deleted_segments, 0);
    let old_segments = log
        .segments()
        .iter()
        .filter(|s| !s.active && s.max_timestamp < phase_two)
        .count();
    assert!(old_segments >= 2);
    clock.advance_ms(1_800_001);
    let out = log.apply_retention().unwrap();
    // Exactly the segments whose newest batch is older than retention.ms.
    assert_eq!(out.deleted_segments, old_segments);
    let start = log.log_start_offset();
    assert_eq!(start, log.segments()[0].base_offset);
    assert!(matches!(
        log.read(start - 1, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(common::read_all(&log, start).len() as u64, 60 - start);
    // Even when everything is expired, the active segment stays.
    clock.advance_ms(100_000_000);
    log.apply_retention().unwrap();
    assert_eq!(log.segment_count(), 1);
    assert!(log.segments()[0].active);
    // The new log start survives a restart.
    let start = log.log_start_offset();
    log.close().unwrap();
    let log = Log::open_with_clock(dir.path(), small(), clock).unwrap();
    assert_eq!(log.log_start_offset(), start);
}

#[test]
fn retention_by_size_keeps_at_least_retention_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 4096,
        retention_bytes: Some(10_000),
        retention_ms: None,
        ..small()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    for i in 0..100u64 {
        let b = common::batch(i, 1, 300, 0);
        log.append(&b).unwrap();
    }
    let before = log.size_bytes();
    let out = log.apply_retention().unwrap();
    assert!(out.deleted_segments > 0);
    assert_eq!(out.deleted_bytes, before - log.size_bytes());
    // Kafka's rule: delete oldest segments while what remains is still ≥ retention.bytes.
    assert!(log.size_bytes() >= 10_000);
    assert!(log.size_bytes() - log.segments()[0].size_bytes < 10_000);
    assert_eq!(log.apply_retention().unwrap().deleted_segments, 0);
}

/// A replica passes its commit point: retention never deletes a segment that reaches
/// past it, and deletes everything due below it however far the log's end runs ahead.
#[test]
fn retention_below_a_bound_keeps_segments_reaching_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 4096,
        retention_bytes: Some(1),
        retention_ms: None,
        ..small()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    for i in 0..100u64 {
        log.append(&common::batch(i, 1, 300, 0)).unwrap();
    }
    let ends: Vec<u64> = log.segments().iter().map(|s| s.next_offset).collect();
    assert!(ends.len() > 4, "several segments: {ends:?}");
    // A bound inside the third segment: the first two go, the third stays.
    let bound = ends[2] - 1;
    let out = log.apply_retention_below(bound).unwrap();
    assert_eq!(out.deleted_segments, 2);
    assert_eq!(log.log_start_offset(), ends[1]);
    assert_eq!(
        log.apply_retention_below(bound).unwrap().deleted_segments,
        0
    );
    // A bound exactly at a segment's end includes it.
    assert_eq!(
        log.apply_retention_below(ends[2]).unwrap().deleted_segments,
        1
    );
    // Unbounded, everything closed goes.
    log.apply_retention().unwrap();
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn delete_records_moves_the_log_start_and_drops_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            segment_bytes: 4096,
            ..small()
        },
    )
    .unwrap();
    for i in 0..60u64 {
        let b = common::batch(i, 2, 300, 0);
        log.append(&b).unwrap();
    }
    let segs = log.segments();
    let target = segs[2].base_offset + 3;
    assert_eq!(log.delete_before(target).unwrap(), target);
    assert_eq!(log.segments()[0].base_offset, segs[2].base_offset);
    // Reads below the new start are out of range; at it they start at its batch.
    assert!(matches!(
        log.read(target - 1, 10),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let first = common::split(&log.read(target, 1).unwrap())[0].0;
    assert_eq!(first, target - 1, "the batch holding the start offset");
    // Never backwards; never past the end.
    assert_eq!(log.delete_before(1).unwrap(), target);
    assert!(log.delete_before(log.next_offset() + 1).is_err());
    assert_eq!(
        log.delete_before(log.next_offset()).unwrap(),
        log.next_offset()
    );
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn bad_batches_are_rejected_and_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            max_message_bytes: 2000,
            ..small()
        },
    )
    .unwrap();
    let good = common::batch(1, 2, 50, 5);
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 1] ^= 0xFF;
    let mut bad_magic = good.clone();
    bad_magic[16] = 1;
    let short = good[..good.len() - 3].to_vec();
    let mut trailing = good.clone();
    trailing.extend([0u8; 5]);
    let mut negative_len = good.clone();
    negative_len[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    let huge = common::batch(2, 1, 3000, 5);
    for (name, b) in [
        ("bad crc", &bad_crc),
        ("bad magic", &bad_magic),
        ("short", &short),
        ("trailing bytes", &trailing),
        ("negative length", &negative_len),
        ("empty", &Vec::new()),
        ("garbage", &vec![0xAB; 100]),
    ] {
        let err = log.append(b).unwrap_err();
        assert!(matches!(err, LogError::CorruptBatch(_)), "{name}: {err}");
    }
    assert!(matches!(
        log.append(&huge),
        Err(LogError::BatchTooLarge { .. })
    ));
    assert_eq!(log.next_offset(), 0);
    assert_eq!(log.last_raft_index(), 0);
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(log.append(&good).unwrap().base_offset, 0);
    // A replica takes what its leader accepted, whatever its own limit; corrupt bytes
    // never.
    let (term, next) = (log.last_term(), log.next_offset());
    assert_eq!(
        log.append_replicated(term, &huge).unwrap().base_offset,
        next
    );
    assert!(matches!(
        log.append_replicated(term, &bad_crc),
        Err(LogError::CorruptBatch(_))
    ));
    assert_eq!(log.last_raft_index(), 2);
    // Bad configuration is a typed error too.
    let bad = LogConfig {
        segment_bytes: 10,
        ..LogConfig::default()
    };
    assert!(matches!(
        Log::open(dir.path().join("x"), bad),
        Err(LogError::InvalidArgument(_))
    ));
}

#[test]
fn raft_view_terms_kinds_payloads_truncation_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            segment_bytes: 4096,
            ..small()
        },
    )
    .unwrap();
    assert_eq!(
        (
            log.first_raft_index(),
            log.last_raft_index(),
            log.last_term()
        ),
        (1, 0, 0)
    );
    assert_eq!(log.term_of(0).unwrap(), 0);
    let noop = log.append_meta(1, EntryKind::Noop, b"").unwrap();
    assert_eq!(noop, 1);
    let b = common::batch(1, 3, 10, 0);
    let a = log.append_with_term(1, &b).unwrap();
    assert_eq!((a.raft_index, a.base_offset, a.last_offset), (2, 0, 2));
    // The term is stored as the batch's partitionLeaderEpoch.
    let stored = log.entry_payload(2).unwrap();
    assert_eq!(i32::from_be_bytes(stored[12..16].try_into().unwrap()), 1);
    let cc = log
        .append_meta(2, EntryKind::ConfChangeV2, b"voters=1,2,3")
        .unwrap();
    assert_eq!(&log.entry_payload(cc).unwrap()[..], b"voters=1,2,3");
    let e = log.entry(cc).unwrap();
    assert_eq!(
        (e.kind, e.term, e.base_offset, e.next_offset),
        (EntryKind::ConfChangeV2, 2, 3, 3)
    );
    // Terms never go backwards.
    assert!(matches!(
        log.append_meta(1, EntryKind::Noop, b""),
        Err(LogError::InvalidArgument(_))
    ));
    let b = common::batch(2, 1, 10, 0);
    assert!(log.append_with_term(1, &b).is_err());
    for i in 0..50u64 {
        let b = common::batch(i, 1, 200, 0);
        log.append_with_term(3, &b).unwrap();
    }
    assert!(log.segment_count() > 2);
    // Conflict resolution: cut at a Raft index in an earlier segment; offsets rewind.
    let cut = log.segments()[1].base_raft_index + 2;
    let expect_next = log.entry(cut).unwrap().base_offset;
    log.truncate_from_raft_index(cut).unwrap();
    assert_eq!(log.last_raft_index(), cut - 1);
    assert_eq!(log.next_offset(), expect_next);
    assert!(log.entry(cut).is_err());
    let b = common::batch(77, 1, 10, 0);
    let a = log.append_with_term(4, &b).unwrap();
    assert_eq!((a.raft_index, a.base_offset), (cut, expect_next));
    // Below the first index is an error, not a panic.
    assert!(log.truncate_from_raft_index(0).is_err());
    // Snapshot install: reset restarts the log at a later offset and Raft index.
    log.reset(1000, 500, 9).unwrap();
    assert_eq!((log.log_start_offset(), log.next_offset()), (1000, 1000));
    assert_eq!((log.first_raft_index(), log.last_raft_index()), (500, 499));
    assert_eq!(log.term_of(499).unwrap(), 9);
    assert_eq!(log.last_term(), 9);
    let b = common::batch(3, 2, 10, 0);
    let a = log.append_with_term(9, &b).unwrap();
    assert_eq!((a.raft_index, a.base_offset), (500, 1000));
    log.close().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(
        (log.first_raft_index(), log.term_of(499).unwrap()),
        (500, 9)
    );
    assert_eq!(log.next_offset(), 1002);
}

#[test]
fn retention_remembers_the_term_before_the_first_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            segment_bytes: 4096,
            retention_bytes: Some(1),
            ..small()
        },
    )
    .unwrap();
    for i in 0..40u64 {
        let b = common::batch(i, 1, 300, 0);
        log.append_with_term(1 + i / 10, &b).unwrap();
    }
    log.apply_retention().unwrap();
    let first = log.first_raft_index();
    assert!(first > 1);
    let (prev, term) = log.prev_raft_entry();
    assert_eq!(prev, first - 1);
    assert_eq!(log.term_of(prev).unwrap(), term);
    assert_eq!(term, 1 + (prev - 1) / 10);
}

#[test]
fn readers_keep_their_bytes_across_truncation_roll_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            segment_bytes: 4096,
            retention_bytes: Some(1),
            ..small()
        },
    )
    .unwrap();
    for i in 0..30u64 {
        let b = common::batch(i, 1, 300, 0);
        log.append(&b).unwrap();
    }
    let held_active = log.read(log.next_offset() - 2, 1 << 20).unwrap();
    let held_old = log.read(0, 1 << 20).unwrap();
    let copy_active = held_active.to_vec();
    let copy_old = held_old.to_vec();
    log.truncate_from(log.next_offset() - 5).unwrap();
    log.apply_retention().unwrap();
    for i in 0..30u64 {
        let b = common::batch(100 + i, 1, 300, 0);
        log.append(&b).unwrap();
    }
    // Touching every byte must not fault; data of deleted segments is unchanged.
    assert_eq!(held_old.to_vec(), copy_old);
    assert_eq!(held_active.len(), copy_active.len());
    let _sum: u64 = held_active.iter().map(|b| u64::from(*b)).sum();
    drop(held_active);
    log.close().unwrap();
    assert_eq!(held_old.to_vec(), copy_old);
    let log = Log::open(dir.path(), small()).unwrap();
    assert!(log.open_report().clean);
}

#[test]
fn read_respects_max_bytes_and_the_limit_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small()).unwrap();
    let mut sizes = Vec::new();
    for i in 0..20u64 {
        let b = common::batch(i, 1, 100 + 50 * i as usize, 0);
        sizes.push(b.len());
        log.append(&b).unwrap();
    }
    // Always at least one whole batch, even over max_bytes (KIP-74).
    assert_eq!(log.read(5, 1).unwrap().len(), sizes[5]);
    // Otherwise whole batches within max_bytes.
    let want: usize = sizes[5..8].iter().sum();
    assert_eq!(log.read(5, want).unwrap().len(), want);
    assert_eq!(log.read(5, want + sizes[8] - 1).unwrap().len(), want);
    // Never a batch at or past the limit (the high watermark).
    let r = log.read_bounded(5, 1 << 20, 9).unwrap();
    assert_eq!(common::split(&r).last().unwrap().0, 8);
    assert!(log.read_bounded(9, 1 << 20, 9).unwrap().is_empty());
    assert!(log.read(20, 100).unwrap().is_empty());
}

#[test]
fn idle_segment_maps_are_released_and_reads_remap_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            segment_bytes: 4096,
            ..small()
        },
    )
    .unwrap();
    for i in 0..40u64 {
        let b = common::batch(i, 1, 300, 0);
        log.append(&b).unwrap();
    }
    let closed = log.segment_count() - 1;
    let everything = common::read_all(&log, 0);
    // The first call only clears the "used" marks of segments just read.
    assert_eq!(log.release_idle_maps(), 0);
    let held = log.read(0, 100).unwrap().to_vec();
    assert_eq!(
        log.release_idle_maps(),
        closed,
        "every segment but the one just read (the idle active segment too)"
    );
    assert_eq!(log.release_idle_maps(), 1);
    assert_eq!(log.release_idle_maps(), 0);
    // Reads map again and see the same bytes.
    let again = common::read_all(&log, 0);
    assert_eq!(again, everything);
    assert_eq!(log.read(0, 100).unwrap().to_vec(), held);
}

#[test]
fn after_a_clean_stop_damage_is_reported_never_silently_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            segment_bytes: 4096,
            ..small()
        },
    )
    .unwrap();
    let mut positions = Vec::new();
    for i in 0..30u64 {
        let b = common::batch(i, 1, 300, 0);
        let a = log.append(&b).unwrap();
        positions.push((a.raft_index, b.len()));
    }
    // Lookup of term and position by Raft index.
    let seg = log.segments().pop().unwrap();
    let first = log.entry(seg.base_raft_index).unwrap();
    assert_eq!(first.position, 0);
    let second = log.entry(seg.base_raft_index + 1).unwrap();
    assert_eq!(second.position, u64::from(first.length));
    let last_log = seg.path.clone();
    log.close().unwrap();
    let entries = last_log.with_extension("entries");
    std::fs::remove_file(&entries).unwrap();
    let err = Log::open(dir.path(), small()).unwrap_err();
    assert!(
        matches!(err, LogError::Io { .. } | LogError::CorruptFile { .. }),
        "{err}"
    );
    assert!(
        last_log.exists(),
        "a cleanly closed segment must not be deleted"
    );
}

#[test]
fn a_nearly_full_index_rolls_the_segment_and_keeps_the_max_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    // 1024 bytes of time index = 85 entries; one entry per ~100 bytes of log.
    let config = LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 100,
        segment_index_bytes: 1024,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    for i in 0..400u64 {
        let b = common::batch(i, 1, 100, 1_000 + i as i64);
        log.append(&b).unwrap();
    }
    assert!(
        log.segment_count() >= 3,
        "index capacity must roll segments"
    );
    let segs = log.segments();
    log.close().unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    assert!(log.open_report().clean);
    for (before, after) in segs.iter().zip(log.segments()) {
        assert_eq!(
            before.max_timestamp, after.max_timestamp,
            "segment {}",
            before.base_offset
        );
    }
    assert_eq!(log.offset_for_timestamp(1_399).unwrap(), Some(399));
}

#[test]
fn a_prepared_flush_moves_the_watermark_to_what_it_covered_and_never_over_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small()).unwrap();
    assert!(
        log.prepare_flush().unwrap().is_none(),
        "an empty log is durable"
    );
    for i in 0..3 {
        log.append(&common::batch(i, 2, 100, 1000)).unwrap();
    }
    let pending = log
        .prepare_flush()
        .unwrap()
        .expect("three batches to flush");
    assert_eq!(pending.offset(), 6);
    // Appends go on while the sync runs; the watermark covers only what was prepared.
    log.append(&common::batch(3, 2, 100, 1000)).unwrap();
    pending.sync().unwrap();
    assert_eq!(log.complete_flush(pending).unwrap(), 6);
    assert_eq!(log.flushed_offset(), 6);

    let pending = log.prepare_flush().unwrap().expect("one batch to flush");
    assert_eq!(pending.offset(), 8);
    log.truncate_from(4).unwrap();
    log.append(&common::batch(9, 4, 100, 1000)).unwrap();
    pending.sync().unwrap();
    // Offsets 4..8 now hold other entries than the ones the sync covered.
    assert_eq!(log.complete_flush(pending).unwrap(), 4);
    assert_eq!(log.flush().unwrap(), 8);
    assert!(log.prepare_flush().unwrap().is_none());
}

#[test]
fn set_config_refuses_invalid_settings_and_keeps_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small()).unwrap();
    let bad = LogConfig {
        segment_bytes: 1,
        ..small()
    };
    assert!(matches!(
        log.set_config(bad),
        Err(LogError::InvalidArgument(_))
    ));
    assert_eq!(log.config(), &small());
    let smaller = LogConfig {
        max_message_bytes: 100,
        ..small()
    };
    log.set_config(smaller.clone()).unwrap();
    assert_eq!(log.config(), &smaller);
    assert!(matches!(
        log.append(&common::batch(1, 1, 200, 1000)),
        Err(LogError::BatchTooLarge { .. })
    ));
}

/// Reads past `MAP_RESIDENT_BYTES` (process-wide) drop the maps' pages from the process
/// (madvise); the bytes seen afterwards, through slices handed out before and after, are
/// unchanged.
#[test]
fn reads_past_the_resident_limit_see_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut appended = Vec::new();
    // ~75 MiB in one (active) segment: 80 batches of 15 × 64 KiB.
    for i in 0..80u64 {
        let b = common::batch(i, 15, 64 * 1024, 1_700_000_000_000);
        appended.push(common::unpatched(&b));
        log.append(&b).unwrap();
    }
    log.flush().unwrap();
    // Enough passes to cross the limit twice, whatever other tests counted before.
    let passes = 3 * log_store::MAP_RESIDENT_BYTES / log.size_bytes() + 1;
    let first = common::read_all(&log, 0);
    for _ in 1..passes {
        let again = common::read_all(&log, 0);
        assert_eq!(again, first);
    }
    assert_eq!(first.len(), appended.len());
    for (a, want) in first.iter().zip(&appended) {
        assert_eq!(&common::unpatched(&a.1), want);
    }
}

#[test]
fn an_append_stores_the_patched_batch_and_leaves_the_callers_bytes_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small()).unwrap();
    log.append(&common::batch(0, 3, 10, 1_000)).unwrap();
    let b = common::batch(1, 2, 100, 2_000);
    let before = b.clone();
    let info = log.append_with_term(7, &b).unwrap();
    assert_eq!(b, before, "the caller's batch is not modified");
    let stored = log.entry_payload(info.raft_index).unwrap();
    assert_eq!(stored[..], common::as_stored(b, 3, 7)[..]);
    let header = log_store::BatchHeader::parse_validated(&stored).unwrap();
    assert_eq!((header.base_offset, header.partition_leader_epoch), (3, 7));
}

#[test]
fn a_sealed_log_refuses_changes_serves_reads_and_reopens_clean() {
    // A log a Raft group still shares is sealed in place at shutdown: final files and
    // the clean marker, every change refused, reads as before.
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small()).unwrap();
    for i in 0..30 {
        log.append_with_term(1, &common::batch(i, 2, 100, i as i64))
            .unwrap();
    }
    let before = common::read_all(&log, 0);
    log.seal().unwrap();
    log.seal().unwrap();
    let closed = |r: Result<(), LogError>| matches!(r, Err(LogError::Closed { .. }));
    assert!(closed(
        log.append_with_term(1, &common::batch(99, 1, 10, 0))
            .map(|_| ())
    ));
    assert!(closed(log.append_meta(2, EntryKind::Noop, b"").map(|_| ())));
    assert!(closed(log.truncate_from_raft_index(3)));
    assert!(closed(log.roll()));
    assert!(closed(log.delete_before(4).map(|_| ())));
    assert!(closed(log.apply_retention().map(|_| ())));
    assert_eq!(common::read_all(&log, 0), before);
    drop(log);
    let log = Log::open(dir.path(), small()).unwrap();
    assert!(log.open_report().clean);
    assert_eq!(common::read_all(&log, 0), before);
}

#[test]
fn the_end_offset_of_a_term_is_where_the_next_term_began() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(log.end_offset_for_term(1).unwrap(), None, "an empty log");
    // Term 2: offsets 0..6; term 3: only a no-op; term 5: offsets 6..9.
    log.append_meta(2, EntryKind::Noop, b"").unwrap();
    for i in 0..3 {
        log.append_with_term(2, &common::batch(i, 2, 10, 0))
            .unwrap();
    }
    log.append_meta(3, EntryKind::Noop, b"").unwrap();
    log.append_meta(5, EntryKind::Noop, b"").unwrap();
    log.append_with_term(5, &common::batch(9, 3, 10, 0))
        .unwrap();
    let end = |e| log.end_offset_for_term(e).unwrap();
    assert_eq!(end(5), Some((5, 9)), "the latest term ends at the log end");
    assert_eq!(end(6), None, "a term later than any here");
    assert_eq!(
        end(4),
        Some((3, 6)),
        "the largest term at or below, and where 5 began"
    );
    assert_eq!(end(3), Some((3, 6)));
    assert_eq!(end(2), Some((2, 6)));
    assert_eq!(
        end(1),
        Some((1, 0)),
        "older than every entry: where the first began"
    );
}
