//! `strata log dump PATH`: one line per record batch, as text or JSON, from a segment
//! file or every segment of a partition directory, then a summary. A transaction
//! marker shows its kind (COMMIT or ABORT) and coordinator epoch; the batches of a
//! `__transaction_state` partition are followed by a line per record (the
//! transactional id's state).
//!
//! Damage (exit 1): a CRC mismatch, bytes that are not a batch frame, or a file that ends
//! inside a batch anywhere but in the last file dumped. A torn tail in the last file is
//! what an unclean stop leaves and what the log cuts on open, so it is only a warning.

use std::io::{self, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use log_store::inspect::{self, BatchInfo, FileScan, ScanEnd};

use crate::cli::json::JsonObject;
use crate::cli::timestamp::{iso8601_utc, NO_TIMESTAMP};
use crate::cli::Outcome;

use super::txn;

#[derive(Args)]
pub struct DumpArgs {
    /// Segment `.log` file, or partition directory.
    path: PathBuf,
    /// Print one JSON object per line (batches, notes, then a summary) instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &DumpArgs) -> Result<Outcome> {
    let files = files_to_dump(&args.path)?;
    let mut dump = Dump {
        out: BufWriter::new(io::stdout().lock()),
        json: args.json,
        txn_state: is_txn_state_partition(&args.path),
        totals: Totals::default(),
        write_error: None,
    };
    for (i, path) in files.iter().enumerate() {
        dump.file(path, i + 1 == files.len())?;
    }
    dump.summary()
        .and_then(|()| dump.out.flush())
        .context("writing to stdout")?;
    Ok(if dump.totals.damaged {
        Outcome::Damaged
    } else {
        Outcome::Clean
    })
}

/// Whether `path` is a `__transaction_state` partition directory or a file in one.
fn is_txn_state_partition(path: &Path) -> bool {
    let dir = if path.is_dir() {
        Some(path)
    } else {
        path.parent()
    };
    dir.and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("__transaction_state-"))
}

/// `path` itself if it is a file (whatever its name), else its segment files in
/// base-offset order.
fn files_to_dump(path: &Path) -> Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let logs = inspect::segment_logs(path)
        .with_context(|| format!("listing segments in {}", path.display()))?;
    if logs.is_empty() {
        bail!(
            "no segment files (NNNNNNNNNNNNNNNNNNNN.log) in {}; is it a partition directory?",
            path.display()
        );
    }
    Ok(logs.into_iter().map(|(_, p)| p).collect())
}

#[derive(Default)]
struct Totals {
    files: u64,
    batches: u64,
    records: u64,
    file_bytes: u64,
    framed_bytes: u64,
    bad_crc_batches: u64,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
    damaged: bool,
}

struct Dump<W: Write> {
    out: W,
    json: bool,
    /// Decode the records as `__transaction_state` ones.
    txn_state: bool,
    totals: Totals,
    /// The first failed write parks here; the scan callback then stops the scan.
    write_error: Option<io::Error>,
}

impl<W: Write> Dump<W> {
    fn file(&mut self, path: &Path, last_file: bool) -> Result<()> {
        if !self.json {
            writeln!(self.out, "== {}", path.display()).context("writing to stdout")?;
        }
        let scan = inspect::scan_log_file(path, |b| self.batch(path, b), |_| {})
            .with_context(|| format!("reading {}", path.display()))?;
        if let Some(e) = self.write_error.take() {
            return Err(e).context("writing to stdout");
        }
        self.file_end(&scan, last_file)
            .context("writing to stdout")?;
        Ok(())
    }

