//! RecordBatch v2 in and out: building one produce batch (producer id, epoch, base
//! sequence, compression), and turning the `records` bytes of a fetch response into
//! consumer records through `kafka-protocol`'s decoder.
//!
//! The producer builds its batches with [`BatchBuilder`], which appends each record's
//! bytes to one growing buffer as the record arrives (no per-record allocation, no
//! second pass) and fills the fixed 61-byte header once the batch is closed: this is
//! the hot path of every produced record. Its output is byte for byte what
//! `kafka-protocol`'s `RecordBatchEncoder` makes of the same records (tests below),
//! whose compressors it uses; the checksum is the `crc32c` crate's. [`encode_batch`]
//! is that encoder, kept for one-shot batches and as the reference.
//!
//! Decoding (`decode.rs`) reads only two fixed header fields by hand, for framing: the batch length
//! (to find a trailing partial batch before the decoder sees it) and the last offset
//! delta (a compacted batch's next offset is past its last surviving record).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

use crate::error::{Error, Result};
use crate::record::Header;

mod decode;
pub use decode::{decode_records, AbortedTxn, DecodedRecords};

/// Bytes before a batch's `batchLength` field ends: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Offset of `magic` within a batch.
const MAGIC_OFFSET: usize = 16;
/// Offset of `lastOffsetDelta` within a batch.
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// Size of a v2 batch header (no records).
pub const BATCH_HEADER_BYTES: usize = 61;
/// Offset of `crc` within a batch; the checksum covers everything after it.
const CRC_OFFSET: usize = 17;
/// Offset of `attributes` within a batch: where the checksummed bytes start.
const ATTRIBUTES_OFFSET: usize = 21;
/// The attributes bit of a batch in a transaction.
const TRANSACTIONAL_ATTRIBUTE: i16 = 1 << 4;
/// Offset of `producerId` within a batch (then producerEpoch, baseSequence).
const PRODUCER_ID_OFFSET: usize = 43;
/// Offset of `producerEpoch` within a batch.
const PRODUCER_EPOCH_OFFSET: usize = 51;
/// Offset of `baseSequence` within a batch.
const BASE_SEQUENCE_OFFSET: usize = 53;
/// The record batch format version written.
const MAGIC_V2: u8 = 2;
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
    /// A transactional producer's: its batches carry the transactional attribute.
    pub transactional: bool,
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
                transactional: identity.is_some_and(|id| id.transactional),
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

/// One RecordBatch v2 under construction: records are encoded into the batch's own
/// buffer as they are pushed (offset delta = push order, timestamp delta from the first
/// record's timestamp, as Kafka's `MemoryRecordsBuilder` does), the header is written
/// by [`BatchBuilder::finish`].
#[derive(Debug)]
pub struct BatchBuilder {
    /// A header's worth of room, then the uncompressed records.
    buf: BytesMut,
    records: i32,
    first_timestamp_ms: i64,
    max_timestamp_ms: i64,
}

impl BatchBuilder {
    /// An empty batch with room for `record_bytes` of records before it grows.
    pub fn with_capacity(record_bytes: usize) -> BatchBuilder {
        let mut buf = BytesMut::with_capacity(BATCH_HEADER_BYTES + record_bytes);
        buf.put_bytes(0, BATCH_HEADER_BYTES);
        BatchBuilder {
            buf,
            records: 0,
            first_timestamp_ms: 0,
            max_timestamp_ms: 0,
        }
    }

    /// Records pushed so far.
    pub fn len(&self) -> usize {
        self.records as usize // never negative: counts up from 0
    }

