//! Real allocation for files written through a shared memory map.
//!
//! A write through a map into a hole of a sparse file needs a block at that moment; on a
//! full filesystem the kernel can only answer with SIGBUS, which kills the process. So
//! the index and entry-table files are grown with `posix_fallocate`, which reserves the
//! blocks up front and fails with ENOSPC as an ordinary error instead.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{LogError, Result};

/// Grows `file` (at `path`) to at least `len` bytes with every block allocated. Never
/// shrinks it.
pub fn allocate(file: &File, path: &Path, len: u64) -> Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| {
        LogError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "file size past off_t"),
        )
    })?;
    // SAFETY: `file` is an open descriptor for the duration of the call; the call reads
    // no memory of ours.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(LogError::io(path, std::io::Error::from_raw_os_error(rc)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn the_file_grows_with_its_blocks_and_never_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        allocate(&file, &path, 1 << 20).unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(meta.len(), 1 << 20);
        // st_blocks counts 512-byte units: all of it is allocated, not a hole.
        assert!(meta.blocks() * 512 >= 1 << 20, "{} blocks", meta.blocks());
        allocate(&file, &path, 4096).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 1 << 20);
    }
}
