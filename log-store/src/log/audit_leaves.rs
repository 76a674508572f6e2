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
use crate::error::{LogError, Result};
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
        if next == offset {
            return None; // no batch: nothing to take (and no progress to make)
        }
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

    /// Closed segments without a `.leaves` file whose leaves the tree holds (from the
    /// seal on), at most [`WRITE_PER_PASS`], by base offset.
    fn leaves_wanted(&self) -> Vec<u64> {
        let Some(tree) = &self.audit else {
            return Vec::new();
        };
        self.segments
            .iter()
            .filter(|s| !s.is_active() && s.base_offset() >= tree.first_offset())
            .filter(|s| !s.sidecar_paths()[2].exists())
            .map(|s| s.base_offset())
            .take(WRITE_PER_PASS)
            .collect()
    }

    /// The anchor and body of segment `base`'s `.leaves` (`None`: not wanted now).
    fn leaves_body(&self, base: u64) -> Option<(Anchor, Vec<u8>)> {
        let next = self.segment_end(base)?;
        let leaves = self.audit.as_ref()?.leaves_between(base, next)?;
        let anchor = self.sidecar_anchor(SidecarKind::Leaves, base)?;
        Some((anchor, encode(&leaves)))
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
/// written. Takes the read lock per segment, never while writing. Blocking I/O.
pub fn write_audit_leaves(log: &RwLock<Log>) -> Result<usize> {
    let (dir, wanted) = {
        let l = read(log);
        (l.dir().to_path_buf(), l.leaves_wanted())
    };
    let mut written = 0;
    for base in wanted {
        let Some((anchor, body)) = read(log).leaves_body(base) else {
            continue;
        };
        let staged = StagedSidecar::write(&dir, SidecarKind::Leaves, base, anchor, &body)?;
        written += usize::from(read(log).install_sidecar(staged)?);
    }
    if written > 0 {
        debug!(dir = %dir.display(), written, "audit leaves written");
    }
    Ok(written)
}

/// What one step of the scrub found.
enum Step {
    /// Checked up to this offset; more of the segment to go.
    Next(u64),
    /// The segment is checked (or gone, or cut, or sealed: nothing left to check).
    Done,
    /// The batch at this offset no longer hashes to its leaf, or no longer reads back.
    Changed(u64),
}

impl Log {
    /// Hashes one chunk of segment `base..next` from `offset` and compares each batch
    /// with its recorded leaf, all under the caller's one lock (so a truncation cannot
    /// come between the read and the comparison); the bytes read. Batches before the log
    /// start or the seal are not checked: they may be gone or compacted, and the export
    /// proves the sealed ones. An I/O error is returned (the segment stays unchecked).
    fn scrub_step(&self, base: u64, next: u64, offset: u64) -> Result<(Step, usize)> {
        if self.segment_end(base) != Some(next) {
            return Ok((Step::Done, 0)); // removed, cut or rewritten since
        }
        let from = offset
            .max(self.log_start_offset())
            .max(self.audit_sealed_offset());
        if from >= next {
            return Ok((Step::Done, 0));
        }
        let chunk = match self.read_bounded(from, SCRUB_READ_BYTES, next) {
            Ok(c) if !c.is_empty() => c,
            Err(e @ LogError::Io { .. }) => return Err(e),
            _ => return Ok((Step::Changed(from), 0)),
        };
        let read = chunk.len();
        // The first batch holds `from` (a log start may fall inside a batch); each
        // later one starts where the last ended.
        let mut at: Option<u64> = None;
        for item in Batches::new(chunk) {
            let here = at.unwrap_or(from);
            let Ok((h, bytes)) = item else {
                return Ok((Step::Changed(here), read));
            };
            let (first, last) = (h.base_offset, h.last_offset());
            let placed = match at {
                None => first >= 0 && first as u64 <= from && last >= from as i64,
                Some(a) => first == a as i64 && last >= first,
            };
            let recorded = self.audit_leaf_at(first.max(0) as u64);
            if !placed || recorded.is_some_and(|leaf| leaf != merkle::leaf_hash(&bytes)) {
                return Ok((Step::Changed(here), read));
            }
            at = Some(last as u64 + 1);
        }
        Ok(match at {
            None => (Step::Changed(from), read),
            Some(a) if a >= next => (Step::Done, read),
            Some(a) => (Step::Next(a), read),
        })
    }
}

/// Hashes the batches of segments whose leaves came from a sidecar, oldest first, until
/// `budget` bytes were read (a segment once begun is finished); the bytes read. A batch
/// that no longer hashes to its leaf, or no longer reads back, is the log's divergence.
/// Takes the read lock per step. Blocking I/O.
pub fn scrub_audit_leaves(log: &RwLock<Log>, budget: usize) -> Result<usize> {
    let mut hashed = 0;
    while hashed < budget {
        let Some((base, next)) = read(log).next_unchecked() else {
            break;
        };
        let mut offset = base;
        let changed = loop {
            let (step, n) = read(log).scrub_step(base, next, offset)?;
            hashed += n;
            match step {
                Step::Next(at) if at > offset => offset = at,
                Step::Next(_) => break Some(offset), // no progress: not a batch sequence
                Step::Done => break None,
                Step::Changed(at) => break Some(at),
            }
        };
        debug!(base, next, ?changed, "audit segment scrubbed");
        write(log).scrubbed(base, changed);
    }
    Ok(hashed)
}
