//! The next segment's files, created ahead of the roll that needs them.
//!
//! Creating a file costs a directory update that takes most of a millisecond on a
//! journaling filesystem (0.7 ms per file on the test machine), and a segment has four,
//! so a roll that created them held the append lock for about 3 ms. Instead a thread
//! creates them empty under provisional names (`next-segment.<suffix>.tmp`) after each
//! roll, and the next roll renames them to the new segment's names (about 20 µs each),
//! the entry table first, as [`Segment::create`] writes them.
//!
//! They carry nothing: a file missing at the roll (never made, or the thread not done)
//! is created there as before, and leftovers of a stop are removed at open with every
//! other `*.tmp` file.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::{debug, warn};

#[cfg(doc)]
use super::Segment;
use super::{
    segment_file_name, ENTRIES_SUFFIX, LOG_SUFFIX, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX,
};

/// The suffixes of the files made ahead, in the order a roll adopts them.
const SUFFIXES: [&str; 4] = [
    ENTRIES_SUFFIX,
    LOG_SUFFIX,
    OFFSET_INDEX_SUFFIX,
    TIME_INDEX_SUFFIX,
];

fn spare_path(dir: &Path, suffix: &str) -> PathBuf {
    dir.join(format!("next-segment.{suffix}.tmp"))
}

/// The spare files of one log and the thread making them.
#[derive(Debug, Default)]
pub struct Spare {
    /// Set by the thread once every file exists.
    ready: Arc<AtomicBool>,
    maker: Option<JoinHandle<()>>,
}

impl Spare {
    /// Whether the files are there to be adopted.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Starts a thread creating the spare files in `dir`, unless they are ready or being
    /// made. A failure is logged, and the next roll creates its files itself.
    pub fn make(&mut self, dir: &Path) {
        if self.is_ready() || self.maker.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let dir = dir.to_path_buf();
        let ready = Arc::clone(&self.ready);
        let spawned = std::thread::Builder::new()
            .name("strata-spare-segment".into())
            .spawn(move || match create_all(&dir) {
                Ok(()) => ready.store(true, Ordering::Release),
                Err(e) => warn!(dir = %dir.display(), error = %e, "cannot create the next segment's files ahead"),
            });
        match spawned {
            Ok(handle) => self.maker = Some(handle),
            Err(e) => {
                warn!(error = %e, "cannot start the thread creating the next segment's files")
            }
        }
    }

    /// Renames the ready spare files in `dir` to the names of the segment at
    /// `base_offset`, the entry table first; any stale file of that name is replaced.
    /// Does nothing unless the files are ready. A file that is missing all the same is
    /// left for [`Segment::create`] to make.
    pub fn adopt(&mut self, dir: &Path, base_offset: u64) -> std::io::Result<()> {
        if !self.ready.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        for suffix in SUFFIXES {
            let target = dir.join(segment_file_name(base_offset, suffix));
            match std::fs::rename(spare_path(dir, suffix), &target) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    debug!(suffix, "spare segment file missing; the roll creates it");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Waits for the thread making the files, if any (before the directory goes away).
    pub fn finish(&mut self) {
        if let Some(maker) = self.maker.take() {
            let _ = maker.join();
        }
    }
}

impl Drop for Spare {
    /// The thread never outlives its log: whoever removes the directory next finds no
    /// file appearing in it.
    fn drop(&mut self) {
        self.finish();
    }
}

/// Creates (or empties) every spare file in `dir`.
fn create_all(dir: &Path) -> std::io::Result<()> {
    for suffix in SUFFIXES {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(spare_path(dir, suffix))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_files_are_made_then_adopted_under_the_segments_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut spare = Spare::default();
        spare.adopt(dir.path(), 7).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "none ready"
        );
        spare.make(dir.path());
        spare.finish();
        assert!(spare.is_ready());
        std::fs::write(dir.path().join(segment_file_name(7, LOG_SUFFIX)), b"stale").unwrap();
        std::fs::remove_file(spare_path(dir.path(), TIME_INDEX_SUFFIX)).unwrap();
        spare.adopt(dir.path(), 7).unwrap();
        assert!(!spare.is_ready());
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let want: Vec<String> = [ENTRIES_SUFFIX, OFFSET_INDEX_SUFFIX, LOG_SUFFIX]
            .iter()
            .map(|s| segment_file_name(7, s))
            .collect();
        let mut want = want;
        want.sort();
        assert_eq!(names, want, "the missing one is left to the roll");
        let log = std::fs::read(dir.path().join(segment_file_name(7, LOG_SUFFIX))).unwrap();
        assert!(log.is_empty(), "the stale file was replaced");
    }
}
