//! Sidecar files: state derived from a segment, kept beside the segment so that a later
//! reader need not read the segment again. The broker keeps two kinds: a closed
//! segment's aborted transactions (`.txnindex`) and the producer state at the start of a
//! segment (`.snapshot`). An audit log keeps a third, its closed segments' leaves
//! (`.leaves`, `log/audit_leaves.rs`), whose body only the log itself reads (never below
//! its seal, where a compaction may have rewritten the batches it kept the leaves of).
//!
//! The log does not read the broker's sidecars' bodies; it guarantees three things about
//! every sidecar:
//! - **It matches the log.** A sidecar names the Raft entry its content was derived up
//!   to (its [`Anchor`]: the last entry of the segment for a `.txnindex`, the entry just
//!   before the segment for a `.snapshot`). By Raft's log matching property a log that
//!   holds an entry with that index and term holds the same entries up to it, so
//!   [`Log::read_sidecar`] returns a body only while the log still does, and while the
//!   segment still ends (`.txnindex`) or starts (`.snapshot`) at that entry. A truncation
//!   and a rewrite in a new term make older sidecars unreadable, never wrong.
//! - **It is whole.** A crc32 covers the header and the body; a torn or damaged file
//!   reads as absent. Sidecars are rebuildable, so absent only costs a scan.
//! - **It goes with its segment.** Retention, DeleteRecords, truncation and a snapshot
//!   install remove a segment's sidecars with its files; a compaction keeps them (it
//!   keeps every entry and offset). At open, a sidecar without its segment is removed.
//!
//! Layout, big-endian: magic "STSC" | version u16 | kind u16 | anchor Raft index u64 |
//! anchor term u64 | body length u32 | crc32 u32 (of the 28 bytes before it and the
//! body) | body.
//!
//! Crash order of a write ([`StagedSidecar::write`], then [`Log::install_sidecar`]):
//! (1) the body goes to `NAME.tmp` (`log.sidecar.before_sync` after it), (2) which is
//! fsynced (`log.sidecar.before_rename` after it), (3) the anchor is checked against
//! the log under the caller's lock and the file renamed to its name. A crash before (3)
//! leaves a `*.tmp` that the next open removes; a crash after it leaves a whole file
//! whose anchor is checked at every read. The directory is not synced: a rename lost to
//! a power loss only leaves the sidecar absent.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};
use crate::segment::segment_file_name;

const MAGIC: &[u8; 4] = b"STSC";
const VERSION: u16 = 1;
const HEADER_BYTES: usize = 32;
/// Largest body accepted on read, so a damaged length cannot ask for a huge buffer.
pub const MAX_SIDECAR_BODY_BYTES: usize = 256 << 20;

/// The kinds of sidecar a segment can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidecarKind {
    /// What a closed segment holds, derived up to its last entry.
    TxnIndex,
    /// State at the start of a segment, derived up to the entry before it.
    Snapshot,
    /// An audit log's leaves of a closed segment (`log/audit_leaves.rs`), derived up to
    /// its last entry.
    Leaves,
}

impl SidecarKind {
    pub const ALL: [SidecarKind; 3] = [
        SidecarKind::TxnIndex,
        SidecarKind::Snapshot,
        SidecarKind::Leaves,
    ];

    /// The file suffix after the segment's base offset.
    pub fn suffix(self) -> &'static str {
        match self {
            SidecarKind::TxnIndex => "txnindex",
            SidecarKind::Snapshot => "snapshot",
            SidecarKind::Leaves => "leaves",
        }
    }

    fn code(self) -> u16 {
        match self {
            SidecarKind::TxnIndex => 1,
            SidecarKind::Snapshot => 2,
            SidecarKind::Leaves => 3,
        }
    }

    /// The sidecar's path for the segment starting at `base_offset`.
    pub fn path(self, dir: &Path, base_offset: u64) -> PathBuf {
        dir.join(segment_file_name(base_offset, self.suffix()))
    }
}

/// The Raft entry a sidecar's content was derived up to (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub raft_index: u64,
    pub term: u64,
}

/// A sidecar written and synced under a temporary name, not yet part of the log.
#[derive(Debug)]
pub struct StagedSidecar {
    pub(crate) kind: SidecarKind,
    pub(crate) base_offset: u64,
    pub(crate) anchor: Anchor,
    pub(crate) tmp: PathBuf,
}

impl StagedSidecar {
    /// Writes `body` as the `kind` sidecar of segment `base_offset` in `dir`, derived up to
    /// `anchor`, under a temporary name, and syncs it. Needs no lock on the log.
    pub fn write(
        dir: &Path,
        kind: SidecarKind,
        base_offset: u64,
        anchor: Anchor,
        body: &[u8],
    ) -> Result<StagedSidecar> {
        let mut tmp = kind.path(dir, base_offset).into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = File::create(&tmp).map_err(|e| LogError::io(&tmp, e))?;
        file.write_all(&encode(kind, anchor, body))
            .map_err(|e| LogError::io(&tmp, e))?;
        crate::failpoint::check("log.sidecar.before_sync").map_err(|e| LogError::io(&tmp, e))?;
        file.sync_all().map_err(|e| LogError::io(&tmp, e))?;
        Ok(StagedSidecar {
            kind,
            base_offset,
            anchor,
            tmp,
        })
    }
}

fn encode(kind: SidecarKind, anchor: Anchor, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_BYTES + body.len());
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_be_bytes());
    b.extend_from_slice(&kind.code().to_be_bytes());
    b.extend_from_slice(&anchor.raft_index.to_be_bytes());
    b.extend_from_slice(&anchor.term.to_be_bytes());
    // A body past u32 is refused on read (MAX_SIDECAR_BODY_BYTES); saturate rather than wrap.
    b.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&b);
    crc.update(body);
    b.extend_from_slice(&crc.finalize().to_be_bytes());
    b.extend_from_slice(body);
    b
}

/// The anchor and body of a sidecar file, or why it cannot be used.
pub(crate) fn decode(
    kind: SidecarKind,
    bytes: &[u8],
) -> std::result::Result<(Anchor, &[u8]), &'static str> {
    let header = bytes.get(..HEADER_BYTES).ok_or("shorter than its header")?;
    let u16_at = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let u32_at =
        |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let u64_at = |i: usize| (u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4));
    if &header[0..4] != MAGIC || u16_at(4) != VERSION || u16_at(6) != kind.code() {
        return Err("not a sidecar of this kind and version");
    }
    let len = u32_at(24) as usize;
    if len > MAX_SIDECAR_BODY_BYTES || bytes.len() != HEADER_BYTES + len {
        return Err("length does not match the file");
    }
    let body = &bytes[HEADER_BYTES..];
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[..28]);
    crc.update(body);
    if crc.finalize() != u32_at(28) {
        return Err("checksum mismatch");
    }
    let anchor = Anchor {
        raft_index: u64_at(8),
        term: u64_at(16),
    };
    Ok((anchor, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_checks_every_header_field_and_the_body() {
        let anchor = Anchor {
            raft_index: 7,
            term: 3,
        };
        let good = encode(SidecarKind::Snapshot, anchor, b"body");
        assert_eq!(
            decode(SidecarKind::Snapshot, &good),
            Ok((anchor, &b"body"[..]))
        );
        assert!(decode(SidecarKind::TxnIndex, &good).is_err());
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(decode(SidecarKind::Snapshot, &bad).is_err(), "flip at {i}");
        }
        for len in 0..good.len() {
            assert!(
                decode(SidecarKind::Snapshot, &good[..len]).is_err(),
                "cut at {len}"
            );
        }
    }
}
