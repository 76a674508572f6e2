//! Fetch: whole batches from each requested partition, never past its high watermark,
//! as the stored bytes (zero-copy slices of the segment map).
//!
//! Limits follow Kafka (KIP-74): `partition_max_bytes` per partition and `max_bytes` for
//! the response, except that the first batch of the first partition with data is
//! returned whole however large, so a consumer can always make progress. Long poll:
//! when fewer than `min_bytes` are ready, the answer waits until a high watermark moves
//! or `max_wait_ms` passes, then is built again. Isolation: `read_uncommitted` reads up
//! to the high watermark; `read_committed` up to the last stable offset, and the answer
//! lists the aborted transactions with records in it, which the client skips. Fetch
//! sessions (KIP-227) are not kept: every answer is a full one
//! with session id 0, which clients treat as sessionless.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::authz::missing_topic;
use super::Reply;
use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::partition::{FlushDemand, Partition};

/// Longest long poll honoured, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);
/// Kafka's `fetch.max.bytes` default: the most record bytes one answer carries (beyond
/// the one whole first batch KIP-74 allows), whatever the client asks.
pub const FETCH_MAX_BYTES: usize = 57_671_680;

pub fn handle(ctx: Arc<RequestContext>, request: FetchRequest) -> Reply {
    // Subscribe before the first read, so data arriving in between still wakes us.
    let mut changed = ctx.broker.topics.watch_data();
    changed.borrow_and_update();
    let (response, bytes) = build(&ctx, &request);
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    if bytes >= request.min_bytes.max(0) as usize || wait.is_zero() || has_error(&response) {
        return Reply::now(response);
    }
    // Nothing sent yet: the answer is built again when data arrives or time is up.
    drop(response);
    let request = detached(request);
    Reply::Later(Box::pin(async move {
        let deadline = Instant::now() + wait;
        // While this poll waits, the requested partitions flush as soon as data arrives.
        let _demand = flush_demand(&ctx, &request);
        loop {
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {
                    changed.borrow_and_update();
                    let (response, bytes) = build(&ctx, &request);
                    if bytes >= request.min_bytes.max(0) as usize || has_error(&response) {
                        return response.into();
                    }
                }
                // Deadline, or the broker is shutting down: answer with what there is.
                Ok(Err(_)) | Err(_) => return build(&ctx, &request).0.into(),
            }
        }
    }))
}

/// `request` with nothing left that points into its frame (decoded strings and unknown
/// tagged fields are slices of it): a parked long poll keeps what it needs, not up to
/// `socket.request.max.bytes` of frame for its whole wait.
fn detached(mut request: FetchRequest) -> FetchRequest {
    let own = |s: &StrBytes| StrBytes::from_string(s.to_string());
    request.cluster_id = request.cluster_id.as_ref().map(own);
    request.rack_id = own(&request.rack_id);
    request.unknown_tagged_fields.clear();
    for t in &mut request.topics {
        t.topic = TopicName(own(&t.topic));
        t.unknown_tagged_fields.clear();
        for p in &mut t.partitions {
            p.unknown_tagged_fields.clear();
        }
    }
    for t in &mut request.forgotten_topics_data {
        t.topic = TopicName(own(&t.topic));
        t.unknown_tagged_fields.clear();
    }
    request
}

/// Marks this long poll as waiting on each requested partition (see
/// [`crate::partition::Partition::flush_demand`]); dropping the result unmarks them.
fn flush_demand(ctx: &RequestContext, request: &FetchRequest) -> Vec<FlushDemand> {
    let mut demand = Vec::new();
    for ft in &request.topics {
        if let Some(topic) = ctx.broker.topics.get(ft.topic.as_str()) {
            for fp in &ft.partitions {
                if let Some(p) = topic.partition(fp.partition) {
                    demand.push(p.flush_demand());
                }
            }
        }
    }
    demand
}

/// What the caller's `consumer_byte_rate` lets one answer carry (`None`: no quota).
fn quota_limit(ctx: &RequestContext) -> Option<usize> {
    let state = ctx.broker.cluster.state();
    if state.quotas.is_empty() {
        return None;
    }
    let (user, client) = ctx.quota_identity();
    state.quotas.fetch_limit(&user, &client)
}

fn has_error(r: &FetchResponse) -> bool {
    r.responses
        .iter()
        .any(|t| t.partitions.iter().any(|p| p.error_code != 0))
}

