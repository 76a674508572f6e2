//! RecordBatch v2 in and out, through `kafka-protocol`'s encoder and decoder: building
//! one produce batch (producer id, epoch, base sequence, compression), and turning the
//! `records` bytes of a fetch response into consumer records.
//!
//! Only two fixed header fields are read here by hand, for framing: the batch length
//! (to find a trailing partial batch before the decoder sees it) and the last offset
//! delta (a compacted batch's next offset is past its last surviving record).

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

use crate::error::{Error, Result};
use crate::record::{ConsumerRecord, Header};

/// Bytes before a batch's `batchLength` field ends: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Offset of `magic` within a batch.
const MAGIC_OFFSET: usize = 16;
/// Offset of `lastOffsetDelta` within a batch.
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// Size of a v2 batch header (no records).
pub const BATCH_HEADER_BYTES: usize = 61;
/// The smallest encoded record: length, attributes, timestamp delta, offset delta,
/// key length, value length, header count — one byte each.
const MIN_RECORD_BYTES: usize = 7;
/// Most records accepted in one compressed batch, whose decompressed size the header
/// does not tell: bounds what a hostile batch makes the decoder reserve.
pub const MAX_RECORDS_PER_COMPRESSED_BATCH: i32 = 1 << 20;

/// The idempotent producer's identity, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    /// The producer id InitProducerId assigned.
    pub producer_id: i64,
    /// The epoch of that producer id.
    pub producer_epoch: i16,
}

/// A record as it goes into a batch.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    /// The key; `None` is a null key.
    pub key: Option<Bytes>,
    /// The value; `None` is a null value (a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// The headers, in order.
    pub headers: Vec<Header>,
    /// Timestamp in ms since the Unix epoch.
    pub timestamp_ms: i64,
}

/// Encodes `records` as exactly one RecordBatch v2 with offset deltas 0..n. With an
/// identity, the batch carries its producer id and epoch and `base_sequence`; without,
/// the "no producer" values. Fails on an empty record list.
pub fn encode_batch(
    records: &[BatchRecord],
    identity: Option<ProducerIdentity>,
    base_sequence: i32,
    compression: Compression,
) -> Result<Bytes> {
    if records.is_empty() {
        return Err(Error::InvalidArgument("a batch needs a record".into()));
    }
    let (producer_id, producer_epoch, base_sequence) = match identity {
        Some(id) => (id.producer_id, id.producer_epoch, base_sequence),
        None => (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE),
    };
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let delta = i as i32; // records.len() ≤ what fits a request, far below 2^31
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(delta),
                // offset − sequence must be the same for every record, or the encoder
                // starts a new batch.
                sequence: base_sequence.wrapping_add(delta),
                timestamp: r.timestamp_ms,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|h| (StrBytes::from_string(h.key.clone()), h.value.clone()))
                    .collect::<IndexMap<_, _>>(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| Error::InvalidArgument(format!("cannot encode a record batch: {e}")))?;
    Ok(buf.freeze())
}

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