    fn batch(&mut self, path: &Path, b: &BatchInfo) -> ControlFlow<()> {
        let h = &b.header;
        self.totals.first_offset.get_or_insert(h.base_offset);
        self.totals.last_offset = Some(h.last_offset());
        if !b.crc_ok {
            self.totals.damaged = true;
        }
        let mut lines = vec![if self.json {
            batch_json(path, b)
        } else {
            batch_text(b)
        }];
        if self.txn_state {
            lines.extend(txn::state_records(b, self.json));
        }
        match lines
            .iter()
            .try_for_each(|line| writeln!(self.out, "{line}"))
        {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                self.write_error = Some(e);
                ControlFlow::Break(())
            }
        }
    }

    fn file_end(&mut self, scan: &FileScan, last_file: bool) -> io::Result<()> {
        let t = &mut self.totals;
        t.files += 1;
        t.batches += scan.batches;
        t.records += scan.records;
        t.file_bytes += scan.file_bytes;
        t.framed_bytes += scan.framed_bytes;
        t.bad_crc_batches += scan.bad_crc_batches;
        let path = scan.path.display().to_string();
        let (severity, json, text) = match &scan.end {
            ScanEnd::Clean | ScanEnd::Stopped { .. } => return Ok(()),
            ScanEnd::ZeroTail {
                position,
                zero_bytes,
            } => {
                let (severity, consequence) = if last_file {
                    (
                        "warning",
                        "a preallocated, unused end of the active segment",
                    )
                } else {
                    (
                        "error",
                        "not the last segment, so these bytes should be batches",
                    )
                };
                let json = JsonObject::new()
                    .str("type", "zero_tail")
                    .str("severity", severity)
                    .str("file", &path)
                    .int("position", *position)
                    .int("zero_bytes", *zero_bytes);
                let text =
                    format!("{zero_bytes} zero bytes from position {position}: {consequence}");
                (severity, json, text)
            }
            ScanEnd::TornTail {
                position,
                missing_bytes,
            } => {
                let (severity, consequence) = if last_file {
                    ("warning", "a torn write, which the log cuts on open")
                } else {
                    ("error", "not the last segment, so data is missing")
                };
                let json = JsonObject::new()
                    .str("type", "torn_tail")
                    .str("severity", severity)
                    .str("file", &path)
                    .int("position", *position)
                    .int("missing_bytes", *missing_bytes as u64);
                let text = format!(
                    "file ends inside a batch at position {position} \
                     ({missing_bytes} bytes missing): {consequence}"
                );
                (severity, json, text)
            }
            ScanEnd::BadFrame { position, reason } => {
                let json = JsonObject::new()
                    .str("type", "bad_frame")
                    .str("severity", "error")
                    .str("file", &path)
                    .int("position", *position)
                    .str("reason", reason);
                let text = format!(
                    "not a record batch at position {position}: {reason}; \
                     the rest of the file is not dumped"
                );
                ("error", json, text)
            }
        };
        if severity == "error" {
            t.damaged = true;
        }
        if self.json {
            writeln!(self.out, "{}", json.finish())
        } else {
            writeln!(self.out, "{} {path}: {text}", severity.to_ascii_uppercase())
        }
    }

    fn summary(&mut self) -> io::Result<()> {
        let t = &self.totals;
        if self.json {
            let line = JsonObject::new()
                .str("type", "summary")
                .int("files", t.files)
                .int("batches", t.batches)
                .int("records", t.records)
                .int("file_bytes", t.file_bytes)
                .int("framed_bytes", t.framed_bytes)
                .int("bad_crc_batches", t.bad_crc_batches)
                .opt_int("first_offset", t.first_offset)
                .opt_int("last_offset", t.last_offset)
                .bool("ok", !t.damaged)
                .finish();
            return writeln!(self.out, "{line}");
        }
        let offsets = match (t.first_offset, t.last_offset) {
            (Some(first), Some(last)) => format!("{first}..={last}"),
            _ => "none".to_string(),
        };
        writeln!(
            self.out,
            "summary: {} files, {} batches, {} records, {} of {} bytes in whole batches, \
             {} bad CRCs, offsets {offsets}; {}",
            t.files,
            t.batches,
            t.records,
            t.framed_bytes,
            t.file_bytes,
            t.bad_crc_batches,
            if t.damaged { "DAMAGED" } else { "OK" },
        )
    }
}

/// Kafka's codec names, by the attribute bits' value.
fn compression_name(codec: u8) -> String {
    match codec {
        0 => "none".into(),
        1 => "gzip".into(),
        2 => "snappy".into(),
        3 => "lz4".into(),
        4 => "zstd".into(),
        other => format!("unknown({other})"),
    }
}

fn max_time(timestamp_ms: i64) -> Option<String> {
    (timestamp_ms != NO_TIMESTAMP).then(|| iso8601_utc(timestamp_ms))
}

fn batch_text(b: &BatchInfo) -> String {
    let h = &b.header;
    let flags = match (h.is_transactional(), h.is_control()) {
        (false, false) => "-",
        (true, false) => "transactional",
        (false, true) => "control",
        (true, true) => "transactional,control",
    };
    format!(
        "position={} offsets={}..={} records={} base_ts={} max_ts={} max_time={} size={} \
         compression={} producer_id={} producer_epoch={} base_sequence={} leader_epoch={} \
         flags={flags} crc={}{}",
        b.position,
        h.base_offset,
        h.last_offset(),
        h.records_count,
        h.base_timestamp,
        h.max_timestamp,
        max_time(h.max_timestamp).as_deref().unwrap_or("none"),
        h.size_bytes,
        compression_name(h.compression()),
        h.producer_id,
        h.producer_epoch,
        h.base_sequence,
        h.partition_leader_epoch,
        if b.crc_ok { "ok" } else { "BAD" },
        txn::marker(b).map_or_else(String::new, |m| {
            let epoch = m
                .coordinator_epoch
                .map(|e| format!(" coordinator_epoch={e}"));
            format!(" marker={}{}", m.kind, epoch.unwrap_or_default())
        }),
    )
}

fn batch_json(path: &Path, b: &BatchInfo) -> String {
    let h = &b.header;
    let marker = txn::marker(b);
    JsonObject::new()
        .str("type", "batch")
        .str("file", &path.display().to_string())
        .int("position", b.position)
        .int("base_offset", h.base_offset)
        .int("last_offset", h.last_offset())
        .int("records", h.records_count)
        .int("base_timestamp", h.base_timestamp)
        .int("max_timestamp", h.max_timestamp)
        .opt_str("max_time", max_time(h.max_timestamp).as_deref())
        .int("size_bytes", h.size_bytes as u64)
        .str("compression", &compression_name(h.compression()))
        .int("producer_id", h.producer_id)
        .int("producer_epoch", h.producer_epoch)
        .int("base_sequence", h.base_sequence)
        .int("leader_epoch", h.partition_leader_epoch)
        .bool("transactional", h.is_transactional())
        .bool("control", h.is_control())
        .opt_str("marker", marker.as_ref().map(|m| m.kind.as_str()))
        .opt_int(
            "coordinator_epoch",
            marker.and_then(|m| m.coordinator_epoch),
        )
        .str("crc", &format!("{:#010x}", h.crc))
        .bool("crc_ok", b.crc_ok)
        .finish()
}
