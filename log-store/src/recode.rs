//! The rewrites a topic's settings ask of a produced batch before the leader proposes
//! it, as Kafka's broker does on append:
//!
//! - `compression.type` other than `producer`: a batch in another codec is stored in the
//!   topic's codec. Only the records section changes (decompressed within
//!   [`MAX_DECOMPRESSED_BATCH_BYTES`], compressed again); offsets, timestamps, producer
//!   id, epoch and sequence stay, so idempotence and offset assignment are unaffected.
//! - `message.timestamp.type=LogAppendTime`: the batch is marked as carrying the append
//!   time, which becomes its max timestamp; consumers read that time for every record.
//!   The records keep their own timestamps, as in Kafka. The broker stamps a batch under
//!   its partition's append lock, so stamps follow offsets.
//!
//! The rewritten batch gets a new length and CRC-32C. The leader rewrites it once, so
//! every replica stores the same bytes.

use crate::batch::{reseal, BatchHeader, Resealed, COMPRESSION_MASK, LOG_APPEND_TIME_FLAG};
use crate::batch::{BatchError, LOG_OVERHEAD_BYTES};
use crate::records::{compress, records_section, MAX_DECOMPRESSED_BATCH_BYTES, RECORDS_AT};

/// Why a produced batch could not be recompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecodeError {
    /// The header or CRC is bad: nothing is rewritten over a corrupt batch.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The records section does not decompress or compress.
    #[error("recompressing the batch: {0}")]
    Codec(String),
}

/// `batch` (one whole RecordBatch v2) with its records in `codec` (0 none, 1 gzip,
/// 2 snappy, 3 lz4, 4 zstd), or `None` when it is in that codec already or holds no
/// records (then nothing is read beyond the header). The CRC is checked before a
/// rewrite: a corrupt batch is refused, never given a fresh CRC.
pub fn recompress(batch: &[u8], codec: u8) -> Result<Option<Vec<u8>>, RecodeError> {
    let header = BatchHeader::parse_header(batch)?;
    if header.compression() == codec || header.records_count <= 0 {
        return Ok(None);
    }
    let header = BatchHeader::parse_validated(batch)?;
    let records = records_section(batch, &header, MAX_DECOMPRESSED_BATCH_BYTES)
        .map_err(RecodeError::Codec)?;
    let section = compress(codec, &records).map_err(RecodeError::Codec)?;
    let mut out = Vec::with_capacity(RECORDS_AT + section.len());
    out.extend_from_slice(&batch[..RECORDS_AT]);
    out.extend_from_slice(&section);
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD_BYTES)
        .map_err(|_| RecodeError::Codec("the recompressed batch is too large".into()))?;
    let fields = Resealed {
        batch_length,
        attributes: (header.attributes & !COMPRESSION_MASK) | i16::from(codec),
        base_timestamp: header.base_timestamp,
        max_timestamp: header.max_timestamp,
        records_count: header.records_count,
    };
    reseal(&mut out, &fields);
    Ok(Some(out))
}

/// `batch` marked as carrying the broker's append time `now_ms` (its max timestamp);
/// the CRC is checked first.
pub fn stamp_log_append_time(batch: &[u8], now_ms: i64) -> Result<Vec<u8>, BatchError> {
    set_max_timestamp(batch, now_ms, true)
}

/// `batch` with its header's max timestamp set to `max_timestamp` (Kafka's validator
/// sets it from the records, so a forged one cannot mislead the time index, time
/// retention or consumers), and marked LogAppendTime when `log_append_time`. The CRC
/// is checked first.
pub fn set_max_timestamp(
    batch: &[u8],
    max_timestamp: i64,
    log_append_time: bool,
) -> Result<Vec<u8>, BatchError> {
    let header = BatchHeader::parse_validated(batch)?;
    let mut out = batch[..header.size_bytes].to_vec();
    let mut attributes = header.attributes;
    if log_append_time {
        attributes |= LOG_APPEND_TIME_FLAG;
    }
    let fields = Resealed {
        batch_length: (header.size_bytes - LOG_OVERHEAD_BYTES) as i32,
        attributes,
        base_timestamp: header.base_timestamp,
        max_timestamp,
        records_count: header.records_count,
    };
    reseal(&mut out, &fields);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::parse_records;
    use bytes::Bytes;
    use strata_testkit::{encode_batch, Compression, RecordSpec, ALL_COMPRESSIONS};

    fn batch(compression: Compression) -> Vec<u8> {
        let specs = (0..20).map(|i| RecordSpec {
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![b'x'; 100 + i])),
            timestamp_ms: 1_000 + i as i64,
        });
        let producer = strata_testkit::Producer {
            id: 7,
            epoch: 2,
            first_sequence: 40,
        };
        encode_batch(specs, producer, compression).to_vec()
    }

    /// The records of `b` as (key, value, timestamp) after decompression.
    fn contents(b: &[u8]) -> Vec<(Option<Vec<u8>>, Vec<u8>, i64)> {
        let h = BatchHeader::parse_validated(b).unwrap();
        let data = records_section(b, &h, MAX_DECOMPRESSED_BATCH_BYTES).unwrap();
        parse_records(&data, h.records_count)
            .unwrap()
            .iter()
            .map(|r| {
                let ts = h.base_timestamp + r.timestamp_delta;
                (r.key.map(<[u8]>::to_vec), r.raw.to_vec(), ts)
            })
            .collect()
    }

    #[test]
    fn every_codec_converts_to_every_other_keeping_records_and_producer() {
        for from in ALL_COMPRESSIONS {
            let original = batch(from);
            let before = BatchHeader::parse_validated(&original).unwrap();
            for to in 0u8..=4 {
                let Some(out) = recompress(&original, to).unwrap() else {
                    assert_eq!(before.compression(), to, "{from:?} -> {to}");
                    continue;
                };
                let after = BatchHeader::parse_validated(&out).unwrap();
                assert_eq!(after.compression(), to);
                assert_eq!(contents(&out), contents(&original), "{from:?} -> {to}");
                assert_eq!(
                    (after.producer_id, after.producer_epoch, after.base_sequence),
                    (7, 2, 40)
                );
                assert_eq!(after.last_offset_delta, before.last_offset_delta);
                assert_eq!(after.max_timestamp, before.max_timestamp);
                assert_eq!(after.size_bytes, out.len());
            }
        }
    }

    #[test]
    fn log_append_time_marks_the_batch_and_sets_its_max_timestamp() {
        let original = batch(Compression::Lz4);
        let out = stamp_log_append_time(&original, 1_700_000_000_000).unwrap();
        let h = BatchHeader::parse_validated(&out).unwrap();
        assert_eq!(h.max_timestamp, 1_700_000_000_000);
        assert_ne!(h.attributes & LOG_APPEND_TIME_FLAG, 0);
        assert_eq!(h.compression(), 3, "the codec is kept");
        assert_eq!(&out[RECORDS_AT..], &original[RECORDS_AT..]);
    }

    #[test]
    fn the_same_codec_changes_nothing_and_a_bad_crc_is_refused() {
        let original = batch(Compression::Gzip);
        assert_eq!(recompress(&original, 1), Ok(None));
        let mut forged = original.clone();
        let last = forged.len() - 1;
        forged[last] ^= 0xff;
        assert!(matches!(recompress(&forged, 4), Err(RecodeError::Batch(_))));
        assert!(stamp_log_append_time(&forged, 1).is_err());
    }
}
