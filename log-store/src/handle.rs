//! Duplicate file handles, for syncs done without the owner's lock: a flush prepared
//! under the log's lock syncs its files after releasing it, through handles of its own
//! that stay valid whatever the log does to its files meanwhile.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};

/// A file handle with the path it names in errors.
pub type SyncHandle = (PathBuf, File);

/// A second handle on `file` (opened at `path`).
pub fn duplicate(path: &Path, file: &File) -> Result<SyncHandle> {
    let file = file.try_clone().map_err(|e| LogError::io(path, e))?;
    Ok((path.to_path_buf(), file))
}

/// A second handle on each of `handles`.
pub fn duplicate_all<'a>(
    handles: impl IntoIterator<Item = &'a SyncHandle>,
) -> Result<Vec<SyncHandle>> {
    handles
        .into_iter()
        .map(|(path, file)| duplicate(path, file))
        .collect()
}