    /// Whether no record was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The uncompressed size of the batch so far, header included.
    pub fn size_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Appends one record. Fails (and appends nothing) when a length does not fit the
    /// format's 32-bit fields or the timestamp is too far from the batch's first.
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
        timestamp_ms: i64,
    ) -> Result<()> {
        let too_large =
            |what: &str| Error::InvalidArgument(format!("{what} is too large for a record batch"));
        let first = if self.records == 0 {
            timestamp_ms
        } else {
            self.first_timestamp_ms
        };
        let timestamp_delta = timestamp_ms
            .checked_sub(first)
            .ok_or_else(|| too_large("the timestamp spread"))?;
        let offset_delta = self.records;
        let field = |b: Option<&[u8]>| -> Result<i32> {
            b.map_or(Ok(-1), |b| {
                i32::try_from(b.len()).map_err(|_| too_large("a key, value or header"))
            })
        };
        let (key_len, value_len) = (field(key)?, field(value)?);
        let header_count =
            i32::try_from(headers.len()).map_err(|_| too_large("the header count"))?;
        let mut body_bytes = 1 // attributes
            + varlong_bytes(timestamp_delta)
            + varlong_bytes(i64::from(offset_delta))
            + varlong_bytes(i64::from(key_len))
            + key.map_or(0, <[u8]>::len)
            + varlong_bytes(i64::from(value_len))
            + value.map_or(0, <[u8]>::len)
            + varlong_bytes(i64::from(header_count));
        for h in headers {
            let key_len = field(Some(h.key.as_bytes()))?;
            let value_len = field(h.value.as_deref())?;
            body_bytes += varlong_bytes(i64::from(key_len))
                + h.key.len()
                + varlong_bytes(i64::from(value_len))
                + h.value.as_ref().map_or(0, Bytes::len);
        }
        let body_len = i32::try_from(body_bytes).map_err(|_| too_large("a record"))?;
        let buf = &mut self.buf;
        buf.reserve(varlong_bytes(i64::from(body_len)) + body_bytes);
        put_varlong(buf, i64::from(body_len));
        buf.put_u8(0); // record attributes: none are defined
        put_varlong(buf, timestamp_delta);
        put_varlong(buf, i64::from(offset_delta));
        put_varlong(buf, i64::from(key_len));
        buf.put_slice(key.unwrap_or_default());
        put_varlong(buf, i64::from(value_len));
        buf.put_slice(value.unwrap_or_default());
        put_varlong(buf, i64::from(header_count));
        for h in headers {
            put_varlong(buf, h.key.len() as i64); // checked above
            buf.put_slice(h.key.as_bytes());
            match &h.value {
                Some(v) => {
                    put_varlong(buf, v.len() as i64); // checked above
                    buf.put_slice(v);
                }
                None => put_varlong(buf, -1),
            }
        }
        if self.records == 0 {
            self.first_timestamp_ms = timestamp_ms;
            self.max_timestamp_ms = timestamp_ms;
        } else {
            self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        }
        self.records += 1;
        Ok(())
    }

    /// Closes the batch: compresses the records if asked, writes the header (with the
    /// producer identity and `base_sequence`, or the "no producer" values) and the
    /// CRC-32C. Fails on an empty batch or a failing compressor.
    pub fn finish(
        self,
        identity: Option<ProducerIdentity>,
        base_sequence: i32,
        compression: Compression,
    ) -> Result<Bytes> {
        if self.records == 0 {
            return Err(Error::InvalidArgument("a batch needs a record".into()));
        }
        let mut out = match compression {
            Compression::None => self.buf,
            codec => {
                let records = &self.buf[BATCH_HEADER_BYTES..];
                let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + records.len() / 2);
                out.put_bytes(0, BATCH_HEADER_BYTES);
                let copy = |tmp: &mut BytesMut| {
                    tmp.put_slice(records);
                    Ok(())
                };
                match codec {
                    Compression::Gzip => Gzip::compress(&mut out, copy),
                    Compression::Snappy => Snappy::compress(&mut out, copy),
                    Compression::Lz4 => Lz4::compress(&mut out, copy),
                    Compression::Zstd => Zstd::compress(&mut out, copy),
                    Compression::None => Ok(()),
                }
                .map_err(|e| {
                    Error::InvalidArgument(format!("cannot compress a record batch: {e}"))
                })?;
                out
            }
        };
        let batch_length = i32::try_from(out.len() - LOG_OVERHEAD_BYTES).map_err(|_| {
            Error::InvalidArgument(format!("a batch of {} bytes is too large", out.len()))
        })?;
        let mut header = &mut out[..BATCH_HEADER_BYTES];
        header.put_i64(0); // base offset: the broker assigns it
        header.put_i32(batch_length);
        header.put_i32(NO_PARTITION_LEADER_EPOCH);
        header.put_u8(MAGIC_V2);
        header.put_u32(0); // CRC, below
        header.put_i16(compression as i16);
        header.put_i32(self.records - 1);
        header.put_i64(self.first_timestamp_ms);
        header.put_i64(self.max_timestamp_ms);
        header.put_i64(NO_PRODUCER_ID);
        header.put_i16(NO_PRODUCER_EPOCH);
        header.put_i32(NO_SEQUENCE);
        header.put_i32(self.records);
        stamp(&mut out, identity, base_sequence);
        Ok(out.freeze())
    }
}

