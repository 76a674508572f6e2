//! Test helpers: real Kafka RecordBatch v2 bytes made by the `kafka-protocol` encoder.
#![allow(dead_code)]

use bytes::Bytes;

/// A log that rolls every 4 KiB, with an index entry every 256 bytes: many segments
/// from a few batches.
pub fn four_kib_segments() -> log_store::LogConfig {
    log_store::LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        segment_index_bytes: 16 * 1024,
        ..log_store::LogConfig::default()
    }
}

/// A batch of `records` records with values of `value_bytes` bytes; record `i` has key
/// `key-{seed}-{i}` and timestamp `timestamp_ms + i` (see `strata_testkit::keyed_batch`).
pub fn batch(seed: u64, records: usize, value_bytes: usize, timestamp_ms: i64) -> Vec<u8> {
    strata_testkit::keyed_batch(seed, records, value_bytes, timestamp_ms)
}

/// `batch` as the log stores it once appended at `base_offset` in `term`: baseOffset
/// (bytes 0..8) and partitionLeaderEpoch (12..16) set, the rest as given.
pub fn as_stored(mut batch: Vec<u8>, base_offset: u64, term: u64) -> Vec<u8> {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
    let epoch = i32::try_from(term).unwrap_or(i32::MAX);
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
    batch
}

/// Splits log bytes into (base offset, batch bytes) pairs.
pub fn split(bytes: &Bytes) -> Vec<(u64, Bytes)> {
    log_store::Batches::new(bytes.clone())
        .map(|r| {
            let (h, b) = r.expect("log returned a malformed batch");
            (h.base_offset as u64, b)
        })
        .collect()
}

/// Reads the whole log from `from` as (base offset, batch bytes) pairs.
pub fn read_all(log: &log_store::Log, from: u64) -> Vec<(u64, Bytes)> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let bytes = log.read(offset, 1 << 20).expect("read within range");
        if bytes.is_empty() {
            break;
        }
        for (base, b) in split(&bytes) {
            let h = log_store::BatchHeader::parse_validated(&b).expect("valid stored batch");
            offset = h.last_offset() as u64 + 1;
            out.push((base, b));
        }
    }
    out
}

/// The batch bytes with the fields the log patches (base offset, leader epoch) zeroed, for
/// comparing what was appended with what is read back.
pub fn unpatched(b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    v[0..8].fill(0);
    v[12..16].fill(0);
    v
}

/// One appended Raft entry, as a test remembers it.
#[derive(Debug, Clone)]
pub struct Appended {
    pub raft_index: u64,
    pub term: u64,
    pub kind: log_store::EntryKind,
    /// The batch as stored (data) or the payload (non-data).
    pub bytes: Vec<u8>,
}

/// Checks that `log` holds the entries `want` (Raft index, term, kind and bytes of each)
/// and that a reader from offset 0 gets exactly their batches.
pub fn assert_holds(log: &log_store::Log, want: &[Appended]) {
    for a in want {
        let info = log.entry(a.raft_index).unwrap();
        assert_eq!(
            (info.term, info.kind),
            (a.term, a.kind),
            "entry {}",
            a.raft_index
        );
        let payload = log.entry_payload(a.raft_index).unwrap();
        assert!(payload[..] == a.bytes[..], "entry {} differs", a.raft_index);
    }
    let data: Vec<&Appended> = want.iter().filter(|a| a.kind.is_data()).collect();
    let read = read_all(log, 0);
    assert_eq!(read.len(), data.len());
    for ((_, got), a) in read.iter().zip(&data) {
        assert!(
            got[..] == a.bytes[..],
            "batch of entry {} differs",
            a.raft_index
        );
    }
}

/// Copies the files of `src` (no subdirectories) into `dst`, created if needed: a trial
/// damages the copy of a log built once.
pub fn copy_dir(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}
