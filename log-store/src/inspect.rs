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

use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::ControlFlow;
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
pub struct BatchInfo<'a> {
    pub position: u64,
    pub header: BatchHeader,
    /// The stored CRC-32C matches the batch content.
    pub crc_ok: bool,
    /// The whole batch frame, as stored.
    pub frame: &'a [u8],
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
    /// Every byte from `position` to the end is zero: the preallocated, unused end of a
    /// segment (Kafka with `file.preallocate=true`, or a crash before a trim).
    ZeroTail { position: u64, zero_bytes: u64 },
    /// The caller's `on_batch` asked to stop before `position`.
    Stopped { position: u64 },
}

/// The result of scanning one `.log` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileScan {
    pub path: PathBuf,
    pub file_bytes: u64,
    pub batches: u64,
    pub records: u64,
    pub bad_crc_batches: u64,
    /// Bytes covered by whole batch frames (including frames whose CRC failed).
    pub framed_bytes: u64,
    pub end: ScanEnd,
}

/// Walks every batch of a `.log` file, calling `on_batch` for each (CRC failures included;
/// it may return `Break` to stop) and `on_progress` with the bytes consumed so far. Memory
/// use is one batch, whatever the file's size.
pub fn scan_log_file(
    path: &Path,
    mut on_batch: impl FnMut(&BatchInfo) -> ControlFlow<()>,
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
        framed_bytes: 0,
        end: ScanEnd::Clean,
    };
    let mut buf = vec![0u8; BATCH_HEADER_BYTES];
    let mut position = 0u64;
    while position < file_bytes {
        let read = read_frame(&mut reader, &mut buf, position, file_bytes, path)?;
        let parsed = read.and_then(|size| parse_frame(&buf, position).map(|h| (size, h)));
        let (size, (header, crc_ok)) = match parsed {
            Ok(frame) => frame,
            Err(end) => {
                scan.end = end;
                break;
            }
        };
        scan.batches += 1;
        scan.records += header.records_count.max(0) as u64;
        if !crc_ok {
            scan.bad_crc_batches += 1;
        }
        let flow = on_batch(&BatchInfo {
            position,
            header,
            crc_ok,
            frame: &buf[..size],
        });
        position += size as u64;
        scan.framed_bytes = position;
        on_progress(position);
        if flow.is_break() && position < file_bytes {
            scan.end = ScanEnd::Stopped { position };
            break;
        }
    }
    Ok(scan)
}

/// Reads the whole batch frame at `position` into `buf`: its size, or how the scan
/// ends there (a torn tail, a zero-filled tail or a bad frame).
fn read_frame(
    reader: &mut impl Read,
    buf: &mut Vec<u8>,
    position: u64,
    file_bytes: u64,
    path: &Path,
) -> Result<std::result::Result<usize, ScanEnd>> {
    let remaining = (file_bytes - position) as usize;
    if remaining < LOG_OVERHEAD_BYTES {
        let missing_bytes = LOG_OVERHEAD_BYTES - remaining;
        return Ok(Err(ScanEnd::TornTail {
            position,
            missing_bytes,
        }));
    }
    buf.resize(LOG_OVERHEAD_BYTES, 0);
    read_exact(reader, buf, path)?;
    let size = match BatchHeader::frame_size(buf) {
        Ok(s) if s <= MAX_INSPECT_BATCH_BYTES => s,
        Ok(s) => {
            let reason = format!("batch length {s} is beyond any sane batch");
            return Ok(Err(ScanEnd::BadFrame { position, reason }));
        }
        Err(e) => {
            let reason = e.to_string();
            let end = bad_frame_or_zero_tail(reader, buf, position, file_bytes, reason, path)?;
            return Ok(Err(end));
        }
    };
    if size > remaining {
        let missing_bytes = size - remaining;
        return Ok(Err(ScanEnd::TornTail {
            position,
            missing_bytes,
        }));
    }
    buf.resize(size, 0);
    read_exact(reader, &mut buf[LOG_OVERHEAD_BYTES..], path)?;
    Ok(Ok(size))
}

