//! Offline inspection of segment files, for `strata log dump` and `strata log verify`.
//!
//! Works on any directory of Kafka `.log` segment files, ours or a Kafka broker's: only
//! the `.log` files are required. Offset and time indexes, when present, are checked
//! against the batches actually found (a stale or missing index is a warning: the log
//! rebuilds indexes itself). Strata's own sidecars (`.entries`, `.entrydata`,
//! `log.checkpoint`) are checked when present, and disagreement there is an error, since
//! they define which bytes belong to the log.
//!
//! Files are read with ordinary buffered reads, never mapped, so inspecting a directory a
//! broker is writing can't crash the tool.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::batch::{BatchError, BatchHeader, BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES};
use crate::checkpoint::{Checkpoint, CHECKPOINT_FILE};
use crate::entries::{self, EntryRecord, ENTRY_RECORD_BYTES, ENTRY_TABLE_HEADER_BYTES};
use crate::error::{LogError, Result};
use crate::index::{IndexEntry, OffsetEntry, TimeEntry};
use crate::segment::{self, parse_segment_file_name};

/// Frames larger than this are treated as corrupt lengths rather than read into memory.
pub const MAX_INSPECT_BATCH_BYTES: usize = 256 * 1024 * 1024;
const READ_BUFFER_BYTES: usize = 1 << 20;

/// One batch as found in a `.log` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    pub position: u64,
    pub header: BatchHeader,
    /// The stored CRC-32C matches the batch content.
    pub crc_ok: bool,
}

/// How the scan of a `.log` file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every byte belongs to a whole batch.
    Clean,
    /// The file ends inside a batch (a torn write).
    TornTail { position: u64, missing_bytes: usize },
    /// Bytes at `position` are not a v2 batch frame; framing can't continue.
    BadFrame { position: u64, reason: String },
}

/// The result of scanning one `.log` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileScan {
    pub path: PathBuf,
    pub file_bytes: u64,
    pub batches: u64,
    pub records: u64,
    pub bad_crc_batches: u64,
    /// Bytes covered by whole batches.
    pub valid_bytes: u64,
    pub end: ScanEnd,
}

/// Walks every batch of a `.log` file, calling `on_batch` for each (CRC failures included)
/// and `on_progress` with the bytes consumed so far.
pub fn scan_log_file(
    path: &Path,
    mut on_batch: impl FnMut(&BatchInfo),
    mut on_progress: impl FnMut(u64),
) -> Result<FileScan> {
    let file = File::open(path).map_err(|e| LogError::io(path, e))?;
    let file_bytes = file.metadata().map_err(|e| LogError::io(path, e))?.len();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    let mut scan = FileScan {
        path: path.to_path_buf(),
        file_bytes,
        batches: 0,
        records: 0,
        bad_crc_batches: 0,
        valid_bytes: 0,
        end: ScanEnd::Clean,
    };
    let mut buf = vec![0u8; BATCH_HEADER_BYTES];
    let mut position = 0u64;
    while position < file_bytes {
        let remaining = (file_bytes - position) as usize;
        if remaining < LOG_OVERHEAD_BYTES {
            scan.end = ScanEnd::TornTail {
                position,
                missing_bytes: LOG_OVERHEAD_BYTES - remaining,
            };
            break;
        }
        buf.resize(LOG_OVERHEAD_BYTES, 0);
        read_exact(&mut reader, &mut buf, path)?;
        let size = match BatchHeader::frame_size(&buf) {
            Ok(s) if s <= MAX_INSPECT_BATCH_BYTES => s,
            Ok(s) => {
                scan.end = ScanEnd::BadFrame {
                    position,
                    reason: format!("batch length {s} is beyond any sane batch"),
                };
                break;
            }
            Err(e) => {
                scan.end = ScanEnd::BadFrame {
                    position,
                    reason: e.to_string(),
                };
                break;
            }
        };
        if size > remaining {
            scan.end = ScanEnd::TornTail {
                position,
                missing_bytes: size - remaining,
            };
            break;
        }
        buf.resize(size, 0);
        read_exact(&mut reader, &mut buf[LOG_OVERHEAD_BYTES..], path)?;
        let (header, crc_ok) = match BatchHeader::parse_validated(&buf) {
            Ok(h) => (h, true),
            Err(BatchError::BadCrc { .. }) => match BatchHeader::parse_header(&buf) {
                Ok(h) => (h, false),
                Err(e) => {
                    scan.end = ScanEnd::BadFrame {
                        position,
                        reason: e.to_string(),
                    };
                    break;
                }
            },
            Err(e) => {
                scan.end = ScanEnd::BadFrame {
                    position,
                    reason: e.to_string(),
                };
                break;
            }
        };
        scan.batches += 1;
        scan.records += header.records_count.max(0) as u64;
        if !crc_ok {
            scan.bad_crc_batches += 1;
        }
        on_batch(&BatchInfo {
            position,
            header,
            crc_ok,
        });
        position += size as u64;
        scan.valid_bytes = position;
        on_progress(position);
    }
    Ok(scan)
}

