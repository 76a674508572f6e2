//! `max.compaction.lag.ms` (KIP-354): a compacted log holding a dirty record older than
//! the lag is due a cleaning whatever its dirty ratio, and its active segment rolls once
//! its first batch is that old, so such records reach a segment a cleaning may rewrite.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use log_store::{Cleaner, Clock, Log, LogConfig, ManualClock};
use strata_testkit::{encode_batch, Compression, RecordSpec, NO_PRODUCER};

const T0_MS: i64 = 1_700_000_000_000;
const LAG_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// Compacted, a dirty ratio that a few dirty segments never reach, and a short max lag.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        compact: true,
        delete: false,
        min_cleanable_dirty_ratio: 0.99,
        max_compaction_lag_ms: LAG_MS,
        ..LogConfig::default()
    }
}

fn keyed(key: &str, value: &str, timestamp_ms: i64) -> Bytes {
    let spec = RecordSpec {
        key: Some(Bytes::copy_from_slice(key.as_bytes())),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        timestamp_ms,
    };
    encode_batch([spec], NO_PRODUCER, Compression::None).freeze()
}

/// Whether `prepare_clean` offers a cleaning of everything up to the log end at `now_ms`
/// (the job is dropped, releasing the log).
fn due(log: &Log, now_ms: i64) -> bool {
    log.prepare_clean(log.next_offset(), now_ms)
        .unwrap()
        .is_some()
}

/// The number of records a consumer reads from the log start.
fn record_count(log: &Log) -> usize {
    common::read_all(log, log.log_start_offset())
        .into_iter()
        .map(|(_, mut batch)| {
            kafka_protocol::records::RecordBatchDecoder::decode(&mut batch)
                .expect("a stored batch decodes")
                .records
                .len()
        })
        .sum()
}

fn clean(log: &mut Log, now_ms: i64) {
    let job = log
        .prepare_clean(log.next_offset(), now_ms)
        .unwrap()
        .expect("a cleaning is due");
    let cleaned = job.run(&Cleaner::default()).unwrap();
    drop(job);
    assert!(log.complete_clean(cleaned).unwrap().applied);
}

/// A log whose first segments were cleaned (40 distinct keys, so the clean section stays
/// large) followed by one closed dirty segment written at `dirty_ms`.
fn log_with_an_old_dirty_segment(dir: &std::path::Path, clock: Arc<ManualClock>) -> Log {
    let mut log = Log::open_with_clock(dir, config(), clock.clone()).unwrap();
    for i in 0..40 {
        log.append(&keyed(&format!("k{i}"), &format!("first-{i}"), T0_MS))
            .unwrap();
    }
    log.roll().unwrap();
    // Everything is dirty: the ratio (1.0) triggers the first cleaning.
    clean(&mut log, clock.now_ms());
    assert_eq!(log.first_dirty_offset(), log.next_offset());
    let dirty_ms = clock.now_ms();
    for i in 0..2 {
        log.append(&keyed(&format!("k{i}"), "second", dirty_ms))
            .unwrap();
    }
    log.roll().unwrap();
    log
}

#[test]
fn a_dirty_record_past_the_max_lag_is_due_a_cleaning_whatever_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let mut log = log_with_an_old_dirty_segment(dir.path(), clock.clone());
    let dirty_ms = clock.now_ms();
    assert!(!due(&log, dirty_ms), "the ratio alone is not reached");
    clock.set_ms(dirty_ms + LAG_MS);
    assert!(!due(&log, clock.now_ms()), "not before the lag has passed");
    clock.advance_ms(1);
    assert!(due(&log, clock.now_ms()), "due once the lag has passed");
    // Without a max lag (Kafka's default) the ratio alone decides, however old.
    log.set_config(LogConfig {
        max_compaction_lag_ms: i64::MAX,
        ..config()
    })
    .unwrap();
    assert!(!due(&log, dirty_ms + DAY_MS));
    log.set_config(config()).unwrap();
    assert_eq!(record_count(&log), 42);
    clean(&mut log, clock.now_ms());
    assert_eq!(record_count(&log), 40, "the superseded values went");
    assert_eq!(log.first_dirty_offset(), log.next_offset());
    assert!(!due(&log, clock.now_ms() + DAY_MS), "nothing dirty is left");
}

#[test]
fn min_compaction_lag_still_holds_back_a_segment_past_the_max_lag() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let mut log = log_with_an_old_dirty_segment(dir.path(), clock.clone());
    // The dirty segment's newest record is younger than min.compaction.lag.ms, so it is
    // not rewritable yet, and the max lag (here equal) starts nothing.
    log.set_config(LogConfig {
        min_compaction_lag_ms: LAG_MS,
        ..config()
    })
    .unwrap();
    let dirty_ms = clock.now_ms();
    assert!(!due(&log, dirty_ms + LAG_MS - 1));
    assert!(due(&log, dirty_ms + LAG_MS + 1));
}

#[test]
fn the_active_segment_of_a_compacted_log_rolls_at_the_max_lag() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let mut log = Log::open_with_clock(dir.path(), config(), clock).unwrap();
    log.append(&keyed("k", "a", T0_MS)).unwrap();
    log.append(&keyed("k", "b", T0_MS + LAG_MS - 1)).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&keyed("k", "c", T0_MS + LAG_MS)).unwrap();
    assert_eq!(log.segment_count(), 2, "rolled at max.compaction.lag.ms");
    // A log that is not compacted rolls by segment.ms alone.
    let dir = tempfile::tempdir().unwrap();
    let delete_only = LogConfig {
        compact: false,
        delete: true,
        ..config()
    };
    let mut log = Log::open(dir.path(), delete_only).unwrap();
    log.append(&keyed("k", "a", T0_MS)).unwrap();
    log.append(&keyed("k", "b", T0_MS + LAG_MS)).unwrap();
    assert_eq!(log.segment_count(), 1);
}
