//! Produce: validate each partition's RecordBatch, append it (idempotence checked in the
//! same step), and answer by acks: 0 never, 1 once appended, all (-1) once durable.
//!
//! Kafka's rules kept here: v3+ carries exactly one RecordBatch v2 per partition
//! (otherwise INVALID_RECORD); a batch above `max.message.bytes` is MESSAGE_TOO_LARGE,
//! one above `segment.bytes` RECORD_LIST_TOO_LARGE; a bad CRC or frame
//! CORRUPT_MESSAGE. Every record is decoded before the batch is written, as Kafka's
//! LogValidator does (`log_store::validate`): records that do not match the header
//! (count, offset deltas, lengths) are CORRUPT_MESSAGE; a keyless record on a compacted
//! topic INVALID_RECORD and a CreateTime outside `message.timestamp.before.max.ms` /
//! `after.max.ms` INVALID_TIMESTAMP, each with the offending records listed in
//! `record_errors` (Produce v8+). A transactional batch needs WRITE on the request's
//! transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and the coordinator's
//! word that its producer has the partition in its ongoing transaction
//! (`TxnCoordinator::verify`; INVALID_TXN_STATE, or NOT_ENOUGH_REPLICAS, retriable,
//! when this broker cannot ask the coordinator).
//!
//! A valid batch is then rewritten as the topic asks (`log_store::recode`): stored in
//! the topic's `compression.type` unless that is `producer` (here, on a blocking
//! thread), and, for `message.timestamp.type=LogAppendTime`, stamped with the append
//! time by the partition under its append lock, so stamps follow offsets; the answer's
//! `log_append_time_ms` carries it (-1 for CreateTime topics and duplicates).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use log_store::{BatchHeader, RecodeError, RecordRule, ValidationError};

use super::RequestContext;
use super::{message, Reply};
use crate::acl::{Operation, ResourceType};
use crate::config::TopicConfig;
use crate::internal_batch::now_ms;
use crate::partition::{Partition, PartitionError, PartitionResult, Produce};
use crate::topics::Topic;
use crate::Broker;

/// How long acks=all waits when the request gives no timeout.
const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// What an acks=all answer waits for.
enum Wait {
    /// The high watermark passing an offset in the current term (a duplicate).
    Durable(Arc<Partition>, u64),
    /// The batch's Raft entry committing (or being lost to a new leader).
    Commit(
        tokio::sync::oneshot::Receiver<
            Result<replication::node::Committed, replication::group::ProposeError>,
        >,
    ),
}

/// A partition's answer, and for acks=all what to wait for first.
struct Outcome {
    response: PartitionProduceResponse,
    wait_for: Option<Wait>,
}

fn refused(ctx: &RequestContext, index: i32, code: i16, why: Option<&str>) -> Outcome {
    Outcome {
        response: PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(ctx.code(code))
            .with_base_offset(-1)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(-1)
            .with_error_message(why.and_then(message)),
        wait_for: None,
    }
}

async fn produce_one(
    ctx: &RequestContext,
    acks: i16,
    transactional_id: Option<&str>,
    (topic, index): (&str, i32),
    records: Option<Bytes>,
) -> Outcome {
    let checked = target(&ctx.broker, topic, index)
        .and_then(|(t, p)| Ok((one_batch(records, &t.config)?, t, p)));
    let (records, t, p) = match checked {
        Ok(target) => target,
        Err((code, why)) => return refused(ctx, index, code.code(), why.as_deref()),
    };
    let records = match validate(ctx, index, records, &t.config, now_ms()) {
        Ok(records) => records,
        Err(refusal) => return *refusal,
    };
    let target = (topic, index, &*p);
    let transaction_verified =
        match verify_transaction(ctx, transactional_id, target, &records).await {
            Ok(verified) => verified,
            Err(refusal) => return *refusal,
        };
    let records = match recompress(records, &t.config).await {
        Ok(records) => records,
        Err(why) => return refused(ctx, index, ResponseError::CorruptMessage.code(), Some(&why)),
    };
    // Proposed to the partition's Raft group by its leader, which checks
    // `min.insync.replicas` for acks=all.
    let min_in_sync = if acks == -1 {
        t.config.min_insync_replicas
    } else {
        1
    };
    let produce = Produce {
        min_in_sync,
        awaited: acks == -1,
        stamp: t.config.log_append_time,
        transaction_verified,
    };
    match p.append_replica(records, produce).await {
        Ok(r) => {
            let start = p.offsets().map(|o| o.log_start as i64).unwrap_or(-1);
            let wait_for = match r.committed {
                Some(rx) => Wait::Commit(rx),
                None => Wait::Durable(p.clone(), r.appended.last_offset),
            };
            Outcome {
                response: PartitionProduceResponse::default()
                    .with_index(index)
                    .with_base_offset(r.appended.base_offset as i64)
                    .with_log_append_time_ms(r.log_append_time_ms.unwrap_or(-1))
                    .with_log_start_offset(start),
                wait_for: Some(wait_for),
            }
        }
        Err(e) => refused(ctx, index, e.code(), Some(&e.to_string())),
    }
}