/// One full answer, and the record bytes in it. Error codes are noted in `ctx` only
/// for the answer actually sent; a rebuilt answer repeats them, which is harmless for
/// the counters' purpose (a long poll rebuilds only when nothing was wrong).
fn build(ctx: &RequestContext, request: &FetchRequest) -> (FetchResponse, usize) {
    let b = &ctx.broker;
    let mut budget = Budget {
        remaining: (request.max_bytes.max(0) as usize)
            .min(FETCH_MAX_BYTES)
            .min(quota_limit(ctx).unwrap_or(usize::MAX)),
        total: 0,
        first_data_seen: false,
    };
    let mut topics = Vec::with_capacity(request.topics.len());
    let checks = ctx.checks();
    for ft in &request.topics {
        let readable = checks.allows(Operation::Read, ResourceType::Topic, &ft.topic);
        let topic = b.topics.get(ft.topic.as_str()).filter(|_| readable);
        let mut partitions = Vec::with_capacity(ft.partitions.len());
        for fp in &ft.partitions {
            let mut out = PartitionData::default()
                .with_partition_index(fp.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica((-1).into())
                .with_aborted_transactions(Some(Vec::new()));
            let read_committed = request.isolation_level == READ_COMMITTED;
            let filled = match topic.as_ref().and_then(|t| t.partition(fp.partition)) {
                Some(p) => fill_partition(p, fp, read_committed, &mut budget, &mut out),
                None => Err(missing_topic(readable).code()),
            };
            if let Err(code) = filled {
                out.error_code = ctx.code(code);
            }
            partitions.push(out);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(ft.topic.clone())
                .with_topic_id(ft.topic_id)
                .with_partitions(partitions),
        );
    }
    (
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics),
        budget.total,
    )
}

/// The bytes one Fetch answer may still carry.
struct Budget {
    remaining: usize,
    total: usize,
    /// Only the first batch of the first partition with data may exceed the limits.
    first_data_seen: bool,
}

/// `isolation_level` of a `read_committed` consumer.
pub const READ_COMMITTED: i8 = 1;

/// Fills `out` for one asked partition: its offsets, then its records within the
/// budget. Only the leader serves, at the client's epoch. The error code when the
/// partition cannot answer (`out` keeps the offsets already known).
fn fill_partition(
    p: &Partition,
    fp: &FetchPartition,
    read_committed: bool,
    budget: &mut Budget,
    out: &mut PartitionData,
) -> Result<(), i16> {
    p.check_leader()
        .and_then(|()| p.check_epoch(fp.current_leader_epoch))
        .map_err(|e| e.code())?;
    let offsets = p.offsets().map_err(|e| e.code())?;
    out.high_watermark = offsets.high_watermark as i64;
    out.log_start_offset = offsets.log_start as i64;
    let offset = fp.fetch_offset;
    if offset < offsets.log_start as i64 || offset > offsets.log_end as i64 {
        return Err(ResponseError::OffsetOutOfRange.code());
    }
    let limit = (fp.partition_max_bytes.max(0) as usize)
        .min(FETCH_MAX_BYTES)
        .min(budget.remaining);
    // The last stable offset is looked up once: a read_committed read reports the one
    // it read up to.
    let lso = || {
        p.last_stable_offset()
            .map(|o| o as i64)
            .map_err(|e| e.code())
    };
    let records = if limit == 0 && budget.first_data_seen {
        out.last_stable_offset = lso()?;
        Bytes::new()
    } else if read_committed {
        let read = p
            .read_committed(offset as u64, limit.max(1))
            .map_err(|e| e.code())?;
        out.last_stable_offset = read.last_stable as i64;
        out.aborted_transactions = Some(
            read.aborted
                .iter()
                .map(|a| {
                    AbortedTransaction::default()
                        .with_producer_id(a.producer_id.into())
                        .with_first_offset(a.first_offset as i64)
                })
                .collect(),
        );
        read.records
    } else {
        out.last_stable_offset = lso()?;
        p.read(offset as u64, limit.max(1)).map_err(|e| e.code())?
    };
    let records = if records.len() > limit && budget.first_data_seen {
        Bytes::new()
    } else {
        records
    };
    if !records.is_empty() {
        budget.first_data_seen = true;
        budget.remaining = budget.remaining.saturating_sub(records.len());
        budget.total += records.len();
    }
    out.records = Some(records);
    Ok(())
}
