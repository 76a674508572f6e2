//! The rewrite a topic's settings ask of a produced batch before the leader proposes it,
//! as Kafka's broker does on append:
//!
//! - `compression.type` other than `producer`: a batch in another codec is stored in the
//!   topic's codec. Only the records section changes (decompressed within
//!   [`MAX_DECOMPRESSED_BATCH_BYTES`], compressed again); offsets, timestamps, producer
//!   id, epoch and sequence stay, so idempotence and offset assignment are unaffected.
//! - `message.timestamp.type=LogAppendTime`: the batch is marked as carrying the append
//!   time, which becomes its max timestamp; consumers read that time for every record.
//!   The records keep their own timestamps, as in Kafka.
//!
//! The rewritten batch gets a new length and CRC-32C. The leader rewrites it once, so
//! every replica stores the same bytes.

use crate::batch::{reseal, BatchHeader, Resealed, COMPRESSION_MASK, LOG_APPEND_TIME_FLAG};
use crate::batch::{BatchError, LOG_OVERHEAD_BYTES};
use crate::records::{compress, records_section, MAX_DECOMPRESSED_BATCH_BYTES, RECORDS_AT};

/// What the topic asks of a produced batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recode {
    /// The codec batches are stored in (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd);
    /// `None` keeps the producer's.
    pub codec: Option<u8>,
    /// The append time (ms since the epoch) to stamp, for LogAppendTime topics.
    pub log_append_time_ms: Option<i64>,
}

/// Why a produced batch could not be rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecodeError {
    /// The header or CRC is bad: nothing is rewritten over a corrupt batch.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The records section does not decompress or compress.
    #[error("recompressing the batch: {0}")]
    Codec(String),
}

impl Recode {
    /// Whether `header`'s batch needs rewriting under these settings.
    pub fn applies_to(&self, header: &BatchHeader) -> bool {
        self.log_append_time_ms.is_some() || self.changes_codec(header)
    }

    fn changes_codec(&self, header: &BatchHeader) -> bool {
        self.codec
            .is_some_and(|c| c != header.compression() && header.records_count > 0)
    }

    /// `batch` (one whole RecordBatch v2) rewritten under these settings, or `None` when
    /// it is stored as it came (then nothing is read beyond the header). The CRC is checked
    /// before a rewrite: a corrupt batch is refused, never given a fresh CRC.
    pub fn apply(&self, batch: &[u8]) -> Result<Option<Vec<u8>>, RecodeError> {
        if *self == Recode::default() {
            return Ok(None);
        }
        if !self.applies_to(&BatchHeader::parse_header(batch)?) {
            return Ok(None);
        }
        let header = BatchHeader::parse_validated(batch)?;
        let mut attributes = header.attributes;
        let mut out = batch[..RECORDS_AT].to_vec();
        match self.codec.filter(|_| self.changes_codec(&header)) {
            Some(codec) => {
                let records = records_section(batch, &header, MAX_DECOMPRESSED_BATCH_BYTES)
                    .map_err(RecodeError::Codec)?;
                let section = compress(codec, &records).map_err(RecodeError::Codec)?;
                out.extend_from_slice(&section);
                attributes = (attributes & !COMPRESSION_MASK) | i16::from(codec);
            }
            None => out.extend_from_slice(&batch[RECORDS_AT..header.size_bytes]),
        }
        let mut max_timestamp = header.max_timestamp;
        if let Some(now_ms) = self.log_append_time_ms {
            attributes |= LOG_APPEND_TIME_FLAG;
            max_timestamp = now_ms;
        }
        let batch_length = i32::try_from(out.len() - LOG_OVERHEAD_BYTES)
            .map_err(|_| RecodeError::Codec("the recompressed batch is too large".into()))?;
        reseal(
            &mut out,
            &Resealed {
                batch_length,
                attributes,
                base_timestamp: header.base_timestamp,
                max_timestamp,
                records_count: header.records_count,
            },
        );
        Ok(Some(out))
    }
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
                let how = Recode {
                    codec: Some(to),
                    log_append_time_ms: None,
                };
                let Some(out) = how.apply(&original).unwrap() else {
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
        let how = Recode {
            codec: None,
            log_append_time_ms: Some(1_700_000_000_000),
        };
        let out = how.apply(&original).unwrap().unwrap();
        let h = BatchHeader::parse_validated(&out).unwrap();
        assert_eq!(h.max_timestamp, 1_700_000_000_000);
        assert_ne!(h.attributes & LOG_APPEND_TIME_FLAG, 0);
        assert_eq!(h.compression(), 3, "the codec is kept");
        assert_eq!(&out[RECORDS_AT..], &original[RECORDS_AT..]);
    }

    #[test]
    fn nothing_asked_changes_nothing_and_a_bad_crc_is_refused() {
        let original = batch(Compression::Gzip);
        assert_eq!(Recode::default().apply(&original), Ok(None));
        let keep = Recode {
            codec: Some(1),
            log_append_time_ms: None,
        };
        assert_eq!(keep.apply(&original), Ok(None));
        let mut forged = original.clone();
        let last = forged.len() - 1;
        forged[last] ^= 0xff;
        let to_zstd = Recode {
            codec: Some(4),
            log_append_time_ms: None,
        };
        assert!(matches!(to_zstd.apply(&forged), Err(RecodeError::Batch(_))));
    }
}