/// The header of the batch frame in `buf` and whether its CRC-32C checks out, or a bad
/// frame when the header itself is invalid.
fn parse_frame(buf: &[u8], position: u64) -> std::result::Result<(BatchHeader, bool), ScanEnd> {
    let bad = |e: BatchError| ScanEnd::BadFrame {
        position,
        reason: e.to_string(),
    };
    match BatchHeader::parse_validated(buf) {
        Ok(h) => Ok((h, true)),
        Err(BatchError::BadCrc { .. }) => BatchHeader::parse_header(buf)
            .map(|h| (h, false))
            .map_err(bad),
        Err(e) => Err(bad(e)),
    }
}

/// Tells a zero-filled tail (whose first 12 bytes, already read into `head`, are zero)
/// from a bad frame, reading the rest of the file in chunks.
fn bad_frame_or_zero_tail(
    reader: &mut impl Read,
    head: &[u8],
    position: u64,
    file_bytes: u64,
    reason: String,
    path: &Path,
) -> Result<ScanEnd> {
    if head.iter().any(|b| *b != 0) {
        return Ok(ScanEnd::BadFrame { position, reason });
    }
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut chunk).map_err(|e| LogError::io(path, e))?;
        if n == 0 {
            return Ok(ScanEnd::ZeroTail {
                position,
                zero_bytes: file_bytes - position,
            });
        }
        if chunk[..n].iter().any(|b| *b != 0) {
            return Ok(ScanEnd::BadFrame { position, reason });
        }
    }
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
/// agrees with the batches. `on_progress` gets (bytes done, bytes total). Batches are
/// checked as they stream past, so memory does not grow with segment size.
pub fn verify_dir(dir: &Path, mut on_progress: impl FnMut(u64, u64)) -> Result<DirReport> {
    let logs = segment_logs(dir)?;
    let mut total = 0u64;
    for (_, p) in &logs {
        total += std::fs::metadata(p).map_err(|e| LogError::io(p, e))?.len();
    }
    let mut report = DirReport {
        segments: logs.len(),
        ..DirReport::default()
    };
    if logs.is_empty() {
        report.push(Severity::Error, dir, "no .log segment files found");
        return Ok(report);
    }
    let checkpoint_path = dir.join(CHECKPOINT_FILE);
    let checkpoint = match Checkpoint::read(dir) {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("{e}; the log would run a full recovery scan");
            report.push(Severity::Warning, &checkpoint_path, msg);
            None
        }
    };
    let mut done = 0u64;
    let mut next_offset: Option<u64> = None;
    let mut next_raft_index: Option<u64> = None;
    for (i, (base, path)) in logs.iter().enumerate() {
        let last_segment = i + 1 == logs.len();
        if let Some(n) = next_offset.filter(|n| base < n) {
            let msg = format!(
                "base offset {base} overlaps the previous segment, which ends at {}",
                n - 1
            );
            report.push(Severity::Error, path, msg);
        }
        let mut offsets = OffsetCheck::new(*base, next_offset.unwrap_or(0).max(*base));
        let mut index = IndexCheck::load(dir, *base);
        let mut table = TableCheck::load(dir, *base, next_raft_index, last_segment);
        let scan = scan_log_file(
            path,
            |b| {
                offsets.on_batch(b);
                index.on_batch(b);
                table.on_batch(b);
                ControlFlow::Continue(())
            },
            |p| on_progress(done + p, total),
        )?;
        done += scan.file_bytes;
        report.batches += scan.batches;
        report.records += scan.records;
        report.bytes += scan.framed_bytes;
        report_scan_end(&mut report, path, &scan.end, last_segment);
        for f in offsets.findings.drain(..) {
            report.push(Severity::Error, path, f);
        }
        if let (Some(first), None) = (offsets.first, report.first_offset) {
            report.first_offset = Some(first);
        }
        if offsets.last.is_some() {
            report.last_offset = offsets.last;
        }
        index.finish(&mut report, offsets.next);
        next_raft_index = table.finish(&mut report);
        next_offset = Some(offsets.next);
    }
    if let (Some(c), Some(first)) = (checkpoint, logs.first()) {
        if c.log_start_offset < first.0 {
            let msg = format!(
                "log start offset {} is before the first segment ({}); the log moves it forward on open",
                c.log_start_offset, first.0
            );
            report.push(Severity::Warning, &checkpoint_path, msg);
        }
    }
    Ok(report)
}