/// Writes the producer identity and base sequence (or the "no producer" values) into
/// a finished batch and recomputes its CRC. These fields are outside the records, so a
/// batch whose producer id was renewed is re-stamped without re-encoding.
fn stamp(batch: &mut [u8], identity: Option<ProducerIdentity>, base_sequence: i32) {
    let mut attributes =
        i16::from_be_bytes([batch[ATTRIBUTES_OFFSET], batch[ATTRIBUTES_OFFSET + 1]])
            & !TRANSACTIONAL_ATTRIBUTE;
    if identity.is_some_and(|id| id.transactional) {
        attributes |= TRANSACTIONAL_ATTRIBUTE;
    }
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    let (producer_id, producer_epoch, base_sequence) = match identity {
        Some(id) => (id.producer_id, id.producer_epoch, base_sequence),
        None => (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE),
    };
    batch[PRODUCER_ID_OFFSET..PRODUCER_EPOCH_OFFSET].copy_from_slice(&producer_id.to_be_bytes());
    batch[PRODUCER_EPOCH_OFFSET..BASE_SEQUENCE_OFFSET]
        .copy_from_slice(&producer_epoch.to_be_bytes());
    batch[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4]
        .copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
}

/// A copy of `batch` (made by [`BatchBuilder::finish`]) carrying another producer
/// identity and base sequence.
pub fn restamp(
    batch: &[u8],
    identity: Option<ProducerIdentity>,
    base_sequence: i32,
) -> Result<Bytes> {
    if batch.len() < BATCH_HEADER_BYTES {
        return Err(Error::InvalidArgument(format!(
            "{} bytes are no record batch",
            batch.len()
        )));
    }
    let mut copy = BytesMut::from(batch);
    stamp(&mut copy, identity, base_sequence);
    Ok(copy.freeze())
}

