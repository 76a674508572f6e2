//! An audit log's leaves kept beside its closed segments (`NNN.leaves` sidecars), so
//! that an open does not hash the whole log, and the scrub that checks them.
//!
//! Once a segment is closed, the broker's housekeeping writes its leaves (each batch's
//! base offset, last offset and leaf hash, 48 bytes, from the tree in memory, which
//! hashed the batch when it was appended) as a sidecar of the segment (`crate::sidecar`:
//! checksummed, tied to the segment's last Raft entry, removed with the segment, read as
//! absent when stale or damaged). An open takes a closed segment's leaves from its
//! sidecar when the sidecar's offsets are exactly the segment's, and hashes the batches
//! of every other segment (the active one, or one without a usable sidecar).
//!
//! Leaves read from a sidecar say what the batches were when they were appended, not
//! what they are now. So the open lists those segments as unchecked, and the **scrub**
//! ([`scrub_audit_leaves`], run by the housekeeping with a byte budget per pass) hashes
//! their batches again in the background: a batch that no longer hashes to its leaf was
//! changed on this disk behind Raft's back, and is a divergence
//! ([`AuditDivergence::changed_offset`](super::AuditDivergence)) that takes the replica
//! out of service. Until the scrub has been through a segment, a change in it shows only
//! to clients checking proofs against heads they kept. Layout of a body: per batch,
//! base offset u64 | last offset u64 | leaf hash (32 bytes), big-endian, in offset order.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use tracing::debug;

use super::{AuditDivergence, Log};
use crate::batch::Batches;
use crate::error::Result;
use crate::merkle::{self, Hash};
use crate::sidecar::{Anchor, SidecarKind, StagedSidecar};

const RECORD_BYTES: usize = 48;
/// Sidecars one pass writes at most.
const WRITE_PER_PASS: usize = 16;
/// Bytes the scrub reads per step.
const SCRUB_READ_BYTES: usize = 1 << 20;

type Leaf = (u64, u64, Hash);

fn encode(leaves: &[Leaf]) -> Vec<u8> {
    let mut out = Vec::with_capacity(leaves.len() * RECORD_BYTES);
    for (base, last, hash) in leaves {
        out.extend_from_slice(&base.to_be_bytes());
        out.extend_from_slice(&last.to_be_bytes());
        out.extend_from_slice(hash);
    }
    out
}

fn decode(body: &[u8]) -> Option<Vec<Leaf>> {
    if !body.len().is_multiple_of(RECORD_BYTES) {
        return None;
    }
    body.chunks_exact(RECORD_BYTES)
        .map(|r| {
            let base = u64::from_be_bytes(r[..8].try_into().ok()?);
            let last = u64::from_be_bytes(r[8..16].try_into().ok()?);
            Some((base, last, r[16..].try_into().ok()?))
        })
        .collect()
}

/// Locks for reading; a poisoned lock still guards a log whose every method left it
/// consistent or returned an error.
fn read(log: &RwLock<Log>) -> RwLockReadGuard<'_, Log> {
    log.read().unwrap_or_else(|p| p.into_inner())
}

fn write(log: &RwLock<Log>) -> RwLockWriteGuard<'_, Log> {
    log.write().unwrap_or_else(|p| p.into_inner())
}

impl Log {
    /// The leaves of the closed segment starting at `offset`, from its sidecar, and the
    /// segment's next offset; `None` when there is no such segment or no usable sidecar
    /// (absent, stale, damaged, or whose offsets are not the segment's batches, one
    /// after the other).
    pub(super) fn leaves_sidecar_at(&self, offset: u64) -> Option<(Vec<Leaf>, u64)> {
        let seg = self
            .segments
            .iter()
            .find(|s| s.base_offset() == offset && !s.is_active())?;
        let next = seg.next_offset();
        let leaves = decode(&self.read_sidecar(SidecarKind::Leaves, offset)?)?;
        let mut expected = offset;
        for &(base, last, _) in &leaves {
            if base != expected || last < base {
                return None;
            }
            expected = last + 1;
        }
        (expected == next).then_some((leaves, next))
    }