fn report_scan_end(report: &mut DirReport, path: &Path, end: &ScanEnd, last_segment: bool) {
    match end {
        ScanEnd::Clean | ScanEnd::Stopped { .. } => {}
        ScanEnd::TornTail {
            position,
            missing_bytes,
        } => {
            let (severity, note) = if last_segment {
                (Severity::Warning, "; the log cuts this torn tail on open")
            } else {
                (Severity::Error, "")
            };
            let msg = format!(
                "file ends inside a batch at position {position} ({missing_bytes} bytes missing){note}"
            );
            report.push(severity, path, msg);
        }
        ScanEnd::ZeroTail {
            position,
            zero_bytes,
        } => {
            let severity = if last_segment {
                Severity::Warning
            } else {
                Severity::Error
            };
            let msg = format!(
                "{zero_bytes} zero bytes from position {position} (a preallocated, unused tail)"
            );
            report.push(severity, path, msg);
        }
        ScanEnd::BadFrame { position, reason } => {
            report.push(
                Severity::Error,
                path,
                format!("not a record batch at position {position}: {reason}"),
            );
        }
    }
}

/// Offsets within a segment: at or after its base and after everything before. A batch
/// whose CRC failed is reported and its offsets are not trusted for what follows.
struct OffsetCheck {
    base: u64,
    /// The lowest offset the next batch may start at.
    next: u64,
    first: Option<u64>,
    last: Option<u64>,
    findings: Vec<String>,
}

impl OffsetCheck {
    fn new(base: u64, next: u64) -> Self {
        OffsetCheck {
            base,
            next,
            first: None,
            last: None,
            findings: Vec::new(),
        }
    }

    fn on_batch(&mut self, b: &BatchInfo) {
        let (first, last) = (b.header.base_offset, b.header.last_offset());
        if !b.crc_ok {
            self.findings.push(format!(
                "CRC mismatch in batch at position {} (header says offsets {first}..={last})",
                b.position
            ));
            return;
        }
        if first < 0 || (first as u64) < self.next {
            self.findings.push(format!(
                "batch at position {} starts at offset {first}, expected at least {}",
                b.position, self.next
            ));
            return;
        }
        debug_assert!(first as u64 >= self.base);
        self.first.get_or_insert(first as u64);
        self.last = Some(last as u64);
        self.next = last as u64 + 1;
    }
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

/// The sparse indexes (one entry per `index.interval.bytes`, so small), checked in
/// lockstep with the batches: offset entries point at batch starts holding their offset;
/// time entries are ordered and within the segment. Problems are warnings: the log
/// rebuilds indexes itself.
struct IndexCheck {
    base: u64,
    offset_path: PathBuf,
    time_path: PathBuf,
    offsets: Option<std::result::Result<Vec<OffsetEntry>, String>>,
    times: Option<std::result::Result<Vec<TimeEntry>, String>>,
    cursor: usize,
    problem: Option<String>,
}

impl IndexCheck {
    fn load(dir: &Path, base: u64) -> Self {
        let offset_path = dir.join(segment::segment_file_name(
            base,
            segment::OFFSET_INDEX_SUFFIX,
        ));
        let time_path = dir.join(segment::segment_file_name(base, segment::TIME_INDEX_SUFFIX));
        let mut offsets = read_index::<OffsetEntry>(&offset_path);
        // Position 0 is never indexed (a segment's first batch gets no entry), so zero
        // entries are the unused, preallocated tail of an index left by an unclean stop.
        if let Some(Ok(v)) = &mut offsets {
            if let Some(z) = v
                .iter()
                .position(|e| e.relative_offset == 0 && e.position == 0)
            {
                v.truncate(z);
            }
        }
        let mut times = read_index::<TimeEntry>(&time_path);
        if let Some(Ok(v)) = &mut times {
            if let Some(z) = v
                .iter()
                .position(|e| e.timestamp == 0 && e.relative_offset == 0)
            {
                v.truncate(z);
            }
        }
        IndexCheck {
            base,
            offset_path,
            time_path,
            offsets,
            times,
            cursor: 0,
            problem: None,
        }
    }

