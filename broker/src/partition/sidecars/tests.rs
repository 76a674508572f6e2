//! The state a leader loads from sidecars is the state a full read of its log gives:
//! after every pass, after a crash at each step of a sidecar write, after a truncation
//! rewrote the log, and with sidecars damaged or missing.

use std::collections::HashMap;
use std::sync::RwLock;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use log_store::{failpoint, Log, LogConfig, SidecarKind};

use super::{write_missing, SidecarProgress};
use crate::control_batch::{self, Marker, MarkerKind};
use crate::partition::replica_state::{apply_chunk, rebuild, ReplicaState};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        segment_index_bytes: 16 * 1024,
        ..LogConfig::default()
    }
}

/// A data batch of `records` records from producer `pid` at `epoch`, from sequence `seq`.
fn data(pid: i64, epoch: i16, seq: i32, records: usize, transactional: bool) -> Bytes {
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            timestamp: 1_000 + i as i64,
            key: None,
            value: Some(Bytes::from(vec![b'v'; 60])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("uncompressed batch");
    buf.freeze()
}

fn marker(pid: i64, epoch: i16, kind: MarkerKind) -> Bytes {
    let m = Marker {
        kind,
        coordinator_epoch: 3,
    };
    control_batch::encode(pid, epoch, m, 2_000).expect("marker")
}

/// Producers' sequences, for a script of transactions.
#[derive(Default)]
struct Writer {
    next_seq: HashMap<i64, i32>,
    term: u64,
}

impl Writer {
    fn append(&mut self, log: &mut Log, batch: Bytes) {
        log.append_with_term(self.term, &batch).expect("append");
    }

    fn send(&mut self, log: &mut Log, pid: i64, records: usize, transactional: bool) {
        let seq = self.next_seq.entry(pid).or_insert(0);
        let batch = data(pid, 0, *seq, records, transactional);
        *seq += records as i32;
        self.append(log, batch);
    }

    /// `rounds` of: idempotent sends, a committed transaction of producer 10, an
    /// aborted one of producer 11 interleaved with it, and producer 12's long
    /// transaction left open across them (aborted every fourth round).
    fn script(&mut self, log: &mut Log, rounds: usize) {
        for round in 0..rounds {
            self.send(log, 1, 3, false);
            self.send(log, 10, 2, true);
            self.send(log, 11, 2, true);
            self.send(log, 12, 1, true);
            self.send(log, 2, 1, false);
            self.append(log, marker(10, 0, MarkerKind::Commit));
            self.send(log, 11, 1, true);
            self.append(log, marker(11, 0, MarkerKind::Abort));
            if round % 4 == 3 {
                self.append(log, marker(12, 0, MarkerKind::Abort));
            }
        }
    }
}

/// The state a full read of `log` from its start gives, as comparable JSON (the
/// producer snapshot's fields plus the aborted transactions).
fn full_read(log: &Log) -> serde_json::Value {
    let mut state = ReplicaState::default();
    let mut offset = log.log_start_offset();
    while let Some(next) = apply_chunk(&mut state, log.read(offset, 1 << 20).unwrap()).unwrap() {
        offset = next;
    }
    comparable(&state)
}

/// The state as JSON, with the ended transactions a high watermark past every marker
/// has made stable dropped (the writer drops them below its high watermark).
fn comparable(state: &ReplicaState) -> serde_json::Value {
    let aborted = serde_json::to_value(state.txns.aborted_after(0)).unwrap();
    let mut copy: ReplicaState =
        serde_json::from_value(serde_json::to_value(state).unwrap()).unwrap();
    copy.txns.last_stable_offset(u64::MAX);
    serde_json::json!({
        "snapshot": serde_json::to_value(&copy).unwrap(),
        "aborted": aborted,
    })
}

/// A log of several segments with the script written to it.
fn scripted(dir: &std::path::Path, rounds: usize) -> (RwLock<Log>, Writer) {
    let mut log = Log::open(dir, config()).unwrap();
    let mut w = Writer {
        term: 1,
        ..Writer::default()
    };
    w.script(&mut log, rounds);
    assert!(log.segment_count() >= 5, "{} segments", log.segment_count());
    (RwLock::new(log), w)
}

/// Rebuilds the leader's state: it equals a full read; returns the offset it read from.
fn assert_rebuild_matches(log: &Log) -> u64 {
    let (state, from, _) = rebuild(log).unwrap();
    assert_eq!(comparable(&state), full_read(log));
    from
}

fn active_base(log: &Log) -> u64 {
    log.segments().last().unwrap().base_offset
}

#[test]
fn a_leader_reads_only_the_active_segment_once_the_sidecars_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = scripted(dir.path(), 13);
    assert_eq!(assert_rebuild_matches(&log.read().unwrap()), 0);
    let (full, _, _) = rebuild(&log.read().unwrap()).unwrap();
    assert_eq!(full.txns.aborted_count(), 13 + 3, "11's and 12's aborts");
    assert!(full.txns.is_open(12) && full.producers.len() == 5);
    let progress = SidecarProgress::default();
    let closed = log.read().unwrap().segment_count() - 1;
    assert_eq!(
        write_missing(&log, &progress, u64::MAX).unwrap(),
        2 * closed
    );
    let log_now = log.read().unwrap();
    let (_, _, read_bytes) = rebuild(&log_now).unwrap();
    assert_eq!(assert_rebuild_matches(&log_now), active_base(&log_now));
    let active = log_now.segments().last().unwrap().size_bytes;
    assert_eq!(read_bytes, active);
    drop(log_now);
    assert_eq!(
        write_missing(&log, &progress, u64::MAX).unwrap(),
        0,
        "nothing new"
    );
}

