//! The records inside a Kafka RecordBatch v2, as far as compaction needs them: a bounded,
//! allocation-free walk over the record framing, the batch codecs, and the rebuild of a
//! batch that keeps some of its records.
//!
//! Record layout (Kafka's `DefaultRecord`; varints are zigzag, as in protobuf):
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//! | keyLength varint | key | valueLength varint | value | headerCount varint | headers…
//! ```
//!
//! Compaction keeps a record's bytes as they are (its deltas are relative to the batch's
//! base offset and base timestamp, which a cleaned batch keeps), so headers and attributes
//! survive untouched and nothing is re-encoded except the timestamp delta when a delete
//! horizon moves the base timestamp. Bytes from disk are untrusted: every length is checked
//! against the bytes present, decompression stops at [`MAX_DECOMPRESSED_BATCH_BYTES`], and
//! nothing is allocated from a count the data declares without a bound from its size.
//!
//! Why not `kafka_protocol::records::RecordBatchDecoder`/`Encoder` for the records: the
//! decoder reserves memory from the declared record and header counts, and the encoder
//! rebases offsets on the first record kept, which would move a batch's base offset and
//! break the Raft entry table. The codecs themselves are kafka-protocol's (compression) and
//! the crates it wraps (bounded streaming decompression); none is written here.

use std::io::Read;

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use crate::batch::{
    reseal, BatchHeader, Resealed, BATCH_HEADER_BYTES, COMPRESSION_MASK, DELETE_HORIZON_FLAG,
    LOG_OVERHEAD_BYTES,
};

/// Where the records start in a v2 batch.
pub const RECORDS_AT: usize = BATCH_HEADER_BYTES;
/// The most bytes one batch's records may decompress to before the cleaner refuses the
/// batch as damaged (a decompression bomb on disk must not exhaust memory).
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// The smallest encoded record: seven one-byte fields (length, attributes, timestamp
/// delta, offset delta, key length, value length, header count).
pub const MIN_RECORD_BYTES: usize = 7;
/// Bytes a varint of 32 (64) bits takes at most.
const MAX_VARINT_BYTES: usize = 5;
const MAX_VARLONG_BYTES: usize = 10;
/// xerial snappy framing, as Kafka's Java client writes it.
const SNAPPY_XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// Decodes a zigzag varint of at most `max_bytes` bytes from the start of `buf`:
/// (value, bytes used), or `None` when truncated or too long.
fn read_zigzag(buf: &[u8], max_bytes: usize) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, b) in buf.iter().take(max_bytes).enumerate() {
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let value = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
            return Some((value, i + 1));
        }
    }
    None
}

fn read_varint(buf: &[u8]) -> Option<(i32, usize)> {
    let (v, n) = read_zigzag(buf, MAX_VARINT_BYTES)?;
    Some((i32::try_from(v).ok()?, n))
}

fn read_varlong(buf: &[u8]) -> Option<(i64, usize)> {
    read_zigzag(buf, MAX_VARLONG_BYTES)
}

/// Appends `value` as a zigzag varint (Kafka's varint and varlong share this encoding).
pub fn write_zigzag(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// One record of a batch, viewed in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// The whole record, length prefix included, exactly as stored.
    pub raw: &'a [u8],
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    /// False for a tombstone (null value).
    pub has_value: bool,
    attributes: u8,
    /// The record's body from the offset delta on (re-used when the timestamp delta is
    /// re-encoded).
    after_timestamp: &'a [u8],
}

impl RecordView<'_> {
    /// Appends this record with its timestamp delta replaced by `timestamp_delta`.
    fn write_with_timestamp_delta(&self, out: &mut Vec<u8>, timestamp_delta: i64) {
        let mut body = Vec::with_capacity(1 + MAX_VARLONG_BYTES + self.after_timestamp.len());
        body.push(self.attributes);
        write_zigzag(&mut body, timestamp_delta);
        body.extend_from_slice(self.after_timestamp);
        write_zigzag(out, body.len() as i64);
        out.extend_from_slice(&body);
    }
}

