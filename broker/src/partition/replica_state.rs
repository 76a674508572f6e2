//! What a partition's leader derives from its log: the idempotent producers' sequences
//! and the transactions open or aborted here. Both are rebuilt by the first request of
//! a new term that needs them (this log holds every entry the old leader may have
//! acknowledged), then kept up to date by the leader's appends. The rebuild starts from
//! the sidecars of the closed segments (`sidecars.rs`) and reads only the batches after
//! the newest of them.

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use log_store::{BatchHeader, Batches, Log, LogError};
use serde::{Deserialize, Serialize};

use super::{sidecars, PartitionError, PartitionResult};
use crate::control_batch::{self, Marker};
use crate::metrics::Metrics;
use crate::producer_state::ProducerStates;
use crate::txn_state::TxnState;

/// Bytes read per step when rebuilding the state from the log.
const REBUILD_READ_BYTES: usize = 1 << 20;

/// The leader's state of one partition, for the term it was built in. Serialized, it
/// is a segment's producer snapshot (`sidecars.rs`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ReplicaState {
    /// The term this state was rebuilt in (`None`: never built).
    #[serde(skip)]
    term: Option<u64>,
    pub producers: ProducerStates,
    pub txns: TxnState,
}

impl ReplicaState {
    /// Applies a batch the leader appended at `base..=last` (`marker`: the kind of a
    /// control batch it wrote itself).
    pub fn record(&mut self, h: &BatchHeader, base: u64, last: u64, marker: Option<Marker>) {
        self.producers.record(h, base, last);
        if h.is_control() && h.is_transactional() {
            let coordinator_epoch = marker.map_or(-1, |m| m.coordinator_epoch);
            self.producers
                .end_transaction(h.producer_id, h.producer_epoch, coordinator_epoch);
        }
        self.txns.apply(h, base, last, marker.map(|m| m.kind));
    }
}

/// Locks `state`, rebuilt from `log` first unless it was built in `term` (counted in
/// `metrics`).
pub(super) fn loaded<'a>(
    state: &'a Mutex<ReplicaState>,
    log: &std::sync::RwLock<Log>,
    term: u64,
    metrics: &Metrics,
) -> PartitionResult<MutexGuard<'a, ReplicaState>> {
    // Updates are single calls that leave the state consistent; a panic in one cannot
    // leave it half-changed.
    let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
    if guard.term != Some(term) {
        // A poisoned lock means a panic while appending; refuse rather than guess.
        let log = log.read().map_err(|_| PartitionError::Offline)?;
        let started = std::time::Instant::now();
        let (rebuilt, from, read_bytes) = rebuild(&log).map_err(PartitionError::Log)?;
        *guard = rebuilt;
        guard.term = Some(term);
        metrics.state_rebuilds.inc();
        metrics.state_rebuild_read_bytes.inc_by(read_bytes);
        tracing::info!(
            dir = %log.dir().display(),
            term,
            from,
            read_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "producer state rebuilt"
        );
    }
    Ok(guard)
}

/// Locks `state` if it was built in `term`; `None` otherwise (nothing is rebuilt).
pub(super) fn if_loaded(
    state: &Mutex<ReplicaState>,
    term: u64,
) -> Option<MutexGuard<'_, ReplicaState>> {
    let guard = state.lock().unwrap_or_else(|p| p.into_inner());
    (guard.term == Some(term)).then_some(guard)
}

/// The state of every batch in `log`: producers' sequences (idempotence across
/// restarts) and transactions. Starts from the newest segment whose sidecars the log
/// holds (the active one once they are written) and reads the batches from there.
/// Returns the state, the offset the read started at and the bytes it read.
pub(super) fn rebuild(log: &Log) -> Result<(ReplicaState, u64, u64), LogError> {
    let (from, mut state) = sidecars::load(log);
    let from = from.max(log.log_start_offset());
    let (mut offset, mut read_bytes) = (from, 0u64);
    loop {
        let chunk = log.read(offset, REBUILD_READ_BYTES)?;
        read_bytes += chunk.len() as u64;
        match apply_chunk(&mut state, chunk)? {
            Some(next) => offset = next,
            None => return Ok((state, from, read_bytes)),
        }
    }
}

/// Applies every batch of `chunk` (whole batches, as the log returns them) to `state`;
/// the offset after the last one, `None` for an empty chunk.
pub(super) fn apply_chunk(state: &mut ReplicaState, chunk: Bytes) -> Result<Option<u64>, LogError> {
    let mut next = None;
    for item in Batches::new(chunk) {
        let (header, bytes) = item.map_err(LogError::CorruptBatch)?;
        let base = header.base_offset as u64;
        let last = header.last_offset() as u64;
        let marker = if header.is_control() {
            read_marker(&header, bytes)
        } else {
            None
        };
        state.record(&header, base, last, marker);
        next = Some(last + 1);
    }
    Ok(next)
}

/// The kind of a stored control batch's marker; an unreadable one is logged and ends
/// nothing (control batches are written only by this broker and checked by CRC).
fn read_marker(header: &BatchHeader, bytes: bytes::Bytes) -> Option<Marker> {
    match control_batch::decode(bytes) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(offset = header.base_offset, error = %e, "unreadable transaction marker");
            None
        }
    }
}
