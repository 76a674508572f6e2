//! Giving a term to a log written without one, offline.
//!
//! [`crate::Log::append`] takes the last entry's term, so a log only ever written that
//! way (a single broker's partitions before they became one-voter Raft groups) holds
//! term 0 in every entry record and every batch's partition leader epoch. Raft reads
//! term 0 as "no entry", which is harmless while the group has one voter and breaks
//! the first follower that catches up from such entries. [`restamp_zero_terms`] gives
//! each of those entries a real term, in place: the bytes of every batch and every
//! offset stay as they are but for the leader epoch field (outside the batch CRC) and
//! the entry records.
//!
//! Crash order. It works only on a log closed cleanly and leaves the clean-shutdown
//! marker in place throughout, so a log it stopped halfway through opens without the
//! recovery scan (which would cut at an entry whose term goes back, or whose batch
//! epoch differs from its record). Per segment, last first: the `.log`'s epochs are
//! written and synced, then the entry table's records and their checksums are written
//! and synced; then `log.checkpoint`'s term of the entry before the first, if it had
//! one, is replaced atomically. Every step only turns term 0 into `term`, so running
//! it again after a crash finishes the job, and a log it finished reads exactly as
//! before but for the terms.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::batch::leader_epoch_field;
use crate::checkpoint::Checkpoint;
use crate::entries::EntryTable;
use crate::error::{LogError, Result};
use crate::failpoint;
use crate::log::{list_segments, CLEAN_SHUTDOWN_FILE};
use crate::segment::{segment_file_name, ENTRIES_SUFFIX, LOG_SUFFIX};

/// What [`restamp_zero_terms`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Restamped {
    /// Entry records that had term 0.
    pub entries: usize,
    /// Segments holding any of them.
    pub segments: usize,
    /// Whether `log.checkpoint` recorded term 0 for the entry before the first.
    pub checkpoint: bool,
}

/// Gives every term-0 entry of the cleanly closed log in `dir` the term `term` (see the
/// module docs for the crash order). Refuses a log without its clean-shutdown marker
/// (open and close it first, which recovers it) and a `term` of 0.
pub fn restamp_zero_terms(dir: &Path, term: u64) -> Result<Restamped> {
    if term == 0 {
        return Err(LogError::InvalidArgument(
            "restamping to term 0 changes nothing".into(),
        ));
    }
    if !dir.join(CLEAN_SHUTDOWN_FILE).exists() {
        return Err(LogError::InvalidArgument(format!(
            "{} was not closed cleanly: open and close the log before restamping it",
            dir.display()
        )));
    }
    let mut done = Restamped::default();
    for base in list_segments(dir)?.into_iter().rev() {
        let changed = restamp_segment(dir, base, term)?;
        if changed > 0 {
            done.entries += changed;
            done.segments += 1;
        }
    }
    failpoint::check("log.restamp.before_checkpoint")
        .map_err(|e| LogError::io(dir.join(crate::checkpoint::CHECKPOINT_FILE), e))?;
    if let Some(mut cp) = Checkpoint::read(dir)? {
        if cp.prev_raft_index > 0 && cp.prev_raft_term == 0 {
            cp.prev_raft_term = term;
            cp.write(dir)?;
            done.checkpoint = true;
        }
    }
    Ok(done)
}

/// One segment: the `.log`'s epochs of its term-0 data entries, synced, then its table.
fn restamp_segment(dir: &Path, base: u64, term: u64) -> Result<usize> {
    let table_path = dir.join(segment_file_name(base, ENTRIES_SUFFIX));
    let mut table = EntryTable::open(&table_path)?;
    let mut stale_data = Vec::new();
    let mut stale = 0;
    for i in 0..table.len() {
        let rec = table.get(i)?;
        if rec.term == 0 {
            stale += 1;
            if rec.kind.is_data() {
                stale_data.push(rec);
            }
        }
    }
    if stale == 0 {
        return Ok(0);
    }
    if !stale_data.is_empty() {
        let log_path = dir.join(segment_file_name(base, LOG_SUFFIX));
        let log = OpenOptions::new()
            .write(true)
            .open(&log_path)
            .map_err(|e| LogError::io(&log_path, e))?;
        let log_len = log
            .metadata()
            .map_err(|e| LogError::io(&log_path, e))?
            .len();
        if let Some(past) = stale_data.iter().find(|r| r.end_position() > log_len) {
            return Err(LogError::corrupt(
                &log_path,
                format!(
                    "raft entry {} ends at {} but the log is {log_len} bytes",
                    past.raft_index,
                    past.end_position()
                ),
            ));
        }
        let (at, epoch) = leader_epoch_field(term);
        for rec in stale_data.iter().rev() {
            log.write_all_at(&epoch, rec.position + at as u64)
                .map_err(|e| LogError::io(&log_path, e))?;
        }
        log.sync_data().map_err(|e| LogError::io(&log_path, e))?;
    }
    failpoint::check("log.restamp.before_table").map_err(|e| LogError::io(&table_path, e))?;
    table.restamp_terms(0, term)
}