    fn on_batch(&mut self, b: &BatchInfo) {
        let Some(Ok(entries)) = &self.offsets else {
            return;
        };
        if self.problem.is_some() {
            return;
        }
        let Some(e) = entries.get(self.cursor) else {
            return;
        };
        let position = u64::from(e.position);
        if position < b.position {
            self.problem = Some(format!(
                "entry {} (position {position}) is not at a batch start",
                self.cursor
            ));
        } else if position == b.position {
            let offset = self.base + u64::from(e.relative_offset);
            if b.header.last_offset() as u64 != offset {
                self.problem = Some(format!(
                    "entry {} says offset {offset} at position {position}, the batch there ends at {}",
                    self.cursor,
                    b.header.last_offset()
                ));
            }
            self.cursor += 1;
        }
    }

    fn finish(self, report: &mut DirReport, segment_end: u64) {
        let rebuilt = "; the log rebuilds it on open";
        match self.offsets {
            Some(Err(e)) => report.push(
                Severity::Warning,
                &self.offset_path,
                format!("{e}{rebuilt}"),
            ),
            Some(Ok(entries)) => {
                let problem = self.problem.or_else(|| {
                    (self.cursor < entries.len())
                        .then(|| format!("entry {} points past the last batch", self.cursor))
                });
                if let Some(p) = problem {
                    report.push(
                        Severity::Warning,
                        &self.offset_path,
                        format!("{p}{rebuilt}"),
                    );
                }
            }
            None => {}
        }
        match self.times {
            Some(Err(e)) => {
                report.push(Severity::Warning, &self.time_path, format!("{e}{rebuilt}"))
            }
            Some(Ok(entries)) => {
                let mut prev: Option<&TimeEntry> = None;
                for (i, e) in entries.iter().enumerate() {
                    let offset = self.base + u64::from(e.relative_offset);
                    let ordered = prev.is_none_or(|p| {
                        e.timestamp > p.timestamp && e.relative_offset >= p.relative_offset
                    });
                    if !ordered || offset >= segment_end {
                        let msg = format!(
                            "entry {i} (timestamp {}, offset {offset}) is out of order or range{rebuilt}",
                            e.timestamp
                        );
                        report.push(Severity::Warning, &self.time_path, msg);
                        break;
                    }
                    prev = Some(e);
                }
            }
            None => {}
        }
    }
}

/// Strata's entry table, read record by record in lockstep with the batches: every data
/// record must describe the batch at its position; every non-data payload must match its
/// checksum. Disagreement is an error (the table defines which bytes are the log), except
/// past a torn tail of the last segment, which open cuts.
struct TableCheck {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    entrydata: Vec<u8>,
    base_raft_index: u64,
    slot: u64,
    last_segment: bool,
    /// The header's rebuildable flag: the log rebuilds records of trailing batches.
    rebuildable: bool,
    /// Set once a problem ends the check of this table.
    done: bool,
    untracked_batches: u64,
    findings: Vec<(Severity, String)>,
}

impl TableCheck {
    fn load(dir: &Path, base: u64, expected_raft_index: Option<u64>, last_segment: bool) -> Self {
        let path = dir.join(segment::segment_file_name(base, segment::ENTRIES_SUFFIX));
        let mut check = TableCheck {
            path: path.clone(),
            reader: None,
            entrydata: Vec::new(),
            base_raft_index: 0,
            slot: 0,
            last_segment,
            rebuildable: false,
            done: false,
            untracked_batches: 0,
            findings: Vec::new(),
        };
        let Ok(file) = File::open(&path) else {
            return check;
        };
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        let mut header = [0u8; ENTRY_TABLE_HEADER_BYTES];
        let parsed = reader
            .read_exact(&mut header)
            .map_err(|_| "entry table shorter than its header".to_string())
            .and_then(|()| entries::parse_header(&header));
        match parsed {
            Ok(entries::TableHeader {
                base_raft_index,
                rebuildable,
                ..
            }) => {
                check.base_raft_index = base_raft_index;
                check.rebuildable = rebuildable;
                if let Some(expected) = expected_raft_index.filter(|e| *e != base_raft_index) {
                    check.findings.push((Severity::Error, format!(
                        "starts at raft index {base_raft_index} but the previous segment ends before {expected}"
                    )));
                }
                check.reader = Some(reader);
                let data_path =
                    dir.join(segment::segment_file_name(base, segment::ENTRYDATA_SUFFIX));
                check.entrydata = std::fs::read(data_path).unwrap_or_default();
            }
            Err(reason) => check.fail(Severity::Error, reason),
        }
        check
    }

