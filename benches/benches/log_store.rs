//! Criterion benchmarks of `log-store`'s hot paths, each against the machine limit it
//! should approach (measured by `benches/log_store_limits.sh` on the same filesystem):
//!
//! | bench | what one iteration does | limit |
//! |---|---|---|
//! | `append_no_fsync` | append 1 GiB of ~16 KiB batches to a fresh log | dd page-cache write |
//! | `append_flush_every_1MiB` | the same, `flush()` every ~1 MiB; also with ~1 MiB batches | dd `conv=fdatasync` |
//! | `append_raft_entry` | append 256 MiB of ~16 KiB batches as Raft entries, CRC-32C checked or vouched for (a leader's own proposal) | the vouched twin |
//! | `read_sequential` | read a 1 GiB log start to end, 1 MiB reads split into batches | dd page-cache read |
//! | `lookup` | `read(random offset, 1)` in a 1 GiB log: the first batch at an offset | < 1 µs |
//! | `reopen_1MiB_segments` | `Log::open` of a 1 GiB log of 1 MiB segments, clean and unclean | < 50 / 500 ms |
//! | `roll` | roll a segment whose 64 KiB are flushed: `roll()` alone (what appends wait for), and `roll()` then the `flush()` that makes it durable | the sync of a few small files |
//!
//! Each append benchmark has a `baseline_pwrite_*` twin that writes the same bytes to a
//! plain file (and `fdatasync`s at the same points): the limit measured in-process, which
//! on a noisy VM is a steadier reference than `dd` run at another moment.
//!
//! Log creation, closing and deletion stay outside the timed region (`iter_custom`).
//! Data goes under `STRATA_BENCH_DIR` (default: the system temp dir). Under
//! `cargo test --benches` every size shrinks to 4 MiB and criterion runs each routine
//! once, as a smoke test.
//!
//! Run: `cargo bench -j2 -p strata-benches --bench log_store`

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use log_store::{Log, LogConfig};
use strata_benches::{
    append_copies, batches_per_flush, large_batch, pwrite_copies, read_all, scratch_dir,
    small_batch, tiny_batch, Mode, SplitMix64,
};
use tempfile::TempDir;

/// Appends between flushes in the durable-append benchmark.
const FLUSH_EVERY_BYTES: u64 = 1 << 20;
/// `max_bytes` of each read in the sequential-read benchmark (Kafka's default
/// `max.partition.fetch.bytes`).
const READ_MAX_BYTES: usize = 1 << 20;
/// `segment.bytes` of the log the reopen benchmarks open: 1 GiB makes 1024 segments.
const REOPEN_SEGMENT_BYTES: u64 = 1 << 20;
/// Random offsets the lookup benchmark cycles through.
const LOOKUP_OFFSETS: usize = 1 << 16;

/// Settings for the benchmarks whose iteration moves a whole log (seconds each): few flat
/// samples, so a full run takes minutes.
fn heavy<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group
}

/// A log of `batches` copies of `batch` in a fresh scratch directory, closed cleanly, so
/// a benchmark starts from data already on disk (and, at these sizes, in the page cache).
fn closed_log(config: LogConfig, batch: &mut [u8], batches: u64) -> TempDir {
    let dir = scratch_dir().expect("bench dir is writable");
    let mut log = Log::open(dir.path(), config).expect("open a fresh log");
    append_copies(&mut log, batch, batches, None).expect("append to a fresh log");
    log.close().expect("close the log");
    dir
}

/// Runs `append` once per iteration in a fresh scratch directory, timing only what it
/// reports (it times its own loop); creating and deleting the 1 GiB of files is not timed.
fn time_in_fresh_dirs(iters: u64, mut append: impl FnMut(&Path) -> Duration) -> Duration {
    (0..iters)
        .map(|_| {
            let dir = scratch_dir().expect("bench dir is writable");
            append(dir.path())
        })
        .sum()
}