/// Bytes of `n` as a zigzag varint (Kafka's varint and varlong share the encoding for
/// values in `i32` range).
fn varlong_bytes(n: i64) -> usize {
    if (0..64).contains(&n) {
        return 1; // the usual case: counts, deltas and lengths of small records
    }
    let zigzag = ((n << 1) ^ (n >> 63)) as u64;
    let bits = 64 - (zigzag | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn put_varlong(buf: &mut BytesMut, n: i64) {
    let mut zigzag = ((n << 1) ^ (n >> 63)) as u64;
    while zigzag >= 0x80 {
        buf.put_u8((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    buf.put_u8(zigzag as u8);
}

#[cfg(test)]
mod tests {
    use bytes::Buf;
    use kafka_protocol::records::RecordBatchDecoder;

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

    /// Builds `records` with a [`BatchBuilder`].
    fn build(
        records: &[BatchRecord],
        identity: Option<ProducerIdentity>,
        base_sequence: i32,
        compression: Compression,
    ) -> Bytes {
        let mut b = BatchBuilder::with_capacity(16);
        for r in records {
            b.push(
                r.key.as_deref(),
                r.value.as_deref(),
                &r.headers,
                r.timestamp_ms,
            )
            .unwrap();
        }
        assert_eq!(b.len(), records.len());
        b.finish(identity, base_sequence, compression).unwrap()
    }

    /// Records of every shape: null and empty keys and values, values whose length
    /// needs 1, 2 and 3 varint bytes, several headers, one with a null value.
    fn varied() -> Vec<BatchRecord> {
        let sizes = [0usize, 1, 63, 64, 127, 128, 8191, 8192, 70_000];
        let mut out: Vec<BatchRecord> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| BatchRecord {
                key: (i % 3 != 0).then(|| Bytes::from(vec![b'k'; i * 40])),
                value: (i != 4).then(|| Bytes::from(vec![i as u8; n])),
                headers: (0..i % 4)
                    .map(|h| Header {
                        key: format!("header-{h}"),
                        value: (h != 1).then(|| Bytes::from(vec![b'h'; h * 100])),
                    })
                    .collect(),
                timestamp_ms: 1_700_000_000_000 + (i as i64) * 1000,
            })
            .collect();
        out.extend(recs(200));
        out
    }

    #[test]
    fn builder_matches_the_codec_byte_for_byte() {
        let id = ProducerIdentity {
            producer_id: 7_000_000_001,
            producer_epoch: 5,
            transactional: false,
        };
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            for records in [recs(1), recs(3), varied()] {
                let txn = ProducerIdentity {
                    transactional: true,
                    ..id
                };
                let cases = [
                    (None, 0),
                    (Some(id), 0),
                    (Some(id), i32::MAX - 1),
                    (Some(txn), 3),
                ];
                for (identity, sequence) in cases {
                    let ours = build(&records, identity, sequence, c);
                    let reference = encode_batch(&records, identity, sequence, c).unwrap();
                    assert_eq!(ours, reference, "{c:?}, {} records", records.len());
                }
            }
        }
    }

    #[test]
    fn builder_output_decodes_with_every_field() {
        let records = varied();
        let batch = build(&records, None, 0, Compression::None);
        let set = RecordBatchDecoder::decode(&mut batch.clone()).unwrap();
        assert_eq!(set.records.len(), records.len());
        for (i, (got, sent)) in set.records.iter().zip(&records).enumerate() {
            assert_eq!(got.offset, i as i64);
            assert_eq!(got.key, sent.key);
            assert_eq!(got.value, sent.value);
            assert_eq!(got.timestamp, sent.timestamp_ms);
            let headers: Vec<(String, Option<Bytes>)> = got
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            let expected: Vec<(String, Option<Bytes>)> = sent
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect();
            assert_eq!(headers, expected);
        }
    }

    #[test]
    fn builder_keeps_timestamps_that_go_backwards() {
        // The first record's timestamp is the base: later, earlier ones get negative
        // deltas (Kafka's MemoryRecordsBuilder does the same).
        let mut records = recs(3);
        records[1].timestamp_ms -= 5_000;
        let batch = build(&records, None, 0, Compression::Lz4);
        let out = decode_records("t", 0, 0, at_offset(&batch, 0).freeze(), &[]).unwrap();
        let got: Vec<i64> = out.records.iter().map(|r| r.timestamp_ms).collect();
        let sent: Vec<i64> = records.iter().map(|r| r.timestamp_ms).collect();
        assert_eq!(got, sent);
        // maxTimestamp, at offset 35 of the header.
        assert_eq!((&batch[35..43]).get_i64(), sent[2]);
        // A spread beyond i64 is refused and leaves the batch as it was.
        let mut b = BatchBuilder::with_capacity(0);
        b.push(None, Some(b"a"), &[], i64::MIN).unwrap();
        assert!(b.push(None, Some(b"b"), &[], i64::MAX).is_err());
        assert_eq!(b.len(), 1);
        assert!(BatchBuilder::with_capacity(0)
            .finish(None, 0, Compression::None)
            .is_err());
    }

    #[test]
    fn restamping_changes_only_identity_sequence_and_crc() {
        let records = varied();
        let first = ProducerIdentity {
            producer_id: 1,
            producer_epoch: 0,
            transactional: false,
        };
        let renewed = ProducerIdentity {
            producer_id: 99,
            producer_epoch: 2,
            transactional: false,
        };
        for c in [Compression::None, Compression::Zstd] {
            let sent = build(&records, Some(first), 40, c);
            let again = restamp(&sent, Some(renewed), 0).unwrap();
            assert_eq!(again, encode_batch(&records, Some(renewed), 0, c).unwrap());
            assert_eq!(
                restamp(&again, None, 0).unwrap(),
                encode_batch(&records, None, 0, c).unwrap()
            );
        }
        assert!(restamp(&[0; 10], None, 0).is_err());
    }

    #[test]
    fn varint_sizes_match_the_encoding() {
        for n in [
            0i64,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            8191,
            8192,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
            i64::MAX,
            i64::MIN,
        ] {
            let mut buf = BytesMut::new();
            put_varlong(&mut buf, n);
            assert_eq!(buf.len(), varlong_bytes(n), "{n}");
        }
    }

    #[test]
    fn idempotent_batches_carry_identity_and_sequence() {
        let id = ProducerIdentity {
            producer_id: 42,
            producer_epoch: 3,
            transactional: false,
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
            let out = decode_records("t", 0, 0, at_offset(&batch, 0).freeze(), &[]).unwrap();
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
        let out = decode_records("t", 2, 12, all.freeze(), &[]).unwrap();
        let offsets: Vec<i64> = out.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![12, 13, 14, 20, 21, 22, 23, 24]);
        assert_eq!(out.next_offset, Some(25));
        assert_eq!(out.partial_tail_bytes, tail.len() - 7);
        assert!(out
            .records
            .iter()
            .all(|r| r.partition == 2 && &*r.topic == "t"));
    }

    /// A transaction marker of `producer_id` at `offset` (an ABORT: type 0).
    fn marker(producer_id: i64, offset: i64) -> BytesMut {
        let control = Record {
            transactional: true,
            control: true,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: 0,
            key: Some(Bytes::from_static(&[0, 0, 0, 0])),
            value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
            headers: IndexMap::new(),
        };
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, [&control], &options).unwrap();
        buf
    }

    #[test]
    fn read_committed_skips_aborted_transactions_up_to_their_marker() {
        let txn = |pid| {
            let id = ProducerIdentity {
                producer_id: pid,
                producer_epoch: 0,
                transactional: true,
            };
            encode_batch(&recs(2), Some(id), 0, Compression::None).unwrap()
        };
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&at_offset(&txn(1), 0)); // 0..=1, producer 1: aborted
        buf.extend_from_slice(&at_offset(&txn(2), 2)); // 2..=3, producer 2: committed
        buf.extend_from_slice(&marker(1, 4)); // producer 1's ABORT
        buf.extend_from_slice(&at_offset(&txn(1), 5)); // 5..=6, producer 1's next one
        let plain = encode_batch(&recs(1), None, 0, Compression::None).unwrap();
        buf.extend_from_slice(&at_offset(&plain, 7));
        let all = buf.freeze();
        let offsets = |aborted: &[AbortedTxn]| {
            let out = decode_records("t", 0, 0, all.clone(), aborted).unwrap();
            assert_eq!(out.next_offset, Some(8));
            out.records.iter().map(|r| r.offset).collect::<Vec<_>>()
        };
        assert_eq!(offsets(&[]), vec![0, 1, 2, 3, 5, 6, 7]);
        assert_eq!(offsets(&[(1, 0)]), vec![2, 3, 5, 6, 7]);
        // Both of producer 1's transactions aborted; listed in any order.
        assert_eq!(offsets(&[(1, 5), (1, 0)]), vec![2, 3, 7]);
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
        let out = decode_records("t", 0, 0, buf.freeze(), &[]).unwrap();
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
        let err = decode_records("t", 0, 0, bad.freeze(), &[]).unwrap_err();
        assert!(matches!(err, Error::CorruptBatch { .. }), "{err}");
        // A forged record count far beyond what the bytes can hold.
        let mut forged = at_offset(&b, 0);
        forged[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_records("t", 0, 0, forged.freeze(), &[]).is_err());
        // Negative length, wrong magic, a too-short "batch".
        let mut neg = at_offset(&b, 0);
        neg[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(decode_records("t", 0, 0, neg.freeze(), &[]).is_err());
        let mut v1 = at_offset(&b, 0);
        v1[MAGIC_OFFSET] = 1;
        assert!(decode_records("t", 0, 0, v1.freeze(), &[]).is_err());
        let mut short = BytesMut::from(&[0u8; 20][..]);
        short[8..12].copy_from_slice(&8i32.to_be_bytes());
        assert!(decode_records("t", 0, 0, short.freeze(), &[]).is_err());
        // Garbage shorter than a frame header is a partial tail, not an error.
        let out = decode_records("t", 0, 0, Bytes::from_static(&[1, 2, 3]), &[]).unwrap();
        assert_eq!((out.records.len(), out.partial_tail_bytes), (0, 3));
    }
}