/// Whether the (validated) batch is transactional and its transaction confirmed by
/// the coordinator (here or on another broker; not asked again while the producer has
/// a transaction open in `partition`); the refusal when it is transactional and not
/// confirmed.
async fn verify_transaction(
    ctx: &RequestContext,
    transactional_id: Option<&str>,
    (topic, index, partition): (&str, i32, &Partition),
    records: &[u8],
) -> Result<bool, Box<Outcome>> {
    let Ok(header) = BatchHeader::parse_header(records) else {
        // The partition reports what is wrong with it.
        return Ok(false);
    };
    if !header.is_transactional() {
        return Ok(false);
    }
    let Some(id) = transactional_id else {
        let code = ResponseError::TransactionalIdAuthorizationFailed.code();
        let why = "a transactional batch without a transactional id";
        return Err(Box::new(refused(ctx, index, code, Some(why))));
    };
    if partition.has_open_transaction(header.producer_id) {
        return Ok(true);
    }
    let producer = (header.producer_id, header.producer_epoch);
    ctx.broker
        .txns
        .verify_anywhere(&ctx.broker, id, producer, (topic, index))
        .await
        .map(|()| true)
        .map_err(|e| Box::new(refused(ctx, index, e.produce_code(), Some(&e.to_string()))))
}

/// Why a partition's produce is refused before its records are looked at: a Kafka
/// error and its message.
type Refused = (ResponseError, Option<String>);

/// The topic and partition a produce goes to, when it may go there.
fn target(b: &Broker, topic: &str, index: i32) -> Result<(Arc<Topic>, Arc<Partition>), Refused> {
    if crate::topics::is_internal(topic) {
        let why = "cannot produce to an internal topic";
        return Err((ResponseError::InvalidTopicException, Some(why.into())));
    }
    let unknown = (ResponseError::UnknownTopicOrPartition, None);
    let t = b.topics.get(topic).ok_or(unknown.clone())?;
    let p = t.partition(index).cloned().ok_or(unknown)?;
    if b.disk.low() {
        let why = "free disk space is below storage.min.free.bytes; retry later";
        return Err((ResponseError::KafkaStorageError, Some(why.into())));
    }
    Ok((t, p))
}

/// A partition's records: exactly one whole batch, no larger than a segment.
fn one_batch(records: Option<Bytes>, config: &TopicConfig) -> Result<Bytes, Refused> {
    let records = records.unwrap_or_default();
    let frame = BatchHeader::frame_size(&records)
        .map_err(|e| (ResponseError::CorruptMessage, Some(e.to_string())))?;
    if frame < records.len() {
        let why = "a produce request must carry exactly one record batch per partition";
        return Err((ResponseError::InvalidRecord, Some(why.into())));
    }
    if records.len() as u64 > config.segment_bytes {
        return Err((ResponseError::RecordListTooLarge, None));
    }
    // As the producer sent it, before any recompression (as Kafka checks it).
    if records.len() > config.max_message_bytes as usize {
        let why = format!(
            "a batch of {} bytes is larger than max.message.bytes {}",
            records.len(),
            config.max_message_bytes
        );
        return Err((ResponseError::MessageTooLarge, Some(why)));
    }
    Ok(records)
}

/// The batch in the topic's `compression.type` (on a blocking thread: compressing up to
/// `max.message.bytes` takes a while), or as it came. A batch whose header or CRC is
/// bad goes on as it came: the partition refuses it with the code for its fault (e.g.
/// UNSUPPORTED_FOR_MESSAGE_FORMAT).
async fn recompress(records: Bytes, config: &TopicConfig) -> Result<Bytes, String> {
    let Some(codec) = config.compression else {
        return Ok(records);
    };
    let batch = records.clone();
    let rewritten = tokio::task::spawn_blocking(move || log_store::recompress(&batch, codec))
        .await
        .map_err(|e| format!("recompressing the batch: {e}"))?;
    match rewritten {
        Ok(Some(rewritten)) => Ok(Bytes::from(rewritten)),
        Ok(None) | Err(RecodeError::Batch(_)) => Ok(records),
        Err(e) => Err(e.to_string()),
    }
}