/// Decodes the complete batches of a fetch response's `records` for `topic`-`partition`
/// fetched at `fetch_offset`: control batches skipped, records below `fetch_offset`
/// (a batch may start earlier) dropped, offset gaps tolerated, a trailing partial batch
/// ignored. A complete batch that fails its CRC or does not decode is an error.
pub fn decode_records(
    topic: &str,
    partition: i32,
    fetch_offset: i64,
    mut bytes: Bytes,
) -> Result<DecodedRecords> {
    let mut out = DecodedRecords::default();
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
        if total < BATCH_HEADER_BYTES {
            return Err(corrupt(format!(
                "batch of {total} bytes is shorter than a header"
            )));
        }
        let magic = batch[MAGIC_OFFSET] as i8;
        if magic != 2 {
            return Err(corrupt(format!("message format v{magic} is not supported")));
        }
        let last_offset_delta =
            (&batch[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]).get_i32();
        let info = RecordBatchDecoder::decode_batch_info(&mut batch.clone())
            .map_err(|e| corrupt(e.to_string()))?;
        let Some(info) = info.first() else {
            return Err(corrupt("no batch header".into()));
        };
        let limit = if info.compression == Compression::None {
            i32::try_from((total - BATCH_HEADER_BYTES) / MIN_RECORD_BYTES).unwrap_or(i32::MAX)
        } else {
            MAX_RECORDS_PER_COMPRESSED_BATCH
        };
        if info.record_count > limit {
            return Err(corrupt(format!(
                "{} records cannot fit a batch of {total} bytes",
                info.record_count
            )));
        }
        out.next_offset = Some(
            base_offset
                .saturating_add(i64::from(last_offset_delta.max(0)))
                .saturating_add(1),
        );
        if info.control {
            continue;
        }
        let set =
            RecordBatchDecoder::decode(&mut batch.clone()).map_err(|e| corrupt(e.to_string()))?;
        for r in set.records {
            if r.offset < fetch_offset {
                continue;
            }
            out.records.push(ConsumerRecord {
                topic: topic.to_string(),
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
            });
        }
    }
    // A batch cut short by the size limit, or fewer bytes than a frame header.
    out.partial_tail_bytes = bytes.len();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(n: usize) -> Vec<BatchRecord> {
        (0..n)
            .map(|i| BatchRecord {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("value-{i}"))),
                headers: vec![Header {
                    key: "h".into(),
                    value: Some(Bytes::from_static(b"v")),
                }],
                timestamp_ms: 1_700_000_000_000 + i as i64,
            })
            .collect()
    }

    /// Sets a batch's base offset, as a broker does on append.
    fn at_offset(batch: &Bytes, base_offset: i64) -> BytesMut {
        let mut b = BytesMut::from(&batch[..]);
        b[0..8].copy_from_slice(&base_offset.to_be_bytes());
        b
    }

    #[test]
    fn idempotent_batches_carry_identity_and_sequence() {
        let id = ProducerIdentity {
            producer_id: 42,
            producer_epoch: 3,
        };
        let batch = encode_batch(&recs(3), Some(id), 17, Compression::None).unwrap();
        let info = RecordBatchDecoder::decode_batch_info(&mut batch.clone()).unwrap();
        assert_eq!(info.len(), 1, "one batch");
        assert_eq!(info[0].producer_id, 42);
        assert_eq!(info[0].producer_epoch, 3);
        assert_eq!(info[0].base_sequence, 17);
        assert_eq!(info[0].record_count, 3);
        let set = RecordBatchDecoder::decode(&mut batch.clone()).unwrap();
        let seqs: Vec<i32> = set.records.iter().map(|r| r.sequence).collect();
        assert_eq!(seqs, vec![17, 18, 19]);
        // Sequences wrap at i32::MAX without splitting the batch.
        let batch = encode_batch(&recs(3), Some(id), i32::MAX, Compression::None).unwrap();
        let info = RecordBatchDecoder::decode_batch_info(&mut batch.clone()).unwrap();
        assert_eq!((info.len(), info[0].base_sequence), (1, i32::MAX));
    }

    #[test]
    fn plain_batches_stay_one_batch() {
        let batch = encode_batch(&recs(5), None, 0, Compression::None).unwrap();
        let info = RecordBatchDecoder::decode_batch_info(&mut batch.clone()).unwrap();
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].producer_id, NO_PRODUCER_ID);
        assert_eq!(info[0].base_sequence, NO_SEQUENCE);
        assert!(encode_batch(&[], None, 0, Compression::None).is_err());
    }

    #[test]
    fn every_compression_round_trips() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = encode_batch(&recs(4), None, 0, c).unwrap();
            let out = decode_records("t", 0, 0, at_offset(&batch, 0).freeze()).unwrap();
            assert_eq!(out.records.len(), 4, "{c:?}");
            assert_eq!(out.records[3].value.as_deref(), Some(&b"value-3"[..]));
            assert_eq!(out.records[3].key.as_deref(), Some(&b"k3"[..]));
            assert_eq!(out.records[3].timestamp_ms, 1_700_000_000_003);
            assert_eq!(out.records[1].headers[0].key, "h");
            assert_eq!(out.next_offset, Some(4));
        }
    }

    #[test]
    fn decoding_drops_early_records_skips_gaps_and_partial_tails() {
        let mut all = BytesMut::new();
        let b = encode_batch(&recs(5), None, 0, Compression::None).unwrap();
        all.extend_from_slice(&at_offset(&b, 10)); // offsets 10..=14
        all.extend_from_slice(&at_offset(&b, 20)); // a gap: 15..=19 compacted away
        let tail = at_offset(&b, 25);
        all.extend_from_slice(&tail[..tail.len() - 7]); // cut short
        let out = decode_records("t", 2, 12, all.freeze()).unwrap();
        let offsets: Vec<i64> = out.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![12, 13, 14, 20, 21, 22, 23, 24]);
        assert_eq!(out.next_offset, Some(25));
        assert_eq!(out.partial_tail_bytes, tail.len() - 7);
        assert!(out
            .records
            .iter()
            .all(|r| r.partition == 2 && r.topic == "t"));
    }

    #[test]
    fn control_batches_are_skipped_but_advance_the_offset() {
        let control = Record {
            transactional: true,
            control: true,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: 9,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: 5,
            sequence: -1,
            timestamp: 0,
            // A COMMIT marker: version 0, type 1.
            key: Some(Bytes::from_static(&[0, 0, 0, 1])),
            value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
            headers: IndexMap::new(),
        };
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            [&control],
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        let data = encode_batch(&recs(1), None, 0, Compression::None).unwrap();
        buf.extend_from_slice(&at_offset(&data, 6));
        let out = decode_records("t", 0, 0, buf.freeze()).unwrap();
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].offset, 6);
        assert_eq!(out.next_offset, Some(7));
    }

    #[test]
    fn corruption_is_an_error_not_a_panic() {
        let b = encode_batch(&recs(2), None, 0, Compression::None).unwrap();
        let mut bad = at_offset(&b, 0);
        let last = bad.len() - 1;
        bad[last] ^= 0xff; // CRC no longer matches
        let err = decode_records("t", 0, 0, bad.freeze()).unwrap_err();
        assert!(matches!(err, Error::CorruptBatch { .. }), "{err}");
        // A forged record count far beyond what the bytes can hold.
        let mut forged = at_offset(&b, 0);
        forged[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_records("t", 0, 0, forged.freeze()).is_err());
        // Negative length, wrong magic, a too-short "batch".
        let mut neg = at_offset(&b, 0);
        neg[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(decode_records("t", 0, 0, neg.freeze()).is_err());
        let mut v1 = at_offset(&b, 0);
        v1[MAGIC_OFFSET] = 1;
        assert!(decode_records("t", 0, 0, v1.freeze()).is_err());
        let mut short = BytesMut::from(&[0u8; 20][..]);
        short[8..12].copy_from_slice(&8i32.to_be_bytes());
        assert!(decode_records("t", 0, 0, short.freeze()).is_err());
        // Garbage shorter than a frame header is a partial tail, not an error.
        let out = decode_records("t", 0, 0, Bytes::from_static(&[1, 2, 3])).unwrap();
        assert_eq!((out.records.len(), out.partial_tail_bytes), (0, 3));
    }
}
