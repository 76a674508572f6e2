//! Shared helpers for Strata's criterion benchmarks (`benches/benches/*.rs`).
//!
//! Batches are real Kafka RecordBatch v2 bytes made by the `kafka-protocol` encoder, as a
//! producer would send them, so the log validates and stores exactly what it would in
//! production. Bench data lives in a scratch directory under `STRATA_BENCH_DIR` (default:
//! the system temp dir), which `benches/log_store_limits.sh` measures too, so every
//! figure can be read as a ratio of what that filesystem can do.

use std::path::PathBuf;

use bytes::Bytes;
use log_store::{Log, Result};
use strata_testkit::{encode_batch, Compression, Producer, RecordSpec};

/// Size of a typical producer batch (Kafka's `batch.size` defaults to 16 KiB).
pub const SMALL_BATCH_BYTES: usize = 16 * 1024;
/// The largest batch the default `max.message.bytes` (1 MiB + 12) accepts, rounded down.
pub const LARGE_BATCH_BYTES: usize = 1 << 20;
/// Value size of every record in the bench batches.
pub const RECORD_VALUE_BYTES: usize = 100;
/// Timestamp of the first record of every bench batch; fixed, so `segment.ms` never rolls.
pub const BATCH_TIMESTAMP_MS: i64 = 1_700_000_000_000;
/// Environment variable naming the directory bench data goes in.
pub const BENCH_DIR_ENV: &str = "STRATA_BENCH_DIR";

/// How much data the benches move: the full sizes under `cargo bench`, tiny ones under
/// `cargo test --benches` (CI's smoke run, which must stay fast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Smoke,
}

impl Mode {
    /// `cargo bench` passes `--bench` to a `harness = false` bench binary and
    /// `cargo test --benches` does not; `--test` asks criterion for a smoke run even under
    /// `cargo bench`. Anything else is left to criterion's own argument parsing.
    pub fn from_args() -> Mode {
        let mut bench = false;
        let mut test = false;
        for arg in std::env::args().skip(1) {
            bench |= arg == "--bench";
            test |= arg == "--test";
        }
        if bench && !test {
            Mode::Full
        } else {
            Mode::Smoke
        }
    }

    /// Bytes a throughput benchmark moves per iteration, and the size of the logs the read,
    /// lookup and reopen benchmarks build: 1 GiB, or 4 MiB in a smoke run.
    pub fn log_bytes(self) -> u64 {
        match self {
            Mode::Full => 1 << 30,
            Mode::Smoke => 4 << 20,
        }
    }
}

/// An uncompressed RecordBatch v2 of as many records with `value_bytes`-byte values (and
/// no key) as fit in `max_batch_bytes`; its length is at most `max_batch_bytes`. Record
/// `i` has timestamp `BATCH_TIMESTAMP_MS + i` and producer id 7, sequence `i`.
///
/// Panics when not even one record fits, or when the encoder fails (it cannot for
/// uncompressed records): both are mistakes in the bench, not conditions to handle.
pub fn record_batch(max_batch_bytes: usize, value_bytes: usize) -> Vec<u8> {
    let value = Bytes::from(
        (0..value_bytes)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    );
    let encode = |records: usize| -> Vec<u8> {
        let specs = (0..records).map(|i| RecordSpec {
            key: None,
            value: Some(value.clone()),
            timestamp_ms: BATCH_TIMESTAMP_MS + i as i64,
        });
        let producer = Producer {
            id: 7,
            epoch: 0,
            first_sequence: 0,
        };
        encode_batch(specs, producer, Compression::None).to_vec()
    };
    // Records grow with their varint offset and timestamp deltas, so the cost of the
    // second record bounds the count from above; binary search down from there.
    let one = encode(1).len();
    assert!(
        one <= max_batch_bytes,
        "a single {value_bytes}-byte record ({one} bytes) exceeds {max_batch_bytes}"
    );
    let per_record = encode(2).len() - one;
    let (mut fits, mut too_many) = (1, 2 + (max_batch_bytes - one) / per_record);
    while too_many - fits > 1 {
        let mid = fits + (too_many - fits) / 2;
        if encode(mid).len() <= max_batch_bytes {
            fits = mid;
        } else {
            too_many = mid;
        }
    }
    encode(fits)
}

/// A ~16 KiB batch of 100-byte values: what a producer with default settings sends.
pub fn small_batch() -> Vec<u8> {
    record_batch(SMALL_BATCH_BYTES, RECORD_VALUE_BYTES)
}

