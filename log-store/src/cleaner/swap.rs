//! Swapping cleaned segments in, crash-safely (see "On disk and crash safety" in the
//! module above): the commit point of a segment's swap is its `B.entries.swap` file, and
//! at open every committed swap is finished and the staging directory removed.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::{STAGING_DIR, SWAP_SUFFIX};
use crate::checkpoint::sync_dir;
use crate::entries::{self, ENTRY_TABLE_HEADER_BYTES};
use crate::error::{LogError, Result};
use crate::segment;

/// The files a swap moves from the staging directory, before the entry table.
const MOVED_SUFFIXES: [&str; 4] = [
    segment::LOG_SUFFIX,
    segment::OFFSET_INDEX_SUFFIX,
    segment::TIME_INDEX_SUFFIX,
    segment::ENTRYDATA_SUFFIX,
];

/// A step of a swap, for the crash tests' failpoint.
pub(crate) struct Steps {
    done: usize,
    stop_after: Option<usize>,
}

/// Returned by a swap stopped at its failpoint.
#[derive(Debug)]
pub(crate) struct Stopped;

impl Steps {
    pub(crate) fn new(stop_after: Option<usize>) -> Steps {
        Steps {
            done: 0,
            stop_after,
        }
    }

    /// Counts a step about to be taken; `Err(Stopped)` when the failpoint says the process
    /// dies before it.
    pub(crate) fn next(&mut self) -> std::result::Result<(), Stopped> {
        if self.stop_after.is_some_and(|n| self.done >= n) {
            return Err(Stopped);
        }
        self.done += 1;
        Ok(())
    }
}

/// Either a real error or the failpoint.
#[derive(Debug)]
pub(crate) enum SwapError {
    Failed(LogError),
    Stopped,
}

impl From<LogError> for SwapError {
    fn from(e: LogError) -> Self {
        SwapError::Failed(e)
    }
}

impl From<Stopped> for SwapError {
    fn from(_: Stopped) -> Self {
        SwapError::Stopped
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| LogError::io(from, e))
}

/// Swaps the staged copy of segment `base` in: commit (entry table to `.swap`, directory
/// fsync), move the other files over the old ones, finish (table in place, fsync). With
/// `keep_old` each old file is first renamed `NAME.deleted` (its own step), and those
/// paths are returned for a deferred removal; otherwise the moves replace the old files.
pub(crate) fn swap_segment(
    dir: &Path,
    base: u64,
    keep_old: bool,
    steps: &mut Steps,
) -> std::result::Result<Vec<PathBuf>, SwapError> {
    let stage = dir.join(STAGING_DIR);
    let staged = |suffix: &str| stage.join(segment::segment_file_name(base, suffix));
    let live = |suffix: &str| dir.join(segment::segment_file_name(base, suffix));
    let swap = live(SWAP_SUFFIX);
    steps.next()?;
    rename(&staged(segment::ENTRIES_SUFFIX), &swap)?;
    sync_dir(dir)?;
    sync_dir(&stage)?;
    let mut retired = Vec::new();
    for suffix in MOVED_SUFFIXES.into_iter().chain([segment::ENTRIES_SUFFIX]) {
        let from = if suffix == segment::ENTRIES_SUFFIX {
            swap.clone()
        } else {
            staged(suffix)
        };
        if !from.exists() {
            continue;
        }
        if keep_old {
            steps.next()?;
            retired.extend(segment::rename_aside(live(suffix))?);
        }
        steps.next()?;
        rename(&from, &live(suffix))?;
    }
    sync_dir(dir)?;
    Ok(retired)
}

/// At open: finishes every committed swap (a `B.entries.swap` exists) and removes the
/// staging directory, so each segment is wholly old or wholly new. A swap file whose
/// header is unreadable is dropped if nothing was moved yet (the old segment is intact);
/// otherwise it is finished and the segment's own checks judge it. Returns the number of
/// swaps finished.
pub(crate) fn finish_interrupted(dir: &Path) -> Result<usize> {
    let stage = dir.join(STAGING_DIR);
    let mut finished = 0;
    let mut touched = false;
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((base, SWAP_SUFFIX)) = segment::parse_segment_file_name(name) else {
            continue;
        };
        touched = true;
        let swap = entry.path();
        let staged_log = stage.join(segment::segment_file_name(base, segment::LOG_SUFFIX));
        let header_ok = read_table_header(&swap).is_some_and(|(b, _)| b == base);
        if !header_ok && staged_log.exists() {
            warn!(path = %swap.display(), "damaged swap file before any move; keeping the old segment");
            std::fs::remove_file(&swap).map_err(|e| LogError::io(&swap, e))?;
            continue;
        }
        for suffix in MOVED_SUFFIXES {
            let from = stage.join(segment::segment_file_name(base, suffix));
            if from.exists() {
                rename(&from, &dir.join(segment::segment_file_name(base, suffix)))?;
            }
        }
        rename(
            &swap,
            &dir.join(segment::segment_file_name(base, segment::ENTRIES_SUFFIX)),
        )?;
        info!(base_offset = base, "finished an interrupted segment swap");
        finished += 1;
    }
    if stage.exists() {
        touched = true;
        std::fs::remove_dir_all(&stage).map_err(|e| LogError::io(&stage, e))?;
    }
    if touched {
        sync_dir(dir)?;
    }
    Ok(finished)
}

fn read_table_header(path: &Path) -> Option<(u64, u64)> {
    let file = File::open(path).ok()?;
    let mut header = [0u8; ENTRY_TABLE_HEADER_BYTES];
    file.read_exact_at(&mut header, 0).ok()?;
    entries::parse_header(&header)
        .ok()
        .map(|h| (h.base_offset, h.base_raft_index))
}
