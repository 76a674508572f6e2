//! The producer and transaction state of a partition, kept on disk per segment so that a
//! new leader does not read its whole log to rebuild it:
//!
//! - `NNN.txnindex`: the aborted transactions whose ABORT marker is in closed segment
//!   `NNN` (Kafka's transaction index), as JSON: a list of
//!   `{producer_id, first_offset, last_offset, stable_after}`.
//! - `NNN.snapshot`: the state at the start of segment `NNN`, as JSON: every producer's
//!   epoch, last five batches' sequences and offsets, last timestamp and coordinator
//!   epoch, the open transactions' first offsets, the ended ones not yet known stable,
//!   and the offset up to which batches were applied. The aborted transactions are left
//!   out: the `.txnindex` files before the segment hold them.
//!
//! Every replica writes them, leader or follower, from its own log, in the broker's
//! housekeeping pass: a segment's pair is written once it is closed, after reading its
//! batches, starting from the newest pair already on disk. They are sidecars of the log
//! (`log_store::sidecar`): checksummed, tied to the Raft entry they were derived up to,
//! removed with their segment, and ignored when absent, damaged or stale. So the state a
//! leader loads is always the state a full read of its log would give; a missing pair
//! only costs the read of its segment.
//!
//! A leader then loads the `.txnindex` of every closed segment from the first on (the
//! first missing one ends the run), and the newest `.snapshot` at or before where that
//! run ends, and reads the batches from that snapshot's segment on: only the active
//! segment once the pairs are written.

use std::sync::{Mutex, RwLock};

use log_store::{Anchor, Log, LogError, SegmentInfo, SidecarKind, StagedSidecar};
use tracing::{debug, info_span};

use super::replica_state::{apply_chunk, ReplicaState};
use super::{PartitionError, PartitionResult};
use crate::txn_state::AbortedTxn;

/// Bytes read per step when deriving a closed segment's sidecars.
const SIDECAR_READ_BYTES: usize = 1 << 20;

/// The state at the start of the newest segment whose sidecars (and every earlier
/// closed segment's `.txnindex`) the log holds, and that segment's base offset: the
/// caller applies the batches from there. `(0, empty)` when there is none.
pub(super) fn load(log: &Log) -> (u64, ReplicaState) {
    let segments = log.segments();
    let mut aborted: Vec<AbortedTxn> = Vec::new();
    // aborted.len() after each closed segment of the unbroken run of .txnindex files.
    let mut ends = Vec::new();
    for seg in segments.iter().take_while(|s| !s.active) {
        match read_json::<Vec<AbortedTxn>>(log, SidecarKind::TxnIndex, seg) {
            Some(list) => {
                aborted.extend(list);
                ends.push(aborted.len());
            }
            None => break,
        }
    }
    // The snapshot of segment i holds the state after segments 0..i, whose aborted
    // transactions are the first ends[i - 1]. One taken before the log start is not
    // used: the batches between it and the log start can no longer be read (DeleteRecords
    // inside its segment), and the state must be that of the batches after it.
    let log_start = log.log_start_offset();
    for i in (0..=ends.len()).rev() {
        if segments[i].base_offset < log_start {
            break;
        }
        if let Some(mut state) = read_json::<ReplicaState>(log, SidecarKind::Snapshot, &segments[i])
        {
            aborted.truncate(if i == 0 { 0 } else { ends[i - 1] });
            state.txns.restore_aborted(aborted);
            return (segments[i].base_offset, state);
        }
    }
    (0, ReplicaState::default())
}

/// The `kind` sidecar of `seg`, decoded; `None` when absent, stale, damaged or not
/// what this broker writes.
fn read_json<T: serde::de::DeserializeOwned>(
    log: &Log,
    kind: SidecarKind,
    seg: &SegmentInfo,
) -> Option<T> {
    let body = log.read_sidecar(kind, seg.base_offset)?;
    match serde_json::from_slice(&body) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(base = seg.base_offset, ?kind, error = %e, "undecodable sidecar ignored");
            None
        }
    }
}

/// Where a replica's sidecars stand: the anchor of the active segment's snapshot when
/// the last pass wrote or found every closed segment's pair.
#[derive(Debug, Default)]
pub(super) struct SidecarProgress(Mutex<Option<Anchor>>);

