//! Bounds-checked primitives for the broker's own records in internal topics
//! (`__consumer_offsets`, `__transaction_state`), which use Kafka's layouts: int16
//! versions, int16-length strings, int32-length bytes and arrays. Bytes read back from
//! the log are untrusted: every length is checked against what is left, and a
//! malformed record is an error, never a panic or a large allocation.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Why a stored record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed internal record: {0}")]
pub struct RecordError(pub String);

pub(crate) fn err<T>(what: impl Into<String>) -> Result<T, RecordError> {
    Err(RecordError(what.into()))
}

pub(crate) fn put_string(b: &mut BytesMut, s: &str) {
    // Group ids, topics and member ids arrive in int16-length protocol strings.
    let len = s.len().min(i16::MAX as usize);
    b.put_i16(len as i16);
    b.put_slice(&s.as_bytes()[..len]);
}

pub(crate) fn put_nullable_string(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(b, s),
        None => b.put_i16(-1),
    }
}

pub(crate) fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    // Protocol bytes arrive in int32-length fields within a bounded request frame.
    b.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
    b.put_slice(v);
}

pub(crate) fn need(b: &Bytes, n: usize, what: &str) -> Result<(), RecordError> {
    if b.remaining() < n {
        return err(format!("truncated at {what}"));
    }
    Ok(())
}

pub(crate) fn get_i16(b: &mut Bytes) -> Result<i16, RecordError> {
    need(b, 2, "int16")?;
    Ok(b.get_i16())
}

pub(crate) fn get_i32(b: &mut Bytes) -> Result<i32, RecordError> {
    need(b, 4, "int32")?;
    Ok(b.get_i32())
}

pub(crate) fn get_i64(b: &mut Bytes) -> Result<i64, RecordError> {
    need(b, 8, "int64")?;
    Ok(b.get_i64())
}

pub(crate) fn get_nullable_string(b: &mut Bytes) -> Result<Option<String>, RecordError> {
    let len = get_i16(b)?;
    if len < 0 {
        return Ok(None);
    }
    let len = len as usize;
    need(b, len, "string")?;
    let raw = b.split_to(len);
    String::from_utf8(raw.to_vec())
        .map(Some)
        .or_else(|_| err("string is not UTF-8"))
}

pub(crate) fn get_string(b: &mut Bytes) -> Result<String, RecordError> {
    get_nullable_string(b)?.map_or_else(|| err("null where a string is required"), Ok)
}

pub(crate) fn get_bytes(b: &mut Bytes) -> Result<Bytes, RecordError> {
    let len = get_i32(b)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    need(b, len as usize, "bytes")?;
    Ok(b.split_to(len as usize))
}

/// A compact (unsigned varint length + 1) nullable string, as flexible versions use.
pub(crate) fn get_compact_string(b: &mut Bytes) -> Result<Option<String>, RecordError> {
    let mut len: u64 = 0;
    for shift in (0..35).step_by(7) {
        need(b, 1, "varint")?;
        let byte = b.get_u8();
        len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            if len == 0 {
                return Ok(None);
            }
            let len = (len - 1) as usize;
            need(b, len, "compact string")?;
            let raw = b.split_to(len);
            return String::from_utf8(raw.to_vec())
                .map(Some)
                .or_else(|_| err("string is not UTF-8"));
        }
    }
    err("varint longer than 5 bytes")
}

/// Java's `String.hashCode` over UTF-16 code units: Kafka places a group on
/// `__consumer_offsets` partition `abs(hashCode(group)) % partitions`; we do the same so a
/// group lands where a Kafka user would look for it.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition of `group` (Kafka's `Utils.abs` maps `i32::MIN` to 0).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}