/// Splits `data` (a batch's uncompressed records) into exactly `count` records. Errors
/// say what is wrong and where, for the caller to wrap with the file and offset.
pub fn parse_records(data: &[u8], count: i32) -> Result<Vec<RecordView<'_>>, String> {
    let mut records = RecordIter::new(data, count)?;
    let out = records.by_ref().collect::<Result<Vec<_>, _>>()?;
    records.finish()?;
    Ok(out)
}

/// Walks exactly `count` records of `data` (a batch's uncompressed records) without
/// allocating: each item is the next record or why it is not one (the walk then ends).
/// [`RecordIter::finish`] then checks that nothing follows the last record.
#[derive(Debug)]
pub struct RecordIter<'a> {
    rest: &'a [u8],
    next: usize,
    count: usize,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    /// Refuses a count the data cannot hold (every record takes at least
    /// [`MIN_RECORD_BYTES`]), so a forged count costs nothing.
    pub fn new(data: &'a [u8], count: i32) -> Result<RecordIter<'a>, String> {
        let count = usize::try_from(count).map_err(|_| format!("negative record count {count}"))?;
        if count > data.len() / MIN_RECORD_BYTES {
            return Err(format!(
                "{count} records can't fit in {} bytes of records",
                data.len()
            ));
        }
        Ok(RecordIter {
            rest: data,
            next: 0,
            count,
            failed: false,
        })
    }

    /// After the last record: bytes left over are an error.
    pub fn finish(&self) -> Result<(), String> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} bytes follow the last of {} records",
                self.rest.len(),
                self.count
            ))
        }
    }

    fn parse_next(&mut self) -> Result<RecordView<'a>, String> {
        let i = self.next;
        let bad = |what: &str| format!("record {i}: {what}");
        let (len, n) = read_varint(self.rest).ok_or_else(|| bad("bad length varint"))?;
        let len = usize::try_from(len).map_err(|_| bad("negative length"))?;
        let end = n
            .checked_add(len)
            .filter(|e| *e <= self.rest.len())
            .ok_or_else(|| bad("length runs past the batch"))?;
        let (raw, tail) = self.rest.split_at(end);
        self.rest = tail;
        let body = &raw[n..];
        let (&attributes, after_attr) = body.split_first().ok_or_else(|| bad("empty"))?;
        let (timestamp_delta, m) =
            read_varlong(after_attr).ok_or_else(|| bad("bad timestamp delta"))?;
        let after_timestamp = &after_attr[m..];
        let (offset_delta, m) =
            read_varint(after_timestamp).ok_or_else(|| bad("bad offset delta"))?;
        let mut cursor = &after_timestamp[m..];
        let key = read_nullable(&mut cursor).ok_or_else(|| bad("bad key length"))?;
        let value = read_nullable(&mut cursor).ok_or_else(|| bad("bad value length"))?;
        check_headers(cursor).map_err(|what| bad(&what))?;
        Ok(RecordView {
            raw,
            offset_delta,
            timestamp_delta,
            key,
            has_value: value.is_some(),
            attributes,
            after_timestamp,
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next >= self.count {
            return None;
        }
        let item = self.parse_next();
        self.failed = item.is_err();
        self.next += 1;
        Some(item)
    }
}

/// Reads a nullable byte field (varint length, -1 for null) off the front of `cursor`:
/// `None` when the length is bad or runs past the data.
fn read_nullable<'a>(cursor: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
    let (len, m) = read_varint(cursor)?;
    *cursor = &cursor[m..];
    match len {
        -1 => Some(None),
        l if l < -1 => None,
        l => {
            let l = l as usize;
            if l > cursor.len() {
                return None;
            }
            let (v, t) = cursor.split_at(l);
            *cursor = t;
            Some(Some(v))
        }
    }
}

