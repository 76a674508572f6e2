//! Decoding the `records` bytes of a fetch response into consumer records, through
//! `kafka-protocol`'s decoder, with the framing checks done by hand (see the parent
//! module).

use std::collections::HashSet;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};

use super::{
    BATCH_HEADER_BYTES, LAST_OFFSET_DELTA_OFFSET, LOG_OVERHEAD_BYTES, MAGIC_OFFSET,
    MAX_RECORDS_PER_COMPRESSED_BATCH, MIN_RECORD_BYTES,
};
use crate::error::{Error, Result};
use crate::record::{ConsumerRecord, Header};

/// What one partition's `records` bytes held.
#[derive(Debug, Default)]
pub struct DecodedRecords {
    /// Data records at or after the requested offset, in offset order.
    pub records: Vec<ConsumerRecord>,
    /// The offset to fetch next: past the last complete batch, control batches
    /// included. `None` when no complete batch was present.
    pub next_offset: Option<i64>,
    /// Bytes of a trailing batch cut short by the fetch size limit.
    pub partial_tail_bytes: usize,
}

/// An aborted transaction a `read_committed` fetch names: its producer id and the
/// offset of its first batch in the partition.
pub type AbortedTxn = (i64, i64);

/// Decodes the complete batches of a fetch response's `records` for `topic`-`partition`
/// fetched at `fetch_offset`: control batches skipped, records below `fetch_offset`
/// (a batch may start earlier) dropped, offset gaps tolerated, a trailing partial batch
/// ignored. A complete batch that fails its CRC or does not decode is an error.
///
/// `aborted` is what a `read_committed` fetch answered (empty otherwise): a
/// transactional batch of a producer is skipped from the first offset of one of its
/// aborted transactions up to its next control batch (the ABORT marker), as Kafka's
/// consumers do.
pub fn decode_records(
    topic: &str,
    partition: i32,
    fetch_offset: i64,
    mut bytes: Bytes,
    aborted: &[AbortedTxn],
) -> Result<DecodedRecords> {
    let mut out = DecodedRecords::default();
    let mut pending: Vec<AbortedTxn> = aborted.to_vec();
    pending.sort_by_key(|&(_, first)| std::cmp::Reverse(first));
    let mut aborting: HashSet<i64> = HashSet::new();
    // One allocation for the call, shared by every record it decodes.
    let shared_topic: Arc<str> = Arc::from(topic);
    while bytes.len() >= LOG_OVERHEAD_BYTES {
        let base_offset = (&bytes[0..8]).get_i64();
        let corrupt = |reason: String| Error::CorruptBatch {
            topic: topic.to_string(),
            partition,
            offset: base_offset,
            reason,
        };
        let batch_length = (&bytes[8..12]).get_i32();
        let total = usize::try_from(batch_length)
            .ok()
            .and_then(|l| l.checked_add(LOG_OVERHEAD_BYTES))
            .ok_or_else(|| corrupt(format!("negative batch length {batch_length}")))?;
        if bytes.len() < total {
            break;
        }
        let batch = bytes.split_to(total);
        let header = BatchHeader::read(&batch).map_err(corrupt)?;
        let last_offset = base_offset.saturating_add(i64::from(header.last_offset_delta.max(0)));
        out.next_offset = Some(last_offset.saturating_add(1));
        while pending
            .last()
            .is_some_and(|&(_, first)| first <= last_offset)
        {
            if let Some((producer_id, _)) = pending.pop() {
                aborting.insert(producer_id);
            }
        }
        if header.control {
            if header.transactional {
                aborting.remove(&header.producer_id);
            }
            continue;
        }
        if header.transactional && aborting.contains(&header.producer_id) {
            continue;
        }
        let set =
            RecordBatchDecoder::decode(&mut batch.clone()).map_err(|e| corrupt(e.to_string()))?;
        out.records.extend(
            set.records
                .into_iter()
                .filter(|r| r.offset >= fetch_offset)
                .map(|r| consumer_record(&shared_topic, partition, r)),
        );
    }
    // A batch cut short by the size limit, or fewer bytes than a frame header.
    out.partial_tail_bytes = bytes.len();
    Ok(out)
}

/// What decoding needs of a complete batch's header.
struct BatchHeader {
    /// The offset of the batch's last record, relative to its base offset.
    last_offset_delta: i32,
    /// Whether the batch holds control records (transaction markers), not data.
    control: bool,
    /// Whether the batch belongs to a transaction, and its producer.
    transactional: bool,
    producer_id: i64,
}

impl BatchHeader {
    /// Reads and checks the header of one complete batch (size, format version, a
    /// record count its bytes can hold); the error is why the batch is corrupt.
    fn read(batch: &Bytes) -> std::result::Result<BatchHeader, String> {
        let total = batch.len();
        if total < BATCH_HEADER_BYTES {
            return Err(format!("batch of {total} bytes is shorter than a header"));
        }
        let magic = batch[MAGIC_OFFSET] as i8;
        if magic != 2 {
            return Err(format!("message format v{magic} is not supported"));
        }
        let last_offset_delta =
            (&batch[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]).get_i32();
        let info =
            RecordBatchDecoder::decode_batch_info(&mut batch.clone()).map_err(|e| e.to_string())?;
        let Some(info) = info.first() else {
            return Err("no batch header".into());
        };
        let limit = if info.compression == Compression::None {
            i32::try_from((total - BATCH_HEADER_BYTES) / MIN_RECORD_BYTES).unwrap_or(i32::MAX)
        } else {
            MAX_RECORDS_PER_COMPRESSED_BATCH
        };
        if info.record_count > limit {
            return Err(format!(
                "{} records cannot fit a batch of {total} bytes",
                info.record_count
            ));
        }
        Ok(BatchHeader {
            last_offset_delta,
            control: info.control,
            transactional: info.transactional,
            producer_id: info.producer_id,
        })
    }
}

/// A decoded record of `topic`-`partition` as the consumer hands it out.
fn consumer_record(topic: &Arc<str>, partition: i32, r: Record) -> ConsumerRecord {
    ConsumerRecord {
        topic: Arc::clone(topic),
        partition,
        offset: r.offset,
        timestamp_ms: r.timestamp,
        timestamp_type: r.timestamp_type,
        key: r.key,
        value: r.value,
        headers: r
            .headers
            .into_iter()
            .map(|(k, v)| Header {
                key: k.to_string(),
                value: v,
            })
            .collect(),
    }
}