    fn fail(&mut self, severity: Severity, message: String) {
        self.findings.push((severity, message));
        self.done = true;
    }

    /// The next record, `None` at the end of the table (or of its valid part).
    fn next_record(&mut self) -> Option<EntryRecord> {
        let reader = self.reader.as_mut()?;
        let mut raw = [0u8; ENTRY_RECORD_BYTES];
        let mut filled = 0;
        while filled < raw.len() {
            match reader.read(&mut raw[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    self.fail(Severity::Error, e.to_string());
                    return None;
                }
            }
        }
        if filled == 0 {
            self.done = true;
            return None;
        }
        if filled < raw.len() {
            let msg = "ends in a partial record (torn write); recovery cuts it on open";
            self.fail(Severity::Warning, msg.into());
            return None;
        }
        let slot = self.slot;
        match EntryRecord::decode(&raw) {
            Some(r) if r.raft_index == self.base_raft_index + slot => {
                self.slot += 1;
                Some(r)
            }
            _ if raw.iter().all(|b| *b == 0) => {
                // Zeroed, preallocated slots after an unclean stop end the table.
                let msg = "table was not trimmed (unclean stop); recovery validates it on open";
                self.fail(Severity::Warning, msg.into());
                None
            }
            _ => {
                let msg = format!("record {slot} is damaged (checksum, kind or raft index)");
                self.fail(Severity::Error, msg);
                None
            }
        }
    }

    /// The next data record, checking the non-data records on the way.
    fn next_data_record(&mut self) -> Option<EntryRecord> {
        while let Some(rec) = self.next_record() {
            if rec.kind.is_data() {
                return Some(rec);
            }
            let (start, end) = (rec.position as usize, rec.end_position() as usize);
            let ok = end <= self.entrydata.len()
                && crc32fast::hash(&self.entrydata[start..end]) == rec.aux;
            if !ok {
                let msg = format!(
                    "payload of raft entry {} is missing or damaged",
                    rec.raft_index
                );
                self.fail(Severity::Error, msg);
                return None;
            }
        }
        None
    }

    fn on_batch(&mut self, b: &BatchInfo) {
        if self.reader.is_none() {
            return;
        }
        let rec = if self.done {
            None
        } else {
            self.next_data_record()
        };
        match rec {
            Some(rec)
                if rec.position == b.position
                    && rec.length as usize == b.header.size_bytes
                    && b.header.base_offset >= 0
                    && rec.base_offset == b.header.base_offset as u64 => {}
            Some(rec) => {
                let msg = format!(
                    "raft entry {} says offset {} at position {}, the log has offset {} at position {}",
                    rec.raft_index, rec.base_offset, rec.position, b.header.base_offset, b.position
                );
                self.fail(Severity::Error, msg);
            }
            None => self.untracked_batches += 1,
        }
    }

    fn has_error(&self) -> bool {
        self.findings.iter().any(|(s, _)| *s == Severity::Error)
    }

    /// Reports the findings; returns the Raft index after this segment's entries.
    fn finish(mut self, report: &mut DirReport) -> Option<u64> {
        self.reader.as_ref()?;
        // Records past the last batch: non-data ones are fine, data ones point past the
        // last whole batch.
        while !self.done {
            if let Some(rec) = self.next_data_record() {
                let (severity, note) = if self.last_segment {
                    (Severity::Warning, " (torn tail); the log cuts it on open")
                } else {
                    (Severity::Error, "")
                };
                let msg = format!(
                    "raft entry {} points at position {} past the last whole batch{note}",
                    rec.raft_index, rec.position
                );
                self.fail(severity, msg);
            }
        }
        if self.untracked_batches > 0 && !self.has_error() {
            let msg = if self.rebuildable && self.last_segment {
                format!(
                    "{} batches at the end of the log have no raft entry record (a flush leaves them to the page cache); the log rebuilds the records on open",
                    self.untracked_batches
                )
            } else {
                format!(
                    "{} batches at the end of the log have no raft entry (unacknowledged tail); the log cuts them on open",
                    self.untracked_batches
                )
            };
            self.findings.push((Severity::Warning, msg));
        }
        let errors = self.has_error();
        for (severity, message) in self.findings {
            report.push(severity, &self.path, message);
        }
        (!errors).then_some(self.base_raft_index + self.slot)
    }
}
