//! A log's sidecar files as the log sees them: the anchor each must carry, installing a
//! staged one, reading one back. The format and guarantees are in [`crate::sidecar`].

use tracing::warn;

use super::Log;
use crate::error::{LogError, Result};
use crate::sidecar::{decode, Anchor, SidecarKind, StagedSidecar};

impl Log {
    /// The anchor a `kind` sidecar of segment `base_offset` must carry to match the log
    /// now; `None` when there is no such segment, or it is the active one (a `.txnindex`
    /// or `.leaves` covers a closed segment only).
    pub fn sidecar_anchor(&self, kind: SidecarKind, base_offset: u64) -> Option<Anchor> {
        let segments = &self.segments;
        let i = segments
            .iter()
            .position(|s| s.base_offset() == base_offset)?;
        let raft_index = match kind {
            SidecarKind::TxnIndex | SidecarKind::Leaves if segments[i].is_active() => return None,
            SidecarKind::TxnIndex | SidecarKind::Leaves => segments[i].next_raft_index() - 1,
            SidecarKind::Snapshot => segments[i].base_raft_index() - 1,
        };
        // Raft indexes start at 1: entry 0 is "before every entry", of term 0.
        let term = if raft_index == 0 {
            0
        } else {
            self.term_of(raft_index).ok()?
        };
        Some(Anchor { raft_index, term })
    }

    /// Makes a staged sidecar part of the log if the log still matches its anchor
    /// (`Ok(false)`, and the staged file removed, when it does not: the log was
    /// truncated or its segment removed since). Call it under the lock that orders the
    /// log's changes.
    pub fn install_sidecar(&self, staged: StagedSidecar) -> Result<bool> {
        if self.sidecar_anchor(staged.kind, staged.base_offset) != Some(staged.anchor) {
            let _ = std::fs::remove_file(&staged.tmp);
            return Ok(false);
        }
        crate::failpoint::check("log.sidecar.before_rename")
            .map_err(|e| LogError::io(&staged.tmp, e))?;
        let to = staged.kind.path(self.dir(), staged.base_offset);
        std::fs::rename(&staged.tmp, &to).map_err(|e| LogError::io(&to, e))?;
        Ok(true)
    }

    /// The body of segment `base_offset`'s `kind` sidecar, if there is one that is whole
    /// and matches the log now. A damaged or stale one reads as absent (and is logged):
    /// the caller rebuilds what it holds from the segment.
    pub fn read_sidecar(&self, kind: SidecarKind, base_offset: u64) -> Option<Vec<u8>> {
        let expected = self.sidecar_anchor(kind, base_offset)?;
        let path = kind.path(self.dir(), base_offset);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "sidecar unreadable");
                return None;
            }
        };
        match decode(kind, &bytes) {
            Ok((anchor, body)) if anchor == expected => Some(body.to_vec()),
            Ok(_) => {
                warn!(path = %path.display(), "sidecar does not match the log: ignored");
                None
            }
            Err(reason) => {
                warn!(path = %path.display(), reason, "damaged sidecar ignored");
                None
            }
        }
    }
}
