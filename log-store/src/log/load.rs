//! Opening a log (as Kafka's LogLoader): an interrupted cleaning is finished or
//! dropped, leftovers of interrupted work go, then every segment is loaded. After a clean
//! shutdown each is only checked ([`Segment::load_clean`]); after an unclean stop the
//! segments from the recovery point on are validated entry by entry
//! ([`Segment::recover`], in `segment/recovery.rs`) and the log is cut at the first
//! torn or corrupt entry, dropping every segment after it.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tracing::{debug, info, info_span, warn};

use super::{Log, OpenReport, CLEAN_SHUTDOWN_FILE};
use crate::checkpoint::{sync_dir, Checkpoint};
use crate::clean_checkpoint::CleanCheckpoint;
use crate::cleaner;
use crate::clock::Clock;
use crate::config::LogConfig;
use crate::entries::EntryTable;
use crate::error::{LogError, Result};
use crate::segment::{self, parse_segment_file_name, RecoveryOutcome, Segment, Spare};
use crate::sidecar::SidecarKind;

impl Log {
    /// Opens the log in `dir` with an injected clock (roll and retention by time use it).
    ///
    /// After an unclean stop, the segments from the recovery point on are validated entry
    /// by entry and cut at the first torn or corrupt entry, so the log that opens is always
    /// a prefix of what was appended. Index files are checked and rebuilt when wrong.
    pub fn open_with_clock(
        dir: impl AsRef<Path>,
        config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Log> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let span = info_span!("log_open", dir = %dir.display());
        let _enter = span.enter();
        std::fs::create_dir_all(&dir).map_err(|e| LogError::io(&dir, e))?;
        // An interrupted cleaning: finish its committed swaps, drop the rest, before any
        // segment is looked at.
        let finished_clean_swaps = cleaner::finish_interrupted(&dir)?;
        let (clean_checkpoint, clean_checkpoint_ok) = CleanCheckpoint::read(&dir)?;
        if !clean_checkpoint_ok {
            warn!("damaged cleaner checkpoint; the whole log counts as dirty");
        }
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let mut clean = marker.exists();
        let checkpoint = match Checkpoint::read(&dir) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "damaged checkpoint; recovering every segment");
                clean = false;
                None
            }
        };
        let fresh_checkpoint = checkpoint.is_none();
        let checkpoint = checkpoint.unwrap_or_default();
        let bases = list_segments(&dir)?;
        let mut log = Log {
            dir: dir.clone(),
            config,
            clock,
            segments: Vec::with_capacity(bases.len()),
            checkpoint,
            flushed_offset: 0,
            generation: 0,
            flushed_raft_index: 0,
            open_report: OpenReport {
                clean,
                finished_clean_swaps,
                ..OpenReport::default()
            },
            clean_checkpoint,
            cleaning: Arc::new(AtomicBool::new(false)),
            clean_poisoned: false,
            tombstones_held_below: None,
            unsynced: Vec::new(),
            spare: Spare::default(),
            sealed: false,
            deferred_deletes: Vec::new(),
            audit: None,
            audit_heads: Default::default(),
            audit_seal: Default::default(),
        };
        log.load_segments(&bases, clean, fresh_checkpoint)?;
        log.start_appending(&marker)?;
        log.build_audit_tree()?;
        info!(
            clean,
            segments = log.segments.len(),
            log_start = log.log_start_offset(),
            next_offset = log.next_offset(),
            recovered = log.open_report.recovered_segments,
            truncated_bytes = log.open_report.truncated_bytes,
            rebuilt_entries = log.open_report.rebuilt_entries,
            "log opened"
        );
        Ok(log)
    }

    /// Makes the loaded log ready to append: an active segment (a new one when none
    /// survived), a flushed checkpoint whose recovery point is the active segment, the
    /// cleaner's dirty point lowered to what recovery kept, and the clean-shutdown
    /// `marker` removed (the next unclean stop must be noticed).
    fn start_appending(&mut self, marker: &Path) -> Result<()> {
        if self.segments.is_empty() {
            let seg = Segment::create(
                &self.dir,
                self.checkpoint.log_start_offset,
                self.checkpoint.prev_raft_index + 1,
                &self.config,
                self.clock.now_ms(),
            )?;
            self.segments.push(seg);
            sync_dir(&self.dir)?;
        }
        let config = self.config.clone();
        self.active_mut().activate(&config)?;
        let first_base = self.segments[0].base_offset();
        self.checkpoint.log_start_offset = self.checkpoint.log_start_offset.max(first_base);
        self.flush()?;
        self.checkpoint.recovery_point = self.active().base_offset();
        self.checkpoint.write(&self.dir)?;
        // Recovery may have cut the log below where cleaning got.
        self.lower_first_dirty(self.next_offset())?;
        if marker.exists() {
            std::fs::remove_file(marker).map_err(|e| LogError::io(marker, e))?;
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn load_segments(&mut self, bases: &[u64], clean: bool, fresh_checkpoint: bool) -> Result<()> {
        let bases = self.remove_below_start(bases)?;
        let recover_from = self.recover_from(bases, clean, fresh_checkpoint);
        let mut prev_term = self.checkpoint.prev_raft_term;
        for (i, &base) in bases.iter().enumerate() {
            let last = i + 1 == bases.len();
            let scan = base >= recover_from;
            let mut seg = match Segment::open_files(&self.dir, base, self.clock.now_ms()) {
                Ok(s) => s,
                // Past the recovery point an unreadable segment is a torn tail; before it
                // (or after a clean stop) it is damage the operator must look at.
                Err(e) if scan => {
                    warn!(base, error = %e, "segment unreadable after unclean stop; cutting the log here");
                    self.remove_files(&bases[i..])?;
                    break;
                }
                Err(e) => return Err(e),
            };
            if let Err(e) = self.check_continues(&seg) {
                if !scan {
                    return Err(e);
                }
                warn!(error = %e, "cutting the log here");
                drop(seg);
                self.remove_files(&bases[i..])?;
                break;
            }
            let outcome = self.check_segment(&mut seg, scan, prev_term, last)?;
            prev_term = seg.last_term()?.unwrap_or(prev_term);
            self.segments.push(seg);
            if let Some(o) = outcome {
                self.open_report.truncated_bytes += o.truncated_log_bytes;
                self.open_report.rebuilt_entries += o.rebuilt_entries;
                if o.truncated && !last {
                    warn!(
                        base,
                        "log cut inside a segment; removing the segments after it"
                    );
                    self.remove_files(&bases[i + 1..])?;
                    break;
                }
            }
        }
        self.remove_superseded()
    }

    /// The first segment that gets the full scan: the one holding the recovery point
    /// (every one without a checkpoint, none after a clean stop).
    fn recover_from(&self, bases: &[u64], clean: bool, fresh_checkpoint: bool) -> u64 {
        if clean {
            return u64::MAX;
        }
        if fresh_checkpoint {
            return 0;
        }
        let rp = self.checkpoint.recovery_point;
        bases
            .iter()
            .copied()
            .filter(|b| *b <= rp)
            .max()
            .unwrap_or(0)
    }

    /// Segments must continue each other in offsets and Raft indexes: an error when
    /// `seg` does not continue the last one loaded.
    fn check_continues(&self, seg: &Segment) -> Result<()> {
        let Some(prev) = self.segments.last() else {
            return Ok(());
        };
        if seg.base_offset() == prev.next_offset()
            && seg.base_raft_index() == prev.next_raft_index()
        {
            return Ok(());
        }
        Err(LogError::corrupt(
            seg.log_path(),
            format!(
                "segment starts at offset {} / raft index {} but the previous one ends at {} / {}",
                seg.base_offset(),
                seg.base_raft_index(),
                prev.next_offset(),
                prev.next_raft_index()
            ),
        ))
    }

    /// Loads `seg`: recovered entry by entry when `scan` (or when it fails its quick
    /// checks), otherwise checked and loaded as it is. The recovery's outcome, if any.
    fn check_segment(
        &mut self,
        seg: &mut Segment,
        scan: bool,
        prev_term: u64,
        last: bool,
    ) -> Result<Option<RecoveryOutcome>> {
        if !scan {
            match seg.load_clean(&self.config, true) {
                Ok(()) => return Ok(None),
                Err(e) => {
                    let base = seg.base_offset();
                    warn!(base, error = %e, "segment fails its checks; validating it entry by entry");
                }
            }
        }
        self.open_report.recovered_segments += 1;
        Ok(Some(seg.recover(&self.config, prev_term, last)?))
    }

    /// A crash during a reset (a snapshot install) may leave every old segment, the
    /// active one included: they start at or before the entry the checkpoint says
    /// precedes the first, so none of their entries belongs to the log, and that entry
    /// stays the checkpoint's. (Segments wholly before the log start, which a crash
    /// during retention leaves, are removed before loading.)
    fn remove_superseded(&mut self) -> Result<()> {
        while let Some(first) = self.segments.first() {
            if first.base_raft_index() > self.checkpoint.prev_raft_index {
                break;
            }
            self.segments.remove(0).delete()?;
            self.open_report.removed_segments += 1;
        }
        Ok(())
    }

    /// Removes, without loading them, the leading segments wholly before the log start
    /// (the next segment starts at or before it), and returns the other bases. Retention
    /// and DeleteRecords write the checkpoint before they remove a segment's files, the
    /// entry table last, so a crash leaves such segments, maybe a table whose `.log` is
    /// gone: loaded, it would pass for a torn segment and cut the log there. Only the
    /// table is read, for the Raft entry before the first.
    fn remove_below_start<'b>(&mut self, bases: &'b [u64]) -> Result<&'b [u64]> {
        let start = self.checkpoint.log_start_offset;
        let n = bases.windows(2).take_while(|w| w[1] <= start).count();
        if n == 0 {
            return Ok(bases);
        }
        for &base in &bases[..n] {
            self.note_removed_table(base);
        }
        self.remove_files(&bases[..n])?;
        Ok(&bases[n..])
    }

    /// Makes the last entry of segment `base`'s table the entry before the first, when it
    /// is later than the checkpoint's (a segment that DeleteRecords left below the log
    /// start while it was active, not yet deleted). An unreadable table is left alone.
    fn note_removed_table(&mut self, base: u64) {
        let path = self
            .dir
            .join(segment::segment_file_name(base, segment::ENTRIES_SUFFIX));
        let last = EntryTable::open(&path).and_then(|table| table.last());
        match last {
            Ok(Some(rec)) if rec.raft_index > self.checkpoint.prev_raft_index => {
                self.checkpoint.prev_raft_index = rec.raft_index;
                self.checkpoint.prev_raft_term = rec.term;
            }
            Ok(_) => {}
            Err(e) => warn!(base, error = %e, "unreadable table of a segment before the log start"),
        }
    }

    /// Deletes the files of the segments `bases` (not loaded), each entry table last.
    fn remove_files(&mut self, bases: &[u64]) -> Result<()> {
        for &base in bases {
            for suffix in [
                segment::LOG_SUFFIX,
                segment::OFFSET_INDEX_SUFFIX,
                segment::TIME_INDEX_SUFFIX,
                segment::ENTRYDATA_SUFFIX,
                SidecarKind::TxnIndex.suffix(),
                SidecarKind::Snapshot.suffix(),
                SidecarKind::Leaves.suffix(),
                segment::ENTRIES_SUFFIX,
            ] {
                let p = self.dir.join(segment::segment_file_name(base, suffix));
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(LogError::io(p, e)),
                }
            }
            self.open_report.removed_segments += 1;
        }
        sync_dir(&self.dir)
    }
}