    /// The bodies of missing `.leaves` sidecars: closed segments whose leaves the tree
    /// holds, at most [`WRITE_PER_PASS`].
    fn missing_leaves(&self) -> Vec<(u64, Anchor, Vec<u8>)> {
        let Some(tree) = &self.audit else {
            return Vec::new();
        };
        self.segments
            .iter()
            .filter(|s| !s.is_active() && !s.sidecar_paths()[2].exists())
            .filter_map(|s| {
                let leaves = tree.leaves_between(s.base_offset(), s.next_offset())?;
                let anchor = self.sidecar_anchor(SidecarKind::Leaves, s.base_offset())?;
                Some((s.base_offset(), anchor, encode(&leaves)))
            })
            .take(WRITE_PER_PASS)
            .collect()
    }

    /// The oldest segment the scrub has yet to check: its base and next offsets.
    fn next_unchecked(&self) -> Option<(u64, u64)> {
        let base = *self.audit.as_ref()?.unchecked.first()?;
        Some((base, self.segment_end(base).unwrap_or(base)))
    }

    /// Records the scrub's check of segment `base`, and the changed batch it found.
    fn scrubbed(&mut self, base: u64, changed: Option<u64>) {
        if let Some(tree) = &mut self.audit {
            tree.unchecked.retain(|&b| b != base);
        }
        if let Some(offset) = changed.filter(|_| self.audit_divergence().is_none()) {
            self.note_divergence(AuditDivergence {
                raft_index: 0,
                tree_size: 0,
                logged_root: None,
                own_root: None,
                changed_offset: Some(offset),
            });
        }
    }

    /// The next offset of the segment starting at `base` (`None`: no such segment).
    fn segment_end(&self, base: u64) -> Option<u64> {
        let seg = self.segments.iter().find(|s| s.base_offset() == base)?;
        Some(seg.next_offset())
    }

    /// The recorded leaf of the batch starting at `base` (`None`: not held).
    fn audit_leaf_at(&self, base: u64) -> Option<Hash> {
        self.audit.as_ref()?.leaf_at(base)
    }
}

/// Writes the missing `.leaves` sidecars of an audit log's closed segments; the number
/// written. Takes the read lock per step, never while writing. Blocking I/O.
pub fn write_audit_leaves(log: &RwLock<Log>) -> Result<usize> {
    let (dir, missing) = {
        let l = read(log);
        (l.dir().to_path_buf(), l.missing_leaves())
    };
    let mut written = 0;
    for (base, anchor, body) in missing {
        let staged = StagedSidecar::write(&dir, SidecarKind::Leaves, base, anchor, &body)?;
        written += usize::from(read(log).install_sidecar(staged)?);
    }
    if written > 0 {
        debug!(dir = %dir.display(), written, "audit leaves written");
    }
    Ok(written)
}

/// Hashes the batches of segments whose leaves came from a sidecar, oldest first, until
/// `budget` bytes were read (a segment once begun is finished); the bytes read. A batch
/// that no longer hashes to its leaf is the log's divergence. Takes the read lock per
/// step. Blocking I/O.
pub fn scrub_audit_leaves(log: &RwLock<Log>, budget: usize) -> Result<usize> {
    let mut hashed = 0;
    while hashed < budget {
        let Some((base, next)) = read(log).next_unchecked() else {
            break;
        };
        let mut offset = base;
        let mut changed = None;
        while offset < next && changed.is_none() {
            let chunk = read(log).read_bounded(offset, SCRUB_READ_BYTES, next);
            let Some(chunk) = chunk.ok().filter(|c| !c.is_empty()) else {
                // Removed or cut since (retention, a truncation): nothing left to check;
                // else the segment no longer reads back from here.
                if read(log).segment_end(base) == Some(next) {
                    changed = Some(offset);
                }
                break;
            };
            hashed += chunk.len();
            let l = read(log);
            for item in Batches::new(chunk) {
                let Ok((h, bytes)) = item else {
                    changed = Some(offset); // no longer parses
                    break;
                };
                let recorded = l.audit_leaf_at(offset);
                if recorded.is_some_and(|leaf| leaf != merkle::leaf_hash(&bytes)) {
                    changed = Some(offset);
                    break;
                }
                offset = h.last_offset() as u64 + 1;
            }
        }
        debug!(base, next, ?changed, "audit segment scrubbed");
        write(log).scrubbed(base, changed);
    }
    Ok(hashed)
}