/// Checks a record's headers section (`rest`, what follows its value): a header count,
/// then that many (key length, key, nullable value), and nothing after.
fn check_headers(mut rest: &[u8]) -> Result<(), String> {
    let (count, m) = read_varint(rest).ok_or("bad header count")?;
    rest = &rest[m..];
    let count = usize::try_from(count).map_err(|_| "negative header count".to_string())?;
    // A header takes at least two bytes; a forged count stops here.
    if count > rest.len() / 2 {
        return Err(format!("{count} headers can't fit in {} bytes", rest.len()));
    }
    for h in 0..count {
        match read_nullable(&mut rest) {
            Some(Some(_)) => {}
            _ => return Err(format!("header {h}: bad key")),
        }
        read_nullable(&mut rest).ok_or_else(|| format!("header {h}: bad value"))?;
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!("{} bytes after the headers", rest.len()))
    }
}

/// The uncompressed records section of `batch` (whose header is `header`): borrowed when
/// the batch is not compressed, decompressed (at most `limit_bytes`) otherwise.
pub fn records_section<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    limit_bytes: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, String> {
    let data = batch
        .get(RECORDS_AT..header.size_bytes)
        .ok_or("batch shorter than its header")?;
    match header.compression() {
        0 => Ok(std::borrow::Cow::Borrowed(data)),
        codec => decompress(codec, data, limit_bytes).map(std::borrow::Cow::Owned),
    }
}

fn read_bounded(mut reader: impl Read, limit_bytes: usize, codec: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader
        .by_ref()
        .take(limit_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{codec}: {e}"))?;
    if out.len() > limit_bytes {
        return Err(format!(
            "{codec} records decompress to more than {limit_bytes} bytes"
        ));
    }
    Ok(out)
}

/// Decompresses a records section written with Kafka codec `codec` (1 gzip, 2 snappy,
/// 3 lz4, 4 zstd), refusing output beyond `limit_bytes`.
pub fn decompress(codec: u8, data: &[u8], limit_bytes: usize) -> Result<Vec<u8>, String> {
    match codec {
        1 => read_bounded(flate2::read::GzDecoder::new(data), limit_bytes, "gzip"),
        2 => {
            check_snappy_len(data, limit_bytes)?;
            let mut buf = Bytes::copy_from_slice(data);
            <Snappy as Decompressor<Bytes>>::decompress(
                &mut buf,
                |out: &mut Bytes| Ok(out.to_vec()),
            )
            .map_err(|e| format!("snappy: {e:#}"))
        }
        3 => {
            let decoder = lz4::Decoder::new(data).map_err(|e| format!("lz4: {e}"))?;
            read_bounded(decoder, limit_bytes, "lz4")
        }
        4 => {
            let decoder =
                zstd::stream::read::Decoder::with_buffer(data).map_err(|e| format!("zstd: {e}"))?;
            read_bounded(decoder, limit_bytes, "zstd")
        }
        other => Err(format!("unknown compression codec {other}")),
    }
}

/// Snappy declares each block's uncompressed size up front, and the decoder allocates it:
/// check the declared sizes before decoding.
fn check_snappy_len(data: &[u8], limit_bytes: usize) -> Result<(), String> {
    let declared =
        |block: &[u8]| snap::raw::decompress_len(block).map_err(|e| format!("snappy: {e}"));
    let mut total = 0usize;
    if let Some(mut rest) = data.strip_prefix(&SNAPPY_XERIAL_MAGIC[..]) {
        while !rest.is_empty() {
            let len_bytes: [u8; 4] = rest
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or("snappy: truncated block length")?;
            let len = u32::from_be_bytes(len_bytes) as usize;
            let block = rest
                .get(4..4usize.saturating_add(len))
                .ok_or("snappy: truncated block")?;
            total = total.saturating_add(declared(block)?);
            rest = &rest[4 + len..];
        }
    } else {
        total = declared(data)?;
    }
    if total > limit_bytes {
        return Err(format!(
            "snappy records declare {total} bytes, more than {limit_bytes}"
        ));
    }
    Ok(())
}

/// Compresses `data` with Kafka codec `codec`, as Kafka clients do (kafka-protocol's
/// compressors).
pub fn compress(codec: u8, data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = BytesMut::new();
    let fill = |buf: &mut BytesMut| {
        buf.extend_from_slice(data);
        Ok(())
    };
    let done = match codec {
        0 => {
            out.extend_from_slice(data);
            Ok(())
        }
        1 => <Gzip as Compressor<BytesMut>>::compress(&mut out, fill),
        2 => <Snappy as Compressor<BytesMut>>::compress(&mut out, fill),
        3 => <Lz4 as Compressor<BytesMut>>::compress(&mut out, fill),
        4 => <Zstd as Compressor<BytesMut>>::compress(&mut out, fill),
        other => return Err(format!("unknown compression codec {other}")),
    };
    done.map_err(|e| format!("compressing with codec {codec}: {e:#}"))?;
    Ok(out.to_vec())
}

/// How a kept batch is rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuild {
    /// Set the delete-horizon flag and store this horizon (ms) as the base timestamp,
    /// re-encoding each kept record's timestamp delta so its timestamp is unchanged.
    pub delete_horizon_ms: Option<i64>,
}

