//! ListOffsets: earliest (-2), latest (-1, the high watermark) and by timestamp — the
//! first record whose timestamp is at or after T, found with the time index and then
//! by reading that one batch's records.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;

use crate::connection::RequestContext;
use crate::partition::Partition;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub fn handle(ctx: &RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let b = &ctx.broker;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = b.topics.get(t.name.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|lp| {
                    let mut out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(lp.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    if ctx.version >= 4 {
                        // The field exists from v4; every partition is at epoch 0.
                        out.leader_epoch = 0;
                    }
                    let Some(p) = topic.as_ref().and_then(|t| t.partition(lp.partition_index))
                    else {
                        return out.with_error_code(
                            ctx.code(ResponseError::UnknownTopicOrPartition.code()),
                        );
                    };
                    if lp.current_leader_epoch > 0 {
                        return out
                            .with_error_code(ctx.code(ResponseError::UnknownLeaderEpoch.code()));
                    }
                    match lookup(p, lp.timestamp) {
                        Ok((timestamp, offset)) => {
                            out.with_timestamp(timestamp).with_offset(offset)
                        }
                        Err(code) => out.with_error_code(ctx.code(code)),
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
fn lookup(p: &Partition, timestamp: i64) -> Result<(i64, i64), i16> {
    let offsets = p.offsets()?;
    match timestamp {
        LATEST => return Ok((-1, offsets.high_watermark as i64)),
        EARLIEST => return Ok((-1, offsets.log_start as i64)),
        t if t < 0 => return Err(ResponseError::InvalidRequest.code()),
        _ => {}
    }
    let base = p
        .with_log(|log| log.offset_for_timestamp(timestamp))?
        .map_err(|e| crate::error::log_error_code(&e))?;
    let Some(base) = base else {
        return Ok((-1, -1));
    };
    if base >= offsets.high_watermark {
        return Ok((-1, -1));
    }
    let batch = p.read(base, 1)?;
    // A batch the decoder cannot read (an unknown codec) is answered at batch precision.
    let found = first_record_at_or_after(batch, timestamp, offsets.log_start as i64)
        .unwrap_or((-1, base as i64));
    if found.1 < 0 || found.1 as u64 >= offsets.high_watermark {
        return Ok((-1, -1));
    }
    Ok(found)
}

/// The first record of the first batch in `bytes` with a timestamp ≥ `t`, at or after
/// the log start (DeleteRecords may have moved it into the middle of this batch).
fn first_record_at_or_after(mut bytes: Bytes, t: i64, log_start: i64) -> Option<(i64, i64)> {
    let set = RecordBatchDecoder::decode(&mut bytes).ok()?;
    set.records
        .iter()
        .find(|r| r.timestamp >= t && r.offset >= log_start)
        .map(|r| (r.timestamp, r.offset))
}
