//! The partition's checkpoint file (`log.checkpoint`): the log start offset, the recovery
//! point, and the Raft entry just before the first one the log still holds.
//!
//! Written atomically (temporary file, fsync, rename, directory fsync) and checksummed
//! with crc32, so a crash leaves either the old or the new checkpoint, and a damaged one
//! is detected and replaced by a full recovery scan rather than trusted.
//!
//! Layout, little-endian: magic "STCP" | version u16 | reserved u16 | log_start_offset u64
//! | recovery_point u64 | prev_raft_index u64 | prev_raft_term u64 | crc32 u32 (of bytes
//! 0..40).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{LogError, Result};

pub const CHECKPOINT_FILE: &str = "log.checkpoint";
const CHECKPOINT_TMP: &str = "log.checkpoint.tmp";
const MAGIC: &[u8; 4] = b"STCP";
const VERSION: u16 = 1;
const BYTES: usize = 44;

/// What the log remembers between runs besides its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// First offset readers may see (moved by retention and DeleteRecords).
    pub log_start_offset: u64,
    /// Every segment that ends at or before this offset is known to be durable and whole;
    /// recovery after an unclean stop scans only the segments from here on.
    pub recovery_point: u64,
    /// Raft index and term of the entry just before the log's first entry (0, 0 when the
    /// log starts at Raft index 1), so Raft storage can answer `term(first_index - 1)`.
    pub prev_raft_index: u64,
    pub prev_raft_term: u64,
}

impl Checkpoint {
    fn encode(&self) -> [u8; BYTES] {
        let mut b = [0u8; BYTES];
        b[0..4].copy_from_slice(MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[8..16].copy_from_slice(&self.log_start_offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.recovery_point.to_le_bytes());
        b[24..32].copy_from_slice(&self.prev_raft_index.to_le_bytes());
        b[32..40].copy_from_slice(&self.prev_raft_term.to_le_bytes());
        let crc = crc32fast::hash(&b[0..40]);
        b[40..44].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Checkpoint> {
        if b.len() != BYTES || &b[0..4] != MAGIC {
            return None;
        }
        if u16::from_le_bytes([b[4], b[5]]) != VERSION {
            return None;
        }
        let crc = u32::from_le_bytes([b[40], b[41], b[42], b[43]]);
        if crc32fast::hash(&b[0..40]) != crc {
            return None;
        }
        let u = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(a)
        };
        Some(Checkpoint {
            log_start_offset: u(8),
            recovery_point: u(16),
            prev_raft_index: u(24),
            prev_raft_term: u(32),
        })
    }

    /// Reads the checkpoint: `Ok(None)` when absent, `Err` when present but damaged.
    pub fn read(dir: &Path) -> Result<Option<Checkpoint>> {
        let path = dir.join(CHECKPOINT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Checkpoint::decode(&bytes)
                .map(Some)
                .ok_or_else(|| LogError::corrupt(&path, "checkpoint checksum mismatch")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LogError::io(path, e)),
        }
    }

    /// Replaces the checkpoint atomically and durably.
    pub fn write(&self, dir: &Path) -> Result<()> {
        replace_file(dir, CHECKPOINT_TMP, CHECKPOINT_FILE, &self.encode(), None)
    }
}

/// Replaces `dir/name` with `bytes` atomically and durably: written to `dir/tmp_name`,
/// fsynced, renamed over `name`, then the directory fsynced. A crash leaves the old file
/// or the new one, never a mix. `crash_point` names the [`crate::failpoint`] checked
/// between the synced temporary file and the rename, for callers whose crash tests
/// stop there.
pub fn replace_file(
    dir: &Path,
    tmp_name: &str,
    name: &str,
    bytes: &[u8],
    crash_point: Option<&'static str>,
) -> Result<()> {
    let tmp = dir.join(tmp_name);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| LogError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| LogError::io(&tmp, e))?;
    f.sync_all().map_err(|e| LogError::io(&tmp, e))?;
    let path = dir.join(name);
    if let Some(point) = crash_point {
        crate::failpoint::check(point).map_err(|e| LogError::io(&path, e))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| LogError::io(&path, e))?;
    sync_dir(dir)
}

/// Makes a directory's entries (created, renamed, removed files) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(dir, e))
}
