//! Test helpers: real Kafka RecordBatch v2 bytes made by the `kafka-protocol` encoder, a
//! Strata log built from them, and a runner for the `strata` binary.
#![allow(dead_code)]

pub mod broker;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use log_store::{Log, LogConfig};

/// A batch of `records` records with values of `value_bytes` bytes; record `i` has key
/// `key-{seed}-{i}` and timestamp `timestamp_ms + i` (see `strata_testkit::keyed_batch`).
pub fn batch(seed: u64, records: usize, value_bytes: usize, timestamp_ms: i64) -> Vec<u8> {
    strata_testkit::keyed_batch(seed, records, value_bytes, timestamp_ms)
}

/// 2023-11-14T22:13:20.000Z.
pub const BASE_TIMESTAMP_MS: i64 = 1_700_000_000_000;
pub const BATCHES: u64 = 30;
pub const RECORDS_PER_BATCH: u64 = 5;
/// Small enough that the log spans several segments.
pub const SEGMENT_BYTES: u64 = 4096;

/// Builds and cleanly closes a log of [`BATCHES`] batches of [`RECORDS_PER_BATCH`]
/// records in `dir`; batch `i` holds offsets `5i..=5i+4` and has timestamps from
/// `BASE_TIMESTAMP_MS + 1000 i`.
pub fn build_log(dir: &Path) {
    let config = LogConfig {
        segment_bytes: SEGMENT_BYTES,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir, config).expect("open a fresh log");
    for i in 0..BATCHES {
        let ts = BASE_TIMESTAMP_MS + 1000 * i as i64;
        let b = batch(i, RECORDS_PER_BATCH as usize, 100, ts);
        let info = log.append(&b).expect("append a valid batch");
        assert_eq!(info.base_offset, i * RECORDS_PER_BATCH);
    }
    assert!(log.segment_count() >= 4, "the test needs several segments");
    log.close().expect("close the log");
}

/// The `.log` files of `dir`, by name (= base offset).
pub fn segment_logs(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list the log directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// The output of one `strata` run.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `strata` binary with `args` (stderr is not a terminal, so no progress bar).
pub fn strata(args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run the strata binary");
    let run = Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "strata panicked: {}",
        run.stderr
    );
    run
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}