/// Benchmarks appending `batch` copies worth `total_bytes` to a fresh log per iteration,
/// flushing every `flush_every_batches` when `Some`, next to the same writes done with bare
/// `pwrite` (+ `fdatasync`) on a plain file: the limit measured in the same process, at
/// the same moment, so the VM's noise hits both alike.
fn bench_append(
    group: &mut BenchmarkGroup<'_, WallTime>,
    label: &str,
    mut batch: Vec<u8>,
    total_bytes: u64,
    flush_every_batches: Option<u64>,
) {
    let batches = total_bytes / batch.len() as u64;
    group.throughput(Throughput::Bytes(batches * batch.len() as u64));
    group.bench_function(format!("log_{label}"), |b| {
        b.iter_custom(|iters| {
            time_in_fresh_dirs(iters, |dir| {
                let mut log = Log::open(dir, LogConfig::default()).expect("open a log");
                let start = Instant::now();
                let appended = append_copies(&mut log, &mut batch, batches, flush_every_batches)
                    .expect("append");
                let elapsed = start.elapsed();
                black_box(appended);
                // Unclean drop: no closing fsync; the directory is deleted right after.
                drop(log);
                elapsed
            })
        })
    });
    group.bench_function(format!("baseline_pwrite_{label}"), |b| {
        b.iter_custom(|iters| {
            time_in_fresh_dirs(iters, |dir| {
                let path = dir.join("baseline.bin");
                let file = std::fs::File::create(&path).expect("create a file");
                let start = Instant::now();
                let written =
                    pwrite_copies(&file, &batch, batches, flush_every_batches).expect("write");
                let elapsed = start.elapsed();
                black_box(written);
                elapsed
            })
        })
    });
}

fn append(c: &mut Criterion) {
    let total = Mode::from_args().log_bytes();
    let mut group = heavy(c, "append_no_fsync");
    bench_append(&mut group, "16KiB_batches", small_batch(), total, None);
    group.finish();

    let mut group = heavy(c, "append_flush_every_1MiB");
    for (label, batch) in [
        ("16KiB_batches", small_batch()),
        ("1MiB_batches", large_batch()),
    ] {
        let every = batches_per_flush(FLUSH_EVERY_BYTES, batch.len());
        bench_append(&mut group, label, batch, total, Some(every));
    }
    group.finish();
}

/// A Raft entry's append with its CRC-32C computed (a follower's) and without (a
/// leader's own proposal, checked when proposed): what the one check per batch saves.
fn append_raft_entry(c: &mut Criterion) {
    let total = Mode::from_args().log_bytes() / 4;
    let batch = small_batch();
    let batches = total / batch.len() as u64;
    let mut group = heavy(c, "append_raft_entry");
    group.throughput(Throughput::Bytes(batches * batch.len() as u64));
    for vouched in [false, true] {
        let label = if vouched { "vouched" } else { "crc_checked" };
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                time_in_fresh_dirs(iters, |dir| {
                    let mut log = Log::open(dir, LogConfig::default()).expect("open a log");
                    let start = Instant::now();
                    for _ in 0..batches {
                        let info = if vouched {
                            log.append_vouched(1, &batch)
                        } else {
                            log.append_replicated(1, &batch)
                        };
                        black_box(info.expect("append"));
                    }
                    let elapsed = start.elapsed();
                    drop(log);
                    elapsed
                })
            })
        });
    }
    group.finish();
}

/// A closed 1 GiB log of 16 KiB batches in one segment, opened and read once, so its
/// pages are in the page cache and mapped: reads measure the steady state of a hot log.
struct ReadFixture {
    log: Log,
    bytes: u64,
    batches: u64,
    _dir: TempDir,
}

impl ReadFixture {
    fn build(total_bytes: u64) -> ReadFixture {
        let mut batch = small_batch();
        let batches = total_bytes / batch.len() as u64;
        let dir = closed_log(LogConfig::default(), &mut batch, batches);
        let log = Log::open(dir.path(), LogConfig::default()).expect("reopen the log");
        let seen = read_all(&log, READ_MAX_BYTES).expect("read the log");
        assert_eq!(seen, (batches, log.size_bytes()), "read back the whole log");
        ReadFixture {
            bytes: log.size_bytes(),
            batches,
            log,
            _dir: dir,
        }
    }
}

fn read(c: &mut Criterion) {
    let total = Mode::from_args().log_bytes();
    // Built on first use, so a filter that skips both benchmarks skips the 1 GiB build.
    let fixture = std::cell::OnceCell::new();
    let build = || ReadFixture::build(total);

    let mut group = heavy(c, "read_sequential");
    // The throughput is the log's size, known only once it is built: the same arithmetic.
    let batch_len = small_batch().len() as u64;
    group.throughput(Throughput::Bytes(total / batch_len * batch_len));
    group.bench_function("1MiB_reads_split_into_batches", |b| {
        let fx: &ReadFixture = fixture.get_or_init(build);
        b.iter(|| {
            let seen = read_all(&fx.log, READ_MAX_BYTES).expect("read the log");
            assert_eq!(seen, (fx.batches, fx.bytes), "read back the whole log");
            seen
        })
    });
    group.finish();

    let mut group = c.benchmark_group("lookup");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("read_first_batch_at_random_offset", |b| {
        let fx: &ReadFixture = fixture.get_or_init(build);
        let mut rng = SplitMix64::new(0x5EED);
        let next = fx.log.next_offset();
        let offsets: Vec<u64> = (0..LOOKUP_OFFSETS).map(|_| rng.below(next)).collect();
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % offsets.len();
            fx.log
                .read(black_box(offsets[i]), 1)
                .expect("offset is in range")
        })
    });
    group.finish();
}

