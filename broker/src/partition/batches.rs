//! The batch-level helpers of a partition: checking a produced batch's header,
//! reading past batches that compaction emptied, and where a group's replicas all hold
//! the log up to.

use bytes::Bytes;
use log_store::{BatchHeader, Batches, Log, LogError};

use super::{PartitionError, PartitionResult};

/// The Kafka offset below which `log` holds every batch up to Raft entry `raft_index`.
pub(super) fn offset_held_through(log: &Log, raft_index: u64) -> u64 {
    if raft_index < log.first_raft_index() {
        return log.log_start_offset();
    }
    if raft_index >= log.last_raft_index() {
        return log.next_offset();
    }
    // An index inside the log always has an entry; a failed read keeps every tombstone.
    log.entry(raft_index).map_or(0, |e| e.next_offset)
}

/// The header of a produced batch, refused (as Kafka does) when it is a control batch,
/// a transactional batch whose transaction was not verified, or its record count and
/// offset delta disagree.
pub(super) fn check_produced_header(
    batch: &[u8],
    transaction_verified: bool,
) -> PartitionResult<BatchHeader> {
    let header = BatchHeader::parse_header(batch)
        .map_err(|e| PartitionError::Log(LogError::CorruptBatch(e)))?;
    if batch.len() < header.size_bytes {
        return Err(corrupt_or(batch, PartitionError::InvalidBatch("truncated")));
    }
    if header.is_control() {
        // Only transaction coordinators write markers.
        return Err(corrupt_or(
            batch,
            PartitionError::InvalidBatch("a control batch"),
        ));
    }
    if header.is_transactional() && !transaction_verified {
        return Err(corrupt_or(batch, PartitionError::TransactionNotVerified));
    }
    if header.records_count < 1
        || i64::from(header.records_count) != i64::from(header.last_offset_delta) + 1
    {
        return Err(corrupt_or(
            batch,
            PartitionError::InvalidBatch("record count and last offset delta disagree"),
        ));
    }
    Ok(header)
}

/// `refusal`, unless the batch fails validation (CRC-32C, truncation): then the
/// corruption, which Kafka reports before any other problem of a batch.
pub(super) fn corrupt_or(batch: &[u8], refusal: PartitionError) -> PartitionError {
    match BatchHeader::parse_validated(batch) {
        Ok(_) => refusal,
        Err(e) => PartitionError::Log(LogError::CorruptBatch(e)),
    }
}

/// Whether `chunk` holds a batch with records, and if not, the offset after its last
/// whole batch. Stops at the first batch with records, so the usual case (the first
/// batch has some) parses one header.
pub(super) fn scan_batches(chunk: &Bytes) -> (Option<u64>, bool) {
    let mut next = None;
    for (header, _) in Batches::new(chunk.clone()).map_while(|b| b.ok()) {
        if header.records_count > 0 {
            return (None, true);
        }
        next = Some(header.last_offset() as u64 + 1);
    }
    (next, false)
}

/// `Log::read_bounded`, continued past segments that hold only emptied batches.
pub(super) fn read_past_empty_batches(
    log: &Log,
    offset: u64,
    max_bytes: usize,
    hw: u64,
) -> std::result::Result<Bytes, LogError> {
    let first = log.read_bounded(offset, max_bytes, hw)?;
    let (mut next, any_records) = scan_batches(&first);
    if first.is_empty() || any_records {
        return Ok(first);
    }
    let mut out = bytes::BytesMut::from(&first[..]);
    while let Some(at) = next.filter(|&n| n < hw && out.len() < max_bytes) {
        let chunk = log.read_bounded(at, max_bytes - out.len(), hw)?;
        if chunk.is_empty() {
            break;
        }
        let (chunk_next, chunk_records) = scan_batches(&chunk);
        out.extend_from_slice(&chunk);
        if chunk_records {
            break;
        }
        next = chunk_next.filter(|&n| n > at);
    }
    Ok(out.freeze())
}

/// `batch` stamped with the broker's clock as its LogAppendTime, and the time; its CRC
/// is checked first.
pub(super) fn stamp_append_time(batch: &[u8]) -> PartitionResult<(Bytes, i64)> {
    let now_ms = crate::internal_batch::now_ms();
    let stamped = log_store::stamp_log_append_time(batch, now_ms)
        .map_err(|e| PartitionError::Log(LogError::CorruptBatch(e)))?;
    Ok((Bytes::from(stamped), now_ms))
}