#[test]
fn later_passes_write_only_the_newly_closed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut w) = scripted(dir.path(), 8);
    let progress = SidecarProgress::default();
    write_missing(&log, &progress, u64::MAX).unwrap();
    let before = log.read().unwrap().segment_count();
    w.script(&mut log.write().unwrap(), 4);
    let rolled = log.read().unwrap().segment_count() - before;
    assert!(rolled > 0);
    assert_eq!(
        write_missing(&log, &progress, u64::MAX).unwrap(),
        2 * rolled
    );
    let log = log.read().unwrap();
    assert_eq!(assert_rebuild_matches(&log), active_base(&log));
}

#[test]
fn a_crash_at_each_step_of_a_sidecar_write_costs_only_a_read() {
    for point in failpoint::SIDECAR_POINTS {
        for skip in [0, 1, 4] {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = scripted(dir.path(), 10);
            failpoint::arm(point, skip);
            assert!(write_missing(&log, &SidecarProgress::default(), u64::MAX).is_err());
            assert_eq!(failpoint::take_fired(), vec![*point]);
            // The process dies: no close. A power loss may tear the unsynced staged file.
            drop(log);
            for e in std::fs::read_dir(dir.path()).unwrap() {
                let path = e.unwrap().path();
                if path.to_string_lossy().ends_with(".tmp") && path.metadata().unwrap().len() > 4 {
                    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                    f.set_len(path.metadata().unwrap().len() / 2).unwrap();
                }
            }
            let log = RwLock::new(Log::open(dir.path(), config()).unwrap());
            let from = assert_rebuild_matches(&log.read().unwrap());
            assert!(from < active_base(&log.read().unwrap()), "{point} {skip}");
            assert!(write_missing(&log, &SidecarProgress::default(), u64::MAX).unwrap() > 0);
            let log = log.read().unwrap();
            assert_eq!(
                assert_rebuild_matches(&log),
                active_base(&log),
                "{point} {skip}"
            );
        }
    }
}

