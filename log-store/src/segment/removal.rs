//! Removing a segment's files: at once ([`Segment::delete`]), or renamed `*.deleted` for a
//! removal after `file.delete.delay.ms` ([`Segment::retire`]). Either way the entry table
//! goes last: a crash midway leaves a table without its `.log`, never a `.log` without
//! its table (which recovery could not tell from a torn tail).

use std::path::PathBuf;

use super::{Segment, DELETED_SUFFIX};
use crate::error::{LogError, Result};
use crate::failpoint;
use crate::sidecar::SidecarKind;

impl Segment {
    /// The segment's files, the entry table last (some may not exist: `.entrydata` and
    /// the sidecars).
    fn file_paths(&self) -> [PathBuf; 8] {
        let [txnindex, snapshot, leaves] = self.sidecar_paths();
        [
            self.log_path.clone(),
            self.offset_index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
            self.entrydata_path.clone(),
            txnindex,
            snapshot,
            leaves,
            self.entries.path().to_path_buf(),
        ]
    }

    /// The paths of the segment's sidecars ([`SidecarKind::ALL`] order).
    pub(crate) fn sidecar_paths(&self) -> [PathBuf; 3] {
        let dir = self.log_path.parent().unwrap_or(std::path::Path::new("."));
        SidecarKind::ALL.map(|k| k.path(dir, self.base_offset))
    }

    /// Removes every file of the segment.
    pub fn delete(self) -> Result<()> {
        let paths = self.file_paths();
        drop(self);
        for p in paths {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(p, e)),
            }
        }
        Ok(())
    }

    /// Renames every file of the segment `NAME.deleted` (the entry table last, after the
    /// crash point `log.delete.before_table_rename`) and returns the new paths. The
    /// segment's open files and maps stay valid; the caller drops the segment, syncs the
    /// directory and removes the returned files when their delay has passed.
    pub fn retire(&self) -> Result<Vec<PathBuf>> {
        let mut retired = Vec::with_capacity(8);
        let [log, index, time_index, entrydata, txnindex, snapshot, leaves, table] =
            self.file_paths();
        for p in [
            log, index, time_index, entrydata, txnindex, snapshot, leaves,
        ] {
            retired.extend(rename_aside(p)?);
        }
        failpoint::check("log.delete.before_table_rename")
            .map_err(|e| LogError::io(&self.log_path, e))?;
        retired.extend(rename_aside(table)?);
        Ok(retired)
    }
}

/// `path` with the `.deleted` suffix added.
fn deleted_path(path: &std::path::Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(DELETED_SUFFIX);
    PathBuf::from(name)
}

/// Renames `path` to its `.deleted` name, replacing any file of that name; `None` when
/// `path` does not exist.
pub(crate) fn rename_aside(path: PathBuf) -> Result<Option<PathBuf>> {
    let to = deleted_path(&path);
    match std::fs::rename(&path, &to) {
        Ok(()) => Ok(Some(to)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io(path, e)),
    }
}