/// Checks every record of the batch against its header and the topic's rules
/// (`log_store::validate`); the refusal when they fail. A header whose max timestamp is
/// not its records' largest is corrected, as Kafka's validator sets it. A batch whose
/// header does not parse is left to the partition's own checks, and a bad CRC is
/// CORRUPT_MESSAGE before anything else, as in Kafka.
fn validate(
    ctx: &RequestContext,
    index: i32,
    records: Bytes,
    config: &TopicConfig,
    now_ms: i64,
) -> Result<Bytes, Box<Outcome>> {
    let header = match BatchHeader::parse_header(&records) {
        Ok(h) if records.len() >= h.size_bytes => h,
        _ => return Ok(records),
    };
    let err = match log_store::validate_records(&records, &header, &config.record_rules(now_ms)) {
        Ok(max) if max == header.max_timestamp => return Ok(records),
        Ok(max) => {
            return Ok(match log_store::set_max_timestamp(&records, max, false) {
                Ok(corrected) => Bytes::from(corrected),
                // A bad CRC: the partition refuses the batch as it came.
                Err(_) => records,
            });
        }
        Err(err) => err,
    };
    if let Err(e) = BatchHeader::parse_validated(&records) {
        let code = ResponseError::CorruptMessage.code();
        return Err(Box::new(refused(ctx, index, code, Some(&e.to_string()))));
    }
    let why = err.to_string();
    Err(Box::new(match err {
        ValidationError::Corrupt(_) => {
            refused(ctx, index, ResponseError::CorruptMessage.code(), Some(&why))
        }
        ValidationError::Records { rule, errors } => {
            let code = match rule {
                RecordRule::MissingKey => ResponseError::InvalidRecord.code(),
                RecordRule::Timestamp => ResponseError::InvalidTimestamp.code(),
            };
            let mut out = refused(ctx, index, code, Some(&why));
            out.response.record_errors = errors
                .into_iter()
                .map(|e| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(e.index)
                        .with_batch_index_error_message(message(e.message))
                })
                .collect();
            out
        }
    }))
}

/// Waits for an acks=all answer to be true: the batch's Raft entry committed (for a
/// retried duplicate: the high watermark past it in the current term). An entry lost
/// to a new leader answers NOT_LEADER_OR_FOLLOWER, so the client retries (safely, when
/// idempotent).
async fn wait_for(wait: Wait, left: Duration) -> PartitionResult<()> {
    match wait {
        Wait::Durable(p, last_offset) => p.wait_durable(last_offset, left).await,
        Wait::Commit(rx) => match tokio::time::timeout(left, rx).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(_))) | Ok(Err(_)) => Err(PartitionError::NotLeader),
            Err(_) => Err(PartitionError::Timeout("the Raft group")),
        },
    }
}

/// Whether some partition was refused for authorization.
fn denied<T, W>(responses: &[(T, Vec<PartitionProduceResponse>, W)]) -> bool {
    let code = ResponseError::TopicAuthorizationFailed.code();
    responses
        .iter()
        .any(|(_, parts, _)| parts.iter().any(|p| p.error_code == code))
}

pub async fn handle(ctx: Arc<RequestContext>, request: ProduceRequest) -> Result<Reply, String> {
    let acks = request.acks;
    let mut waits = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let checks = ctx.checks();
    let transactional_id_allowed = request
        .transactional_id
        .as_ref()
        .is_none_or(|id| checks.allows(Operation::Write, ResourceType::TransactionalId, id));
    for topic in request.topic_data {
        let name = topic.name.as_str().to_string();
        let writable = checks.allows(Operation::Write, ResourceType::Topic, &name);
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let outcome = if !writable {
                let code = ResponseError::TopicAuthorizationFailed.code();
                refused(&ctx, data.index, code, None)
            } else if !matches!(acks, -1..=1) {
                refused(
                    &ctx,
                    data.index,
                    ResponseError::InvalidRequiredAcks.code(),
                    None,
                )
            } else if !transactional_id_allowed {
                refused(
                    &ctx,
                    data.index,
                    ResponseError::TransactionalIdAuthorizationFailed.code(),
                    Some("WRITE on the transactional id is needed"),
                )
            } else {
                let tid = request.transactional_id.as_ref().map(|t| t.as_str());
                produce_one(&ctx, acks, tid, (&name, data.index), data.records).await
            };
            if let Some(w) = outcome.wait_for {
                waits.push((partitions.len(), w));
            }
            partitions.push(outcome.response);
        }
        responses.push((topic.name, partitions, std::mem::take(&mut waits)));
    }
    let build = |responses: Vec<(
        kafka_protocol::messages::TopicName,
        Vec<PartitionProduceResponse>,
    )>| {
        ProduceResponse::default().with_responses(
            responses
                .into_iter()
                .map(|(name, partitions)| {
                    TopicProduceResponse::default()
                        .with_name(name)
                        .with_partition_responses(partitions)
                })
                .collect(),
        )
    };
    match acks {
        // No answer carries the refusal: as Kafka, close the connection so the client
        // notices (here for authorization only; other acks=0 failures stay silent).
        0 if denied(&responses) => Err("an acks=0 produce was not authorized".into()),
        0 => Ok(Reply::Nothing),
        -1 => {
            let timeout = u64::try_from(request.timeout_ms)
                .ok()
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_ACK_TIMEOUT);
            Ok(Reply::Later(Box::pin(async move {
                // One deadline for the whole request, as the client's timeout is.
                let deadline = std::time::Instant::now() + timeout;
                let mut done = Vec::with_capacity(responses.len());
                for (name, mut partitions, waits) in responses {
                    for (i, wait) in waits {
                        let left = deadline.saturating_duration_since(std::time::Instant::now());
                        if let Err(e) = wait_for(wait, left).await {
                            partitions[i].error_code = ctx.code(e.code());
                            partitions[i].base_offset = -1;
                        }
                    }
                    done.push((name, partitions));
                }
                build(done).into()
            })))
        }
        _ => Ok(Reply::now(build(
            responses.into_iter().map(|(n, p, _)| (n, p)).collect(),
        ))),
    }
}