/// Builds the batch that replaces `original` (header `header`) keeping only `kept` of its
/// records: same base offset, last offset delta, partition leader epoch, producer id,
/// epoch and base sequence, timestamps and attributes (Kafka's cleaner keeps them too);
/// new length, record count and CRC-32C. The records section is recompressed with the
/// batch's codec; a batch left with no records is written uncompressed, as Kafka writes an
/// empty batch.
pub fn rebuild_batch(
    original: &[u8],
    header: &BatchHeader,
    kept: &[RecordView<'_>],
    how: Rebuild,
) -> Result<Vec<u8>, String> {
    let mut attributes = header.attributes;
    let mut base_timestamp = header.base_timestamp;
    let mut records = Vec::with_capacity(kept.iter().map(|r| r.raw.len()).sum());
    if let Some(horizon) = how.delete_horizon_ms {
        attributes |= DELETE_HORIZON_FLAG;
        for r in kept {
            let timestamp = header
                .base_timestamp
                .checked_add(r.timestamp_delta)
                .ok_or("record timestamp overflows")?;
            let delta = timestamp
                .checked_sub(horizon)
                .ok_or("timestamp delta from the delete horizon overflows")?;
            r.write_with_timestamp_delta(&mut records, delta);
        }
        base_timestamp = horizon;
    } else {
        for r in kept {
            records.extend_from_slice(r.raw);
        }
    }
    let codec = (attributes & COMPRESSION_MASK) as u8;
    let section = if kept.is_empty() {
        attributes &= !COMPRESSION_MASK;
        Vec::new()
    } else if codec == 0 {
        records
    } else {
        compress(codec, &records)?
    };
    let size = RECORDS_AT + section.len();
    let batch_length = i32::try_from(size - LOG_OVERHEAD_BYTES).map_err(|_| "batch too large")?;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(
        original
            .get(..RECORDS_AT)
            .ok_or("batch shorter than its header")?,
    );
    out.extend_from_slice(&section);
    let records_count = i32::try_from(kept.len()).map_err(|_| "too many records")?;
    reseal(
        &mut out,
        &Resealed {
            batch_length,
            attributes,
            base_timestamp,
            max_timestamp: header.max_timestamp,
            records_count,
        },
    );
    Ok(out)
}

/// The delete horizon a batch carries (KIP-534), if its flag is set.
pub fn delete_horizon_ms(header: &BatchHeader) -> Option<i64> {
    (header.attributes & DELETE_HORIZON_FLAG != 0).then_some(header.base_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use strata_testkit::{encode_batch, RecordSpec, ALL_COMPRESSIONS, NO_PRODUCER};

    fn specs(n: usize) -> Vec<RecordSpec> {
        (0..n)
            .map(|i| RecordSpec {
                key: (i % 3 != 2).then(|| Bytes::from(format!("k{i}"))),
                value: (i % 4 != 3).then(|| Bytes::from(vec![b'v'; i * 7])),
                timestamp_ms: 1_000 + i as i64,
            })
            .collect()
    }

    #[test]
    fn varints_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            write_zigzag(&mut out, v);
            assert_eq!(read_varlong(&out), Some((v, out.len())), "{v}");
        }
        assert_eq!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), None);
        assert_eq!(read_varlong(&[0x80; 11]), None);
    }

    #[test]
    fn rebuilding_keeps_what_it_is_told_in_every_codec() {
        for codec in ALL_COMPRESSIONS {
            let batch = encode_batch(specs(9), NO_PRODUCER, codec).to_vec();
            let h = BatchHeader::parse_validated(&batch).unwrap();
            let data = records_section(&batch, &h, MAX_DECOMPRESSED_BATCH_BYTES).unwrap();
            let recs = parse_records(&data, h.records_count).unwrap();
            assert_eq!(recs.len(), 9);
            assert_eq!(recs[3].key, Some(&b"k3"[..]));
            assert!(!recs[3].has_value && recs[4].has_value && recs[2].key.is_none());
            let kept: Vec<_> = recs
                .iter()
                .copied()
                .filter(|r| r.offset_delta % 2 == 1)
                .collect();
            for horizon in [None, Some(99_999)] {
                let out = rebuild_batch(
                    &batch,
                    &h,
                    &kept,
                    Rebuild {
                        delete_horizon_ms: horizon,
                    },
                )
                .unwrap();
                let nh = BatchHeader::parse_validated(&out).unwrap();
                assert_eq!(
                    (
                        nh.base_offset,
                        nh.last_offset_delta,
                        nh.max_timestamp,
                        nh.compression()
                    ),
                    (
                        h.base_offset,
                        h.last_offset_delta,
                        h.max_timestamp,
                        h.compression()
                    )
                );
                assert_eq!(delete_horizon_ms(&nh), horizon);
                let mut buf = Bytes::from(out);
                let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
                let got: Vec<_> = set
                    .records
                    .iter()
                    .map(|r| (r.offset, r.timestamp))
                    .collect();
                assert_eq!(
                    got,
                    vec![(1, 1001), (3, 1003), (5, 1005), (7, 1007)],
                    "{codec:?}"
                );
            }
            let empty = rebuild_batch(
                &batch,
                &h,
                &[],
                Rebuild {
                    delete_horizon_ms: None,
                },
            )
            .unwrap();
            let eh = BatchHeader::parse_validated(&empty).unwrap();
            assert_eq!(
                (eh.records_count, eh.compression(), eh.size_bytes),
                (0, 0, RECORDS_AT)
            );
            assert_eq!(eh.last_offset_delta, h.last_offset_delta);
        }
    }

    #[test]
    fn bombs_and_lies_are_refused() {
        let zeros = vec![0u8; 4096];
        for codec in [1u8, 2, 3, 4] {
            let packed = compress(codec, &zeros).unwrap();
            assert_eq!(decompress(codec, &packed, 4096).unwrap(), zeros);
            assert!(decompress(codec, &packed, 4095).is_err(), "codec {codec}");
            // A cut stream never passes for the whole (record parsing catches short ones).
            let cut = decompress(codec, &packed[..packed.len() / 2], 4096);
            assert!(cut.map_or(true, |d| d.len() < zeros.len()), "codec {codec}");
        }
        assert!(parse_records(&[0u8; 6], 1).is_err());
        assert!(parse_records(&[0u8; 70], i32::MAX).is_err());
    }

    proptest! {
        /// Arbitrary bytes never panic the walker or the decompressors.
        #[test]
        fn arbitrary_records_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), count in -2i32..50) {
            if let Ok(recs) = parse_records(&bytes, count) {
                let total: usize = recs.iter().map(|r| r.raw.len()).sum();
                prop_assert_eq!(total, bytes.len());
            }
            for codec in 0u8..6 {
                let _ = decompress(codec, &bytes, 1 << 16);
            }
        }
    }
}
