//! The cleaner's checkpoint (`cleaner.checkpoint`): how far the log has been cleaned and
//! when the next tombstones become removable, so a restart neither re-cleans everything
//! nor forgets a due delete horizon.
//!
//! Written atomically (temporary file, fsync, rename, directory fsync) and checksummed. A
//! missing or damaged checkpoint is safe: the whole log counts as dirty (the next cleaning
//! maps every key again) and no horizon is known until a cleaning finds one.
//!
//! Layout, little-endian: magic "STCL" | version u16 | reserved u16 | first_dirty_offset
//! u64 | next_delete_horizon_ms i64 (`i64::MIN`: none) | crc32 u32 (of bytes 0..24).

use std::path::Path;

use crate::checkpoint::replace_file;
use crate::error::{LogError, Result};

pub const CLEAN_CHECKPOINT_FILE: &str = "cleaner.checkpoint";
const CLEAN_CHECKPOINT_TMP: &str = "cleaner.checkpoint.tmp";
const MAGIC: &[u8; 4] = b"STCL";
const VERSION: u16 = 1;
const BYTES: usize = 28;
const NO_HORIZON: i64 = i64::MIN;

/// What the cleaner remembers between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanCheckpoint {
    /// Offsets below this were cleaned (the "clean" section); from here on the log is
    /// "dirty". Always a segment boundary after a cleaning; lowered by truncation.
    pub first_dirty_offset: u64,
    /// The earliest delete horizon among the kept tombstones of the clean section: at or
    /// after this time a cleaning can remove tombstones even if nothing is dirty.
    pub next_delete_horizon_ms: Option<i64>,
}

impl CleanCheckpoint {
    fn encode(&self) -> [u8; BYTES] {
        let mut b = [0u8; BYTES];
        b[0..4].copy_from_slice(MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_dirty_offset.to_le_bytes());
        let horizon = self.next_delete_horizon_ms.unwrap_or(NO_HORIZON);
        b[16..24].copy_from_slice(&horizon.to_le_bytes());
        let crc = crc32fast::hash(&b[0..24]);
        b[24..28].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<CleanCheckpoint> {
        if b.len() != BYTES || &b[0..4] != MAGIC || b[4..6] != VERSION.to_le_bytes() {
            return None;
        }
        let word = |at: usize| -> [u8; 8] {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            a
        };
        let crc = u32::from_le_bytes([b[24], b[25], b[26], b[27]]);
        if crc32fast::hash(&b[0..24]) != crc {
            return None;
        }
        let horizon = i64::from_le_bytes(word(16));
        Some(CleanCheckpoint {
            first_dirty_offset: u64::from_le_bytes(word(8)),
            next_delete_horizon_ms: (horizon != NO_HORIZON).then_some(horizon),
        })
    }

    /// Reads the checkpoint; absent or damaged reads as the default (everything dirty),
    /// with `false` for "damaged" so the caller can say so.
    pub fn read(dir: &Path) -> Result<(CleanCheckpoint, bool)> {
        let path = dir.join(CLEAN_CHECKPOINT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(match CleanCheckpoint::decode(&bytes) {
                Some(c) => (c, true),
                None => (CleanCheckpoint::default(), false),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok((CleanCheckpoint::default(), true))
            }
            Err(e) => Err(LogError::io(path, e)),
        }
    }

    /// Replaces the checkpoint atomically and durably.
    pub fn write(&self, dir: &Path) -> Result<()> {
        replace_file(
            dir,
            CLEAN_CHECKPOINT_TMP,
            CLEAN_CHECKPOINT_FILE,
            &self.encode(),
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_treats_damage_as_everything_dirty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            CleanCheckpoint::read(dir.path()).unwrap(),
            (CleanCheckpoint::default(), true)
        );
        for c in [
            CleanCheckpoint {
                first_dirty_offset: 42,
                next_delete_horizon_ms: Some(-5),
            },
            CleanCheckpoint {
                first_dirty_offset: 7,
                next_delete_horizon_ms: None,
            },
        ] {
            c.write(dir.path()).unwrap();
            assert_eq!(CleanCheckpoint::read(dir.path()).unwrap(), (c, true));
        }
        let path = dir.path().join(CLEAN_CHECKPOINT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[9] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(
            CleanCheckpoint::read(dir.path()).unwrap(),
            (CleanCheckpoint::default(), false)
        );
    }
}
