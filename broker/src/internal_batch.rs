//! Batches the broker writes itself (group metadata and offsets in
//! `__consumer_offsets`, controller records, transaction state): one uncompressed
//! RecordBatch v2 with no producer (or, for offsets committed inside a transaction, the
//! transaction's producer and no sequence), encoded by the `kafka-protocol` codec.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Encodes `records` (key, value: `None` is a tombstone) as one batch stamped `now_ms`.
/// `Err` only if the codec refuses (it does not for uncompressed records).
pub fn encode(
    records: Vec<(Option<Bytes>, Option<Bytes>)>,
    now_ms: i64,
) -> Result<Vec<u8>, String> {
    encode_as(records, now_ms, None)
}

/// [`encode`] as a transactional batch of producer `(id, epoch)`, with no sequence:
/// the group coordinator's offsets committed inside a transaction.
pub fn encode_transactional(
    records: Vec<(Option<Bytes>, Option<Bytes>)>,
    now_ms: i64,
    producer: (i64, i16),
) -> Result<Vec<u8>, String> {
    encode_as(records, now_ms, Some(producer))
}

fn encode_as(
    records: Vec<(Option<Bytes>, Option<Bytes>)>,
    now_ms: i64,
    producer: Option<(i64, i16)>,
) -> Result<Vec<u8>, String> {
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever `offset - sequence` changes, and
            // takes the first record's sequence as the batch's: -1, "no producer".
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key,
            value,
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::with_capacity(128);
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(buf.to_vec())
}

/// One decoded record: key, value (`None`: tombstone) and offset.
pub type Decoded = (Option<Bytes>, Option<Bytes>, i64);

/// The smallest encoded record (length, attributes, three varints, key and value
/// lengths, header count): bounds the record count a batch header may claim.
const MIN_RECORD_BYTES: usize = 7;

/// The records of stored batch bytes. A header that claims more records than the
/// bytes can hold is refused before anything is allocated for them.
pub fn decode(mut batch: Bytes) -> Result<Vec<Decoded>, String> {
    let header = log_store::BatchHeader::parse_header(&batch).map_err(|e| e.to_string())?;
    if header.records_count.max(0) as usize > batch.len() / MIN_RECORD_BYTES {
        return Err(format!(
            "the batch claims {} records in {} bytes",
            header.records_count,
            batch.len()
        ));
    }
    let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| e.to_string())?;
    Ok(set
        .records
        .into_iter()
        .map(|r| (r.key, r.value, r.offset))
        .collect())
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
