//! ListOffsets: earliest (-2), latest (-1) and by timestamp — the first record whose
//! timestamp is at or after T, found with the time index and then by walking that one
//! batch's records. Latest, and the end past which a timestamp finds nothing, is the
//! high watermark for `read_uncommitted` and the last stable offset for
//! `read_committed` (isolation level 1, from v2).
//!
//! The walk reads only each record's length, timestamp delta and offset delta (zigzag
//! varints, via `integer-encoding`), allocating nothing: decoding stored records with
//! the codec would let a producer's forged header count or a compression bomb make
//! this request allocate gigabytes. Compressed batches are answered at batch precision
//! (the batch's first offset at or after the log start), as decompressing them would
//! be unbounded work on a client's say-so.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use log_store::records::RECORDS_AT;
use log_store::LogError;

use super::authz::missing_topic;
use super::fetch::READ_COMMITTED;
use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::partition::{Partition, PartitionError};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub fn handle(ctx: &RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let b = &ctx.broker;
    let checks = ctx.checks();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let allowed = checks.allows(Operation::Describe, ResourceType::Topic, &t.name);
            let topic = b.topics.get(t.name.as_str()).filter(|_| allowed);
            let partitions = t
                .partitions
                .into_iter()
                .map(|lp| {
                    let mut out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(lp.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let Some(p) = topic.as_ref().and_then(|t| t.partition(lp.partition_index))
                    else {
                        return out.with_error_code(ctx.code(missing_topic(allowed).code()));
                    };
                    if ctx.version >= 4 {
                        // The field exists from v4: the partition's Raft term.
                        out.leader_epoch = p.leader_epoch();
                    }
                    if let Err(e) = p
                        .check_leader()
                        .and_then(|()| p.check_epoch(lp.current_leader_epoch))
                    {
                        return out.with_error_code(ctx.code(e.code()));
                    }
                    let read_committed = request.isolation_level == READ_COMMITTED;
                    match lookup(p, lp.timestamp, read_committed) {
                        Ok((timestamp, offset)) => {
                            out.with_timestamp(timestamp).with_offset(offset)
                        }
                        Err(e) => out.with_error_code(ctx.code(e.code())),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// `(timestamp, offset)` for one partition; `(-1, -1)` when no record is that recent.
fn lookup(
    p: &Partition,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64), PartitionError> {
    let offsets = p.offsets()?;
    let end = if read_committed {
        p.last_stable_offset()?
    } else {
        offsets.high_watermark
    };
    match timestamp {
        LATEST => return Ok((-1, end as i64)),
        EARLIEST => return Ok((-1, offsets.log_start as i64)),
        t if t < 0 => {
            return Err(PartitionError::Log(LogError::InvalidArgument(format!(
                "timestamp {t} is neither a time nor -1 (latest) or -2 (earliest)"
            ))))
        }
        _ => {}
    }
    let base = p
        .with_log(|log| log.offset_for_timestamp(timestamp))?
        .map_err(PartitionError::Log)?;
    let Some(base) = base else {
        return Ok((-1, -1));
    };
    if base >= end {
        return Ok((-1, -1));
    }
    let batch = p.read(base, 1)?;
    let start = offsets.log_start.max(base);
    let found = first_record_at_or_after(&batch, timestamp, offsets.log_start as i64)
        .unwrap_or((-1, start as i64));
    if found.1 < 0 || found.1 as u64 >= end {
        return Ok((-1, -1));
    }
    Ok(found)
}

/// The first record of the first batch in `batch` with a timestamp ≥ `t`, at or after
/// `log_start`: `(timestamp, offset)`. `None` for a compressed batch or one whose
/// records do not walk cleanly (then the caller answers at batch precision).
fn first_record_at_or_after(batch: &[u8], t: i64, log_start: i64) -> Option<(i64, i64)> {
    use integer_encoding::VarInt;
    let header = log_store::BatchHeader::parse_header(batch).ok()?;
    if header.compression() != 0 || batch.len() < header.size_bytes {
        return None;
    }
    let mut rest = batch.get(RECORDS_AT..header.size_bytes)?;
    for _ in 0..header.records_count {
        let (len, n) = i64::decode_var(rest)?;
        let len = usize::try_from(len).ok()?;
        let record = rest.get(n..n.checked_add(len)?)?;
        rest = &rest[n + len..];
        // attributes (1 byte), timestampDelta (varlong), offsetDelta (varint), …
        let body = record.get(1..)?;
        let (ts_delta, m) = i64::decode_var(body)?;
        let (offset_delta, _) = i32::decode_var(body.get(m..)?)?;
        let timestamp = header.base_timestamp.checked_add(ts_delta)?;
        let offset = header.base_offset.checked_add(i64::from(offset_delta))?;
        if timestamp >= t && offset >= log_start {
            return Some((timestamp, offset));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_uncompressed_records_and_refuses_garbage() {
        // Five records with timestamps 100, 110, …, 140 at offsets 20..=24.
        let specs = (0..5).map(|i| strata_testkit::RecordSpec {
            key: None,
            value: Some(bytes::Bytes::from(vec![b'v'; 10])),
            timestamp_ms: 100 + 10 * i,
        });
        let mut b = strata_testkit::encode_batch(
            specs,
            strata_testkit::NO_PRODUCER,
            strata_testkit::Compression::None,
        )
        .to_vec();
        b[..8].copy_from_slice(&20i64.to_be_bytes());
        assert_eq!(first_record_at_or_after(&b, 0, 0), Some((100, 20)));
        assert_eq!(first_record_at_or_after(&b, 115, 0), Some((120, 22)));
        assert_eq!(first_record_at_or_after(&b, 0, 23), Some((130, 23)));
        assert_eq!(first_record_at_or_after(&b, 141, 0), None);
        for cut in [0, 30, 61, 70, b.len() - 1] {
            assert_eq!(first_record_at_or_after(&b[..cut], 0, 0), None, "cut {cut}");
        }
        let mut garbage = b.clone();
        for byte in &mut garbage[61..] {
            *byte = 0xff;
        }
        assert_eq!(first_record_at_or_after(&garbage, 0, 0), None);
    }
}