/// Writes the missing sidecars of `log`'s closed segments; the number written. Reads
/// the segments with the log's read lock taken per step, never across the whole pass,
/// and installs each file only if the segment it was derived from is unchanged.
/// Blocking I/O.
pub(super) fn write_missing(
    log: &RwLock<Log>,
    progress: &SidecarProgress,
    high_watermark: u64,
) -> PartitionResult<usize> {
    let read = || log.read().map_err(|_| PartitionError::Offline);
    let (segments, up_to_date) = {
        let log = read()?;
        let segments = log.segments();
        let active = segments.last().map(|s| s.base_offset).unwrap_or(0);
        let anchor = log.sidecar_anchor(SidecarKind::Snapshot, active);
        let done = *progress.0.lock().unwrap_or_else(|p| p.into_inner());
        (segments, anchor.is_some() && anchor == done)
    };
    if up_to_date {
        return Ok(0);
    }
    let span = info_span!("sidecars", dir = %read()?.dir().display());
    let _enter = span.enter();
    let (from, mut state) = load(&*read()?);
    let mut written = 0;
    let closed = segments.iter().take_while(|s| !s.active).count();
    let first = segments.partition_point(|s| s.base_offset < from);
    for j in first..closed {
        let (seg, next) = (&segments[j], &segments[j + 1]);
        let Some(n) = derive_pair(log, seg, next, &mut state, high_watermark)? else {
            return Ok(written); // the log changed under the pass: the next one resumes
        };
        written += n;
    }
    if let Some(active) = segments.last() {
        let anchor = read()?.sidecar_anchor(SidecarKind::Snapshot, active.base_offset);
        *progress.0.lock().unwrap_or_else(|p| p.into_inner()) = anchor;
    }
    debug!(written, "sidecars written");
    Ok(written)
}

/// Applies closed segment `seg` to `state` and writes its `.txnindex` and `next`'s
/// `.snapshot`; `None` when the log changed while it was read. Ended transactions whose
/// marker is below `high_watermark` are dropped from the snapshot: they are stable
/// (committed markers stay below every later high watermark), and would otherwise be
/// carried into every later snapshot.
fn derive_pair(
    log: &RwLock<Log>,
    seg: &SegmentInfo,
    next: &SegmentInfo,
    state: &mut ReplicaState,
    high_watermark: u64,
) -> PartitionResult<Option<usize>> {
    let read = || log.read().map_err(|_| PartitionError::Offline);
    let Some(anchor) = read()?.sidecar_anchor(SidecarKind::TxnIndex, seg.base_offset) else {
        return Ok(None);
    };
    let aborted_before = state.txns.aborted_count();
    let mut offset = seg.base_offset.max(read()?.log_start_offset());
    while offset < next.base_offset {
        let chunk = read()?
            .read_bounded(offset, SIDECAR_READ_BYTES, next.base_offset)
            .map_err(PartitionError::Log)?;
        match apply_chunk(state, chunk).map_err(PartitionError::Log)? {
            Some(n) => offset = n,
            None => break,
        }
    }
    let dir = read()?.dir().to_path_buf();
    state.txns.last_stable_offset(high_watermark);
    let txnindex = json(&state.txns.aborted_after(aborted_before))?;
    let snapshot = json(&*state)?;
    let stage = |kind, base, body: &[u8]| {
        StagedSidecar::write(&dir, kind, base, anchor, body).map_err(PartitionError::Log)
    };
    let staged = [
        stage(SidecarKind::TxnIndex, seg.base_offset, &txnindex)?,
        stage(SidecarKind::Snapshot, next.base_offset, &snapshot)?,
    ];
    // Installed under the read lock: a truncation (write lock) cannot come between the
    // anchor check and the rename.
    // Both are offered even when the first is refused, which removes its staged file.
    let log = read()?;
    let installed = staged
        .map(|s| log.install_sidecar(s))
        .into_iter()
        .collect::<Result<Vec<bool>, LogError>>()
        .map_err(PartitionError::Log)?;
    Ok(installed.iter().all(|&ok| ok).then_some(installed.len()))
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> PartitionResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| {
        PartitionError::Log(LogError::InvalidArgument(format!(
            "sidecar not serializable: {e}"
        )))
    })
}

#[cfg(test)]
mod tests;