fn read_exact(reader: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<()> {
    reader.read_exact(buf).map_err(|e| LogError::io(path, e))
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Informational or self-healing (a stale index the log would rebuild).
    Warning,
    /// Data is damaged or inconsistent; `verify` fails.
    Error,
}

/// One problem found by `verify_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub path: PathBuf,
    pub message: String,
}

/// The result of verifying a partition directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirReport {
    pub segments: usize,
    pub batches: u64,
    pub records: u64,
    pub bytes: u64,
    pub first_offset: Option<u64>,
    pub last_offset: Option<u64>,
    pub findings: Vec<Finding>,
}

impl DirReport {
    /// True when no finding is an error.
    pub fn is_ok(&self) -> bool {
        self.findings.iter().all(|f| f.severity < Severity::Error)
    }

    fn push(&mut self, severity: Severity, path: &Path, message: impl Into<String>) {
        self.findings.push(Finding {
            severity,
            path: path.to_path_buf(),
            message: message.into(),
        });
    }
}

/// The `.log` files of a directory, by base offset.
pub fn segment_logs(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let name = entry.file_name();
        if let Some((base, segment::LOG_SUFFIX)) = name.to_str().and_then(parse_segment_file_name) {
            out.push((base, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Verifies a partition directory end to end: every batch frames and checks its CRC,
/// offsets increase within and across segments, and every index and sidecar present
/// agrees with the batches. `on_progress` gets (bytes done, bytes total).
pub fn verify_dir(dir: &Path, mut on_progress: impl FnMut(u64, u64)) -> Result<DirReport> {
    let logs = segment_logs(dir)?;
    let total: u64 = logs
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let mut report = DirReport {
        segments: logs.len(),
        ..DirReport::default()
    };
    if logs.is_empty() {
        report.push(Severity::Error, dir, "no .log segment files found");
        return Ok(report);
    }
    let checkpoint = match Checkpoint::read(dir) {
        Ok(c) => c,
        Err(e) => {
            report.push(
                Severity::Warning,
                &dir.join(CHECKPOINT_FILE),
                format!("{e}; the log would run a full recovery scan"),
            );
            None
        }
    };
    let mut done = 0u64;
    let mut prev_next: Option<u64> = None;
    let mut prev_raft_next: Option<u64> = None;
    for (i, (base, path)) in logs.iter().enumerate() {
        let last_segment = i + 1 == logs.len();
        let mut batches: Vec<BatchInfo> = Vec::new();
        let scan = scan_log_file(
            path,
            |b| batches.push(b.clone()),
            |p| on_progress(done + p, total),
        )?;
        done += scan.file_bytes;
        report.batches += scan.batches;
        report.records += scan.records;
        report.bytes += scan.valid_bytes;
        match &scan.end {
            ScanEnd::Clean => {}
            ScanEnd::TornTail {
                position,
                missing_bytes,
            } => {
                let sev = if last_segment {
                    Severity::Warning
                } else {
                    Severity::Error
                };
                report.push(sev, path, format!(
                    "file ends inside a batch at position {position} ({missing_bytes} bytes missing){}",
                    if last_segment { "; the log cuts this torn tail on open" } else { "" }
                ));
            }
            ScanEnd::BadFrame { position, reason } => {
                report.push(
                    Severity::Error,
                    path,
                    format!("not a record batch at position {position}: {reason}"),
                );
            }
        }
        if scan.bad_crc_batches > 0 {
            for b in batches.iter().filter(|b| !b.crc_ok) {
                report.push(
                    Severity::Error,
                    path,
                    format!(
                        "CRC mismatch in batch at position {} (offsets {}..={})",
                        b.position,
                        b.header.base_offset,
                        b.header.last_offset()
                    ),
                );
            }
        }
        // Offsets: increasing within the segment, at or after its base, after the
        // previous segment's batches.
        let mut expect_at_least = prev_next.unwrap_or(0).max(*base);
        if let Some(p) = prev_next {
            if *base < p {
                report.push(Severity::Error, path, format!("segment base offset {base} overlaps the previous segment, which ends at {}", p - 1));
            }
        }
        for b in &batches {
            let (first, last) = (b.header.base_offset, b.header.last_offset());
            if first < 0 || (first as u64) < expect_at_least {
                report.push(Severity::Error, path, format!(
                    "batch at position {} starts at offset {first}, expected at least {expect_at_least}",
                    b.position
                ));
            }
            if first >= 0 {
                report.first_offset.get_or_insert(first as u64);
                report.last_offset = Some(last.max(0) as u64);
                expect_at_least = last as u64 + 1;
            }
        }
        prev_next = Some(expect_at_least);
        check_offset_index(&mut report, dir, *base, &batches);
        check_time_index(&mut report, dir, *base, &batches);
        prev_raft_next = check_entry_table(
            &mut report,
            dir,
            *base,
            &batches,
            prev_raft_next,
            last_segment,
        );
    }
    if let (Some(c), Some(first)) = (checkpoint, logs.first()) {
        if c.log_start_offset < first.0 {
            report.push(Severity::Warning, &dir.join(CHECKPOINT_FILE), format!(
                "log start offset {} is before the first segment ({}); the log moves it forward on open",
                c.log_start_offset, first.0
            ));
        }
    }
    Ok(report)
}

fn read_index<E: IndexEntry>(path: &Path) -> Option<std::result::Result<Vec<E>, String>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() % E::ENTRY_BYTES != 0 {
        return Some(Err(format!(
            "size {} is not a whole number of entries",
            bytes.len()
        )));
    }
    Some(Ok(bytes
        .chunks_exact(E::ENTRY_BYTES)
        .map(E::decode)
        .collect()))
}

fn check_offset_index(report: &mut DirReport, dir: &Path, base: u64, batches: &[BatchInfo]) {
    let path = dir.join(segment::segment_file_name(
        base,
        segment::OFFSET_INDEX_SUFFIX,
    ));
    let entries = match read_index::<OffsetEntry>(&path) {
        None => return,
        Some(Err(e)) => {
            return report.push(Severity::Warning, &path, format!("{e}; rebuilt on open"))
        }
        Some(Ok(e)) => e,
    };
    let by_position: HashMap<u64, &BatchInfo> = batches.iter().map(|b| (b.position, b)).collect();
    let mut prev: Option<OffsetEntry> = None;
    for (i, e) in entries.iter().enumerate() {
        // A preallocated, never-trimmed index ends in zero entries (after an unclean stop).
        // Position 0 is never indexed (a segment's first batch gets no entry), so a zero
        // entry is the unused, preallocated tail of an index left by an unclean stop.
        if e.relative_offset == 0 && e.position == 0 {
            report.push(
                Severity::Warning,
                &path,
                format!(
                    "{} unused preallocated entries (unclean stop); rebuilt on open",
                    entries.len() - i
                ),
            );
            return;
        }
        let ordered =
            prev.is_none_or(|p| e.relative_offset > p.relative_offset && e.position > p.position);
        let matches = by_position
            .get(&u64::from(e.position))
            .is_some_and(|b| b.header.last_offset() as u64 == base + u64::from(e.relative_offset));
        if !ordered || !matches {
            return report.push(
                Severity::Warning,
                &path,
                format!(
                    "entry {i} (offset {}, position {}) does not match the log; rebuilt on open",
                    base + u64::from(e.relative_offset),
                    e.position
                ),
            );
        }
        prev = Some(*e);
    }
}

fn check_time_index(report: &mut DirReport, dir: &Path, base: u64, batches: &[BatchInfo]) {
    let path = dir.join(segment::segment_file_name(base, segment::TIME_INDEX_SUFFIX));
    let entries = match read_index::<TimeEntry>(&path) {
        None => return,
        Some(Err(e)) => {
            return report.push(Severity::Warning, &path, format!("{e}; rebuilt on open"))
        }
        Some(Ok(e)) => e,
    };
    let end = batches
        .last()
        .map_or(base, |b| b.header.last_offset().max(0) as u64 + 1);
    let mut prev: Option<TimeEntry> = None;
    for (i, e) in entries.iter().enumerate() {
        if e.timestamp == 0 && e.relative_offset == 0 {
            return; // preallocated tail
        }
        let offset = base + u64::from(e.relative_offset);
        let ordered = prev
            .is_none_or(|p| e.timestamp > p.timestamp && e.relative_offset >= p.relative_offset);
        if !ordered || offset >= end {
            return report.push(Severity::Warning, &path, format!(
                "entry {i} (timestamp {}, offset {offset}) is out of order or range; rebuilt on open", e.timestamp
            ));
        }
        prev = Some(*e);
    }
}

/// Checks Strata's entry table against the batches; returns the next Raft index.
fn check_entry_table(
    report: &mut DirReport,
    dir: &Path,
    base: u64,
    batches: &[BatchInfo],
    prev_raft_next: Option<u64>,
    last_segment: bool,
) -> Option<u64> {
    let path = dir.join(segment::segment_file_name(base, segment::ENTRIES_SUFFIX));
    if !path.exists() {
        return None;
    }
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            report.push(Severity::Error, &path, e.to_string());
            return None;
        }
    };
    let (_, base_raft_index) = match entries::parse_header(&bytes) {
        Ok(h) => h,
        Err(reason) => {
            report.push(Severity::Error, &path, reason);
            return None;
        }
    };
    if let Some(expected) = prev_raft_next {
        if base_raft_index != expected {
            report.push(Severity::Error, &path, format!(
                "starts at raft index {base_raft_index} but the previous segment ends before {expected}"
            ));
        }
    }
    let records: Vec<&[u8]> = bytes[ENTRY_TABLE_HEADER_BYTES..]
        .chunks(ENTRY_RECORD_BYTES)
        .collect();
    let mut data = batches.iter();
    let mut count = 0usize;
    let entrydata =
        std::fs::read(dir.join(segment::segment_file_name(base, segment::ENTRYDATA_SUFFIX)))
            .unwrap_or_default();
    for (slot, raw) in records.iter().enumerate() {
        let rec = match EntryRecord::decode(raw) {
            Some(r) if r.raft_index == base_raft_index + slot as u64 => r,
            _ if raw.len() < ENTRY_RECORD_BYTES => {
                report.push(
                    Severity::Warning,
                    &path,
                    "ends in a partial record (torn write); recovery cuts it on open",
                );
                break;
            }
            _ => {
                // Zeroed preallocated slots after an unclean stop end the table.
                if records[slot..].iter().all(|r| r.iter().all(|b| *b == 0)) {
                    report.push(
                        Severity::Warning,
                        &path,
                        "table was not trimmed (unclean stop); recovery validates it on open",
                    );
                    break;
                }
                report.push(
                    Severity::Error,
                    &path,
                    format!("record {slot} is damaged (checksum, kind or raft index)"),
                );
                return None;
            }
        };
        count += 1;
        if rec.kind.is_data() {
            match data.next() {
                Some(b)
                    if b.position == rec.position
                        && b.header.size_bytes == rec.length as usize
                        && b.header.base_offset as u64 == rec.base_offset => {}
                Some(b) => {
                    report.push(Severity::Error, &path, format!(
                        "raft entry {} says offset {} at position {}, the log has offset {} at position {}",
                        rec.raft_index, rec.base_offset, rec.position, b.header.base_offset, b.position
                    ));
                    return None;
                }
                None => {
                    // In the last segment, entries past a torn tail were never flushed
                    // (open cuts them); anywhere else the data is gone.
                    let (severity, note) = if last_segment {
                        (Severity::Warning, " (torn tail); the log cuts it on open")
                    } else {
                        (Severity::Error, "")
                    };
                    report.push(
                        severity,
                        &path,
                        format!(
                            "raft entry {} points at position {} past the last whole batch{note}",
                            rec.raft_index, rec.position
                        ),
                    );
                    return None;
                }
            }
        } else {
            let end = rec.end_position() as usize;
            if end > entrydata.len()
                || crc32fast::hash(&entrydata[rec.position as usize..end]) != rec.aux
            {
                report.push(
                    Severity::Error,
                    &path,
                    format!(
                        "payload of raft entry {} is missing or damaged",
                        rec.raft_index
                    ),
                );
                return None;
            }
        }
    }
    let leftover = data.count();
    if leftover > 0 {
        report.push(Severity::Warning, &path, format!(
            "{leftover} batches at the end of the log have no raft entry (unacknowledged tail); the log cuts them on open"
        ));
    }
    Some(base_raft_index + count as u64)
}