/// A closed log of ~1 GiB in 1 MiB segments whose last (active) segment has room for a
/// small batch, so the unclean benchmark's recovery validates a nearly full segment.
struct ReopenFixture {
    dir: TempDir,
    config: LogConfig,
    /// `next_offset()` of the fixture log: where the unclean benchmark's extra batch goes.
    end_offset: u64,
    segments: usize,
}

impl ReopenFixture {
    fn build(total_bytes: u64) -> ReopenFixture {
        let config = LogConfig {
            segment_bytes: REOPEN_SEGMENT_BYTES,
            ..LogConfig::default()
        };
        let mut batch = small_batch();
        let per_segment = REOPEN_SEGMENT_BYTES / batch.len() as u64;
        let segments = (total_bytes / REOPEN_SEGMENT_BYTES).max(1);
        // One batch short of full segments: the last segment keeps room for a small batch.
        let batches = segments * per_segment - 1;
        let dir = closed_log(config.clone(), &mut batch, batches);
        let log = Log::open(dir.path(), config.clone()).expect("reopen the log");
        let (end_offset, segments) = (log.next_offset(), log.segment_count());
        log.close().expect("close the log");
        ReopenFixture {
            dir,
            config,
            end_offset,
            segments,
        }
    }

    fn open(&self) -> Log {
        Log::open(self.dir.path(), self.config.clone()).expect("reopen the log")
    }

    /// Leaves the log as a crash would after an append: one unflushed batch past the
    /// checkpoint, no clean-shutdown marker. The batch a previous call added is cut
    /// first, so the log is the same at every iteration.
    fn crash_after_append(&self, mut log: Log, batch: &mut [u8]) {
        log.truncate_from(self.end_offset)
            .expect("cut the previous extra batch");
        log.append(batch).expect("append");
        drop(log);
    }
}

fn reopen(c: &mut Criterion) {
    let total = Mode::from_args().log_bytes();
    // Built on first use, like the read fixture.
    let fixture = std::cell::OnceCell::new();
    let build = || ReopenFixture::build(total);

    let mut group = c.benchmark_group("reopen_1MiB_segments");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("clean", |b| {
        let fx: &ReopenFixture = fixture.get_or_init(build);
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let log = fx.open();
                timed += start.elapsed();
                assert!(log.open_report().clean, "the previous run closed the log");
                assert_eq!(log.segment_count(), fx.segments);
                log.close().expect("close the log");
            }
            timed
        })
    });
    group.bench_function("unclean", |b| {
        let fx: &ReopenFixture = fixture.get_or_init(build);
        let mut tiny = tiny_batch();
        b.iter_custom(|iters| {
            fx.crash_after_append(fx.open(), &mut tiny);
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let log = fx.open();
                timed += start.elapsed();
                let report = log.open_report();
                assert!(
                    !report.clean && report.recovered_segments == 1,
                    "{report:?}"
                );
                assert_eq!(log.segment_count(), fx.segments);
                fx.crash_after_append(log, &mut tiny);
            }
            timed
        })
    });
    group.finish();
}

/// Data in each segment the roll benchmark closes (flushed before the timed roll).
const ROLL_SEGMENT_BYTES: u64 = 64 * 1024;

/// A roll of a segment whose data is already flushed (as the replication path keeps it),
/// timed alone, which is what the append lock is held for, and followed by the flush
/// that syncs the closed segment, the directory and the checkpoint: the work a roll
/// used to do under the lock.
fn roll(c: &mut Criterion) {
    let mut group = c.benchmark_group("roll");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(2));
    let batch = small_batch();
    let per_segment = (ROLL_SEGMENT_BYTES / batch.len() as u64).max(1);
    for with_flush in [false, true] {
        let label = if with_flush {
            "roll_then_flush"
        } else {
            "roll"
        };
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let dir = scratch_dir().expect("bench dir is writable");
                let mut log = Log::open(dir.path(), LogConfig::default()).expect("open a log");
                let mut batch = batch.clone();
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    append_copies(&mut log, &mut batch, per_segment, None).expect("append");
                    log.flush().expect("flush");
                    let start = Instant::now();
                    log.roll().expect("roll");
                    if with_flush {
                        log.flush().expect("flush");
                    }
                    timed += start.elapsed();
                    log.flush().expect("flush");
                }
                timed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, append, append_raft_entry, read, reopen, roll);
criterion_main!(benches);