#[test]
fn sidecars_of_a_rewritten_log_are_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut w) = scripted(dir.path(), 12);
    let progress = SidecarProgress::default();
    write_missing(&log, &progress, u64::MAX).unwrap();
    {
        // A new leader's term replaces the log from inside the third segment with
        // different transactions.
        let mut log = log.write().unwrap();
        let third = log.segments()[2].clone();
        log.truncate_from_raft_index(third.base_raft_index + 3)
            .unwrap();
        w.term = 2;
        for _ in 0..30 {
            w.send(&mut log, 11, 2, true);
            w.append(&mut log, marker(11, 0, MarkerKind::Abort));
            w.send(&mut log, 1, 1, false);
        }
        assert!(log.segment_count() > 4);
        let from = assert_rebuild_matches(&log);
        assert!(from <= third.base_offset, "read from {from}");
    }
    assert!(write_missing(&log, &progress, u64::MAX).unwrap() > 0);
    let log = log.read().unwrap();
    assert_eq!(assert_rebuild_matches(&log), active_base(&log));
}

#[test]
fn a_damaged_or_missing_sidecar_moves_the_start_back() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = scripted(dir.path(), 12);
    write_missing(&log, &SidecarProgress::default(), u64::MAX).unwrap();
    let log = log.read().unwrap();
    let segs = log.segments();
    let n = segs.len();
    // The newest snapshot damaged: the one before it is used.
    let newest = SidecarKind::Snapshot.path(dir.path(), segs[n - 1].base_offset);
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[40] ^= 0x20;
    std::fs::write(&newest, bytes).unwrap();
    assert_eq!(assert_rebuild_matches(&log), segs[n - 2].base_offset);
    // A .txnindex missing in the middle: the run of indexes ends there.
    std::fs::remove_file(SidecarKind::TxnIndex.path(dir.path(), segs[2].base_offset)).unwrap();
    assert_eq!(assert_rebuild_matches(&log), segs[2].base_offset);
    // Everything gone: a full read.
    for seg in &segs {
        for kind in SidecarKind::ALL {
            let _ = std::fs::remove_file(kind.path(dir.path(), seg.base_offset));
        }
    }
    assert_eq!(assert_rebuild_matches(&log), 0);
}

#[test]
fn producers_outlive_the_segments_retention_removes() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut w) = scripted(dir.path(), 12);
    w.send(&mut log.write().unwrap(), 77, 2, false);
    w.script(&mut log.write().unwrap(), 6);
    write_missing(&log, &SidecarProgress::default(), u64::MAX).unwrap();
    let mut log = log.write().unwrap();
    let segs = log.segments();
    log.delete_before(segs[segs.len() - 2].base_offset).unwrap();
    let (state, from, _) = rebuild(&log).unwrap();
    assert_eq!(from, active_base(&log));
    assert_eq!(
        state.producers.epoch_of(77),
        Some(0),
        "producer 77's only batch is gone, its sequence is not"
    );
}

#[test]
fn a_log_start_inside_a_segment_is_not_read_past() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut w) = scripted(dir.path(), 12);
    write_missing(&log, &SidecarProgress::default(), u64::MAX).unwrap();
    let mut log = log.write().unwrap();
    // DeleteRecords to the middle of the active segment: its snapshot (the state at its
    // base) is below the log start, and the batches between cannot be read any more, so
    // the state is that of the batches from the log start on, as a full read gives.
    let active = log.segments().last().unwrap().clone();
    let mid = (active.base_offset + active.next_offset) / 2;
    assert!(mid > active.base_offset);
    log.delete_before(mid).unwrap();
    assert_eq!(log.log_start_offset(), mid);
    assert_eq!(assert_rebuild_matches(&log), mid, "read from the log start");
    w.script(&mut log, 3);
    drop(log);
    let log = RwLock::new(Log::open(dir.path(), config()).unwrap());
    write_missing(&log, &SidecarProgress::default(), u64::MAX).unwrap();
    let log = log.read().unwrap();
    assert_eq!(assert_rebuild_matches(&log), active_base(&log));
}