/// A ~1 MiB batch of 100-byte values: the largest the default `max.message.bytes` takes.
pub fn large_batch() -> Vec<u8> {
    record_batch(LARGE_BATCH_BYTES, RECORD_VALUE_BYTES)
}

/// A one-record batch, for nudging a log into a state (e.g. unflushed data) cheaply.
pub fn tiny_batch() -> Vec<u8> {
    record_batch(256, RECORD_VALUE_BYTES)
}

/// `STRATA_BENCH_DIR` when set, else the system temp dir.
pub fn bench_dir() -> PathBuf {
    std::env::var_os(BENCH_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// A fresh scratch directory under [`bench_dir`], removed (with everything in it) on drop.
pub fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("strata-bench-")
        .tempdir_in(bench_dir())
}

/// Batches per flush so that a flush comes after about `every_bytes` of `batch_len`-byte
/// batches (at least one batch): 64 for ~16 KiB batches and 1 MiB, 1 for ~1 MiB batches.
pub fn batches_per_flush(every_bytes: u64, batch_len: usize) -> u64 {
    let batch_len = batch_len.max(1) as u64;
    ((every_bytes + batch_len / 2) / batch_len).max(1)
}

/// Appends `count` copies of `batch` to `log` (the log patches each copy's base offset and
/// leader epoch in place, outside the CRC, so one buffer serves every append), calling
/// `log.flush()` after every `flush_every_batches` appends when that is `Some`. Returns
/// the bytes appended. Nothing is made durable unless `flush_every_batches` says so.
pub fn append_copies(
    log: &mut Log,
    batch: &mut [u8],
    count: u64,
    flush_every_batches: Option<u64>,
) -> Result<u64> {
    for i in 1..=count {
        log.append(batch)?;
        if flush_every_batches.is_some_and(|every| i % every == 0) {
            log.flush()?;
        }
    }
    Ok(count * batch.len() as u64)
}

/// The baseline for [`append_copies`]: the same bytes written with `pwrite` at the end of
/// a plain file, `fdatasync` after every `flush_every_batches` writes when that is `Some`.
/// This is the floor a log append can approach: one write per batch, no validation, no
/// entry table, no index.
pub fn pwrite_copies(
    file: &std::fs::File,
    batch: &[u8],
    count: u64,
    flush_every_batches: Option<u64>,
) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut position = 0u64;
    for i in 1..=count {
        file.write_all_at(batch, position)?;
        position += batch.len() as u64;
        if flush_every_batches.is_some_and(|every| i % every == 0) {
            file.sync_data()?;
        }
    }
    Ok(position)
}

/// Reads the whole log from its start, as a consumer would: `read(offset, max_read_bytes)`
/// then each batch split off as zero-copy `Bytes` by [`log_store::Batches`]. Touches every
/// batch's header and returns (batches, bytes) seen, so the work cannot be optimised away.
pub fn read_all(log: &Log, max_read_bytes: usize) -> Result<(u64, u64)> {
    let mut offset = log.log_start_offset();
    let (mut batches, mut bytes) = (0u64, 0u64);
    loop {
        let chunk = log.read(offset, max_read_bytes)?;
        if chunk.is_empty() {
            return Ok((batches, bytes));
        }
        for item in log_store::Batches::new(chunk) {
            let (header, batch) = item.map_err(log_store::LogError::CorruptBatch)?;
            offset = header.last_offset() as u64 + 1;
            batches += 1;
            bytes += batch.len() as u64;
        }
    }
}

/// A tiny deterministic PRNG (SplitMix64), so lookups hit the same offsets every run
/// without a `rand` dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound > 0`), up to a bias of `bound / 2^64`.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_fit_their_budget_and_are_valid() {
        for (batch, max) in [
            (small_batch(), SMALL_BATCH_BYTES),
            (large_batch(), LARGE_BATCH_BYTES),
        ] {
            let h = log_store::BatchHeader::parse_validated(&batch).unwrap();
            assert_eq!(h.size_bytes, batch.len());
            assert!(
                batch.len() <= max && batch.len() > max - 200,
                "{}",
                batch.len()
            );
        }
    }

    #[test]
    fn flushes_come_about_every_mebibyte() {
        assert_eq!(batches_per_flush(1 << 20, small_batch().len()), 64);
        assert_eq!(batches_per_flush(1 << 20, large_batch().len()), 1);
        assert_eq!(batches_per_flush(1 << 20, 3 << 20), 1);
    }
}