/// Base offsets of the segments in `dir`, sorted; removes leftovers of interrupted work,
/// every `*.deleted` file (removed from the log before the stop, only its
/// `file.delete.delay.ms` was left to run) and sidecars whose segment is gone.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    let mut sidecars = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") && name != "log.checkpoint.tmp" {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        if Path::new(name)
            .extension()
            .is_some_and(|x| x == segment::DELETED_SUFFIX)
        {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => debug!(file = name, "removed a deleted segment file"),
                Err(e) => warn!(file = name, error = %e, "deleted segment file not removed"),
            }
            continue;
        }
        if let Some((base, suffix)) = parse_segment_file_name(name) {
            if suffix == segment::LOG_SUFFIX || suffix == segment::ENTRIES_SUFFIX {
                bases.push(base);
            } else if SidecarKind::ALL.iter().any(|k| k.suffix() == suffix) {
                sidecars.push((base, entry.path()));
            }
        }
    }
    bases.sort_unstable();
    bases.dedup();
    for (base, path) in sidecars {
        if bases.binary_search(&base).is_err() {
            match std::fs::remove_file(&path) {
                Ok(()) => debug!(file = %path.display(), "removed a sidecar without its segment"),
                Err(e) => warn!(file = %path.display(), error = %e, "orphan sidecar not removed"),
            }
        }
    }
    Ok(bases)
}
