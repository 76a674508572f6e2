//! Criterion benchmarks of log compaction (`log_store::cleaner`):
//!
//! | bench | what one iteration does | compare with |
//! |---|---|---|
//! | `clean_run/{none,zstd}` | `CleanJob::run` over a dirty 256 MiB log of 16 KiB batches (100-byte values, 100 000 keys): map pass, rewrite of every closed segment into the staging directory, fsync | `log_store/read_sequential` + `append_flush_every_1MiB` |
//! | `clean_prepare` | `Log::prepare_clean` on that log (the part under the read lock) | < 100 µs |
//! | `clean_complete` | `Log::complete_clean` of a staged cleaning of that log (the part under the write lock) | a few directory fsyncs per segment |
//!
//! Throughput is the dirty log's size. `run` never changes the live log, so each iteration
//! prepares and runs again on the same dirty log (its pages stay cached after the first);
//! `clean_complete` copies the dirty log to a fresh directory per iteration, untimed.
//! Under `cargo test --benches` the log shrinks to 4 MiB and each routine runs once.
//!
//! Run: `cargo bench -j2 -p strata-benches --bench log_clean`

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use log_store::{Cleaner, Log, LogConfig};
use strata_benches::{scratch_dir, Mode, SplitMix64, BATCH_TIMESTAMP_MS, RECORD_VALUE_BYTES};
use strata_testkit::{encode_batch, Compression, Producer, RecordSpec};
use tempfile::TempDir;

/// Distinct keys the updates are spread over.
const KEYS: u64 = 100_000;
/// Records per produced batch (≈ 16 KiB uncompressed with 100-byte values).
const RECORDS_PER_BATCH: u64 = 120;
/// `segment.bytes` of the bench logs.
const SEGMENT_BYTES: u64 = 16 << 20;
/// Size of the dirty log in a full run.
const FULL_LOG_BYTES: u64 = 256 << 20;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT_BYTES,
        compact: true,
        delete: false,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

/// A closed, never-cleaned log of about `bytes` of keyed updates in a scratch directory.
fn dirty_log(bytes: u64, codec: Compression) -> TempDir {
    let dir = scratch_dir().expect("bench dir is writable");
    let mut log = Log::open(dir.path(), config()).expect("open a fresh log");
    let mut rng = SplitMix64::new(7);
    let value = Bytes::from(vec![b'v'; RECORD_VALUE_BYTES]);
    let producer = Producer {
        id: 7,
        epoch: 0,
        first_sequence: 0,
    };
    let mut written = 0u64;
    let mut n = 0u64;
    while written < bytes {
        let specs: Vec<RecordSpec> = (0..RECORDS_PER_BATCH)
            .map(|i| RecordSpec {
                key: Some(Bytes::from(format!("key-{:08}", rng.next_u64() % KEYS))),
                value: Some(value.clone()),
                timestamp_ms: BATCH_TIMESTAMP_MS + i as i64,
            })
            .collect();
        let b = encode_batch(specs, producer, codec).to_vec();
        log.append(&b).expect("append to a fresh log");
        written += b.len() as u64;
        n += 1;
    }
    log.roll().expect("roll");
    black_box(n);
    log.close().expect("close the log");
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).expect("read the template") {
        let e = e.expect("a directory entry");
        if e.file_type().expect("a file type").is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy a segment file");
        }
    }
}

fn clean(c: &mut Criterion) {
    let mode = Mode::from_args();
    let bytes = match mode {
        Mode::Full => FULL_LOG_BYTES,
        Mode::Smoke => mode.log_bytes(),
    };
    let cleaner = Cleaner::default();
    let mut group = c.benchmark_group("clean_run");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    let mut uncompressed = None;
    for (name, codec) in [("none", Compression::None), ("zstd", Compression::Zstd)] {
        let dir = dirty_log(bytes, codec);
        let log = Log::open(dir.path(), config()).expect("reopen the log");
        let hw = log.next_offset();
        group.throughput(Throughput::Bytes(log.size_bytes()));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let job = log
                        .prepare_clean(hw, BATCH_TIMESTAMP_MS)
                        .expect("prepare")
                        .expect("the log is dirty");
                    let start = Instant::now();
                    let cleaned = job.run(&cleaner).expect("run");
                    total += start.elapsed();
                    black_box(cleaned.outcome());
                }
                total
            })
        });
        drop(log);
        if codec == Compression::None {
            uncompressed = Some(dir);
        }
    }
    group.finish();
    let Some(template) = uncompressed else { return };

    let log = Log::open(template.path(), config()).expect("reopen the log");
    let hw = log.next_offset();
    c.bench_function("clean_prepare", |b| {
        b.iter(|| {
            let job = log.prepare_clean(hw, BATCH_TIMESTAMP_MS).expect("prepare");
            black_box(job.is_some())
        })
    });
    drop(log);

    let mut group = c.benchmark_group("clean_complete");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.bench_function("swap_all_segments", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = scratch_dir().expect("bench dir is writable");
                copy_dir(template.path(), dir.path());
                let mut log = Log::open(dir.path(), config()).expect("open the copy");
                let hw = log.next_offset();
                let job = log
                    .prepare_clean(hw, BATCH_TIMESTAMP_MS)
                    .expect("prepare")
                    .expect("the log is dirty");
                let cleaned = job.run(&cleaner).expect("run");
                drop(job);
                let start = Instant::now();
                let outcome = log.complete_clean(cleaned).expect("complete");
                total += start.elapsed();
                assert!(outcome.applied);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, clean);
criterion_main!(benches);
