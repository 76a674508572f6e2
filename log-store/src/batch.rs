//! A read-only view of the Kafka RecordBatch v2 header, and the two fields the log patches.
//!
//! Layout (all big-endian), from Kafka's `DefaultRecordBatch`:
//!
//! ```text
//! 0  baseOffset            i64   ┐ outside the CRC: the log patches these two
//! 8  batchLength           i32   │ (bytes after this field)
//! 12 partitionLeaderEpoch  i32   ┘ (the Raft term)
//! 16 magic                 i8    = 2
//! 17 crc                   u32   CRC-32C of bytes 21..end
//! 21 attributes            i16
//! 23 lastOffsetDelta       i32
//! 27 baseTimestamp         i64
//! 35 maxTimestamp          i64
//! 43 producerId            i64
//! 51 producerEpoch         i16
//! 53 baseSequence          i32
//! 57 recordsCount          i32
//! 61 records…
//! ```
//!
//! The records themselves are never decoded here: the log stores and serves batches as the
//! bytes that arrived, so compressed batches pass through untouched.

/// Bytes before `batchLength` counts: baseOffset + batchLength.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Size of the fixed v2 header; the smallest possible batch.
pub const BATCH_HEADER_BYTES: usize = 61;
/// The only record-batch format the log accepts.
pub const MAGIC_V2: i8 = 2;

const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

pub(crate) const COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit: the batch's timestamps are the broker's append time (its max
/// timestamp), not the producer's CreateTime.
pub(crate) const LOG_APPEND_TIME_FLAG: i16 = 0x08;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;
/// Attribute bit: the batch's base timestamp holds its delete horizon (KIP-534).
pub(crate) const DELETE_HORIZON_FLAG: i16 = 0x40;

/// Why bytes are not a valid RecordBatch v2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("{available} bytes is shorter than a batch header ({BATCH_HEADER_BYTES})")]
    ShortHeader { available: usize },
    #[error("batchLength {batch_length} is below the v2 minimum")]
    BadLength { batch_length: i32 },
    #[error("batch declares {declared} bytes but {available} are present")]
    Truncated { declared: usize, available: usize },
    #[error("unsupported magic {magic} (only RecordBatch v2 is stored)")]
    BadMagic { magic: i8 },
    #[error("CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("invalid header field: {0}")]
    BadField(&'static str),
}

/// A validated view of one batch's header fields. Cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Total size of the batch in bytes, `LOG_OVERHEAD_BYTES + batchLength`.
    pub size_bytes: usize,
    pub partition_leader_epoch: i32,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Reads just `batchLength` and returns the batch's total size, or why it can't be a
    /// batch. Needs only the first 12 bytes; used to walk a file frame by frame.
    pub fn frame_size(buf: &[u8]) -> Result<usize, BatchError> {
        if buf.len() < LOG_OVERHEAD_BYTES {
            return Err(BatchError::ShortHeader {
                available: buf.len(),
            });
        }
        let batch_length = be_i32(buf, BATCH_LENGTH_AT);
        let min = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
        if batch_length < min {
            return Err(BatchError::BadLength { batch_length });
        }
        Ok(LOG_OVERHEAD_BYTES + batch_length as usize)
    }

    /// Parses the header at the start of `buf` without checking the CRC. `buf` must hold
    /// at least the whole header; the batch may extend beyond `buf`.
    pub fn parse_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let size_bytes = Self::frame_size(buf)?;
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::ShortHeader {
                available: buf.len(),
            });
        }
        let magic = buf[MAGIC_AT] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::BadMagic { magic });
        }
        let header = BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_AT),
            size_bytes,
            partition_leader_epoch: be_i32(buf, LEADER_EPOCH_AT),
            crc: u32::from_be_bytes([
                buf[CRC_AT],
                buf[CRC_AT + 1],
                buf[CRC_AT + 2],
                buf[CRC_AT + 3],
            ]),
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: be_i64(buf, PRODUCER_ID_AT),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(buf, BASE_SEQUENCE_AT),
            records_count: be_i32(buf, RECORDS_COUNT_AT),
        };
        if header.last_offset_delta < 0 {
            return Err(BatchError::BadField("lastOffsetDelta is negative"));
        }
        if header.records_count < 0 {
            return Err(BatchError::BadField("recordsCount is negative"));
        }
        Ok(header)
    }

    /// Parses and fully validates the batch at the start of `buf`: the frame must be
    /// complete within `buf` and its CRC-32C must match.
    pub fn parse_validated(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let header = Self::parse_header(buf)?;
        if buf.len() < header.size_bytes {
            return Err(BatchError::Truncated {
                declared: header.size_bytes,
                available: buf.len(),
            });
        }
        let computed = crc32c::crc32c(&buf[ATTRIBUTES_AT..header.size_bytes]);
        if computed != header.crc {
            return Err(BatchError::BadCrc {
                stored: header.crc,
                computed,
            });
        }
        Ok(header)
    }

    /// The last offset in the batch (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// How many offsets the batch occupies.
    pub fn offset_count(&self) -> u64 {
        self.last_offset_delta as u64 + 1
    }

    /// Compression codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes & COMPRESSION_MASK) as u8
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    /// Control batches (transaction markers); consumers skip them.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }
}

/// Bytes at the start of a batch that the log rewrites on append: baseOffset,
/// batchLength and partitionLeaderEpoch, all outside the CRC.
pub(crate) const PATCHED_PREFIX_BYTES: usize = LEADER_EPOCH_AT + 4;

/// The first [`PATCHED_PREFIX_BYTES`] of `batch` as the log writes them: `base_offset`
/// and the partition leader epoch (the Raft term) set. Both fields are outside the CRC,
/// so the batch stays valid; the caller's bytes are left as they are (they may be shared,
/// a request's buffer or a Raft entry). Terms beyond `i32::MAX` are stored saturated;
/// the entry table keeps the full 64-bit term. `batch` must hold at least a header
/// (checked by the caller's validation).
pub(crate) fn patched_prefix(
    batch: &[u8],
    base_offset: u64,
    term: u64,
) -> [u8; PATCHED_PREFIX_BYTES] {
    let mut prefix = [0u8; PATCHED_PREFIX_BYTES];
    prefix.copy_from_slice(&batch[..PATCHED_PREFIX_BYTES]);
    prefix[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
    let (at, epoch) = leader_epoch_field(term);
    prefix[at..at + epoch.len()].copy_from_slice(&epoch);
    prefix
}

/// Where in a stored batch its partition leader epoch lies, and the bytes that store
/// `term` there (saturated at `i32::MAX`; outside the CRC).
pub(crate) fn leader_epoch_field(term: u64) -> (usize, [u8; 4]) {
    let epoch = i32::try_from(term).unwrap_or(i32::MAX);
    (LEADER_EPOCH_AT, epoch.to_be_bytes())
}

/// The header fields a rebuilt batch (one the cleaner kept some records of, or one the
/// broker recompressed or stamped) changes.
pub(crate) struct Resealed {
    pub batch_length: i32,
    pub attributes: i16,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub records_count: i32,
}

/// Writes `fields` into the header at the start of `batch` and its CRC-32C over the
/// new bytes. `batch` must hold at least a header (the caller built it from one).
pub(crate) fn reseal(batch: &mut [u8], fields: &Resealed) {
    let mut put = |at: usize, bytes: &[u8]| batch[at..at + bytes.len()].copy_from_slice(bytes);
    put(BATCH_LENGTH_AT, &fields.batch_length.to_be_bytes());
    put(ATTRIBUTES_AT, &fields.attributes.to_be_bytes());
    put(BASE_TIMESTAMP_AT, &fields.base_timestamp.to_be_bytes());
    put(MAX_TIMESTAMP_AT, &fields.max_timestamp.to_be_bytes());
    put(RECORDS_COUNT_AT, &fields.records_count.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Iterates the whole batches at the start of `buf`, yielding each batch as a zero-copy
/// slice. Stops quietly at the first incomplete frame (a fetch response may end with a
/// partial batch); yields an error for a frame that is not a v2 batch header.
pub struct Batches {
    buf: bytes::Bytes,
}

impl Batches {
    pub fn new(buf: bytes::Bytes) -> Self {
        Batches { buf }
    }
}

impl Iterator for Batches {
    type Item = Result<(BatchHeader, bytes::Bytes), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.len() < BATCH_HEADER_BYTES {
            return None;
        }
        let header = match BatchHeader::parse_header(&self.buf) {
            Ok(h) => h,
            Err(e) => {
                self.buf.clear();
                return Some(Err(e));
            }
        };
        if header.size_bytes > self.buf.len() {
            return None;
        }
        let batch = self.buf.split_to(header.size_bytes);
        Some(Ok((header, batch)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A minimal valid batch header with no records, CRC filled in.
    fn empty_batch(last_offset_delta: i32) -> Vec<u8> {
        let mut b = vec![0u8; BATCH_HEADER_BYTES];
        b[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4]
            .copy_from_slice(&((BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32).to_be_bytes());
        b[MAGIC_AT] = 2;
        b[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
            .copy_from_slice(&last_offset_delta.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn a_valid_header_parses_and_patching_keeps_the_crc() {
        let mut b = empty_batch(4);
        let h = BatchHeader::parse_validated(&b).unwrap();
        assert_eq!(
            (h.size_bytes, h.offset_count(), h.compression()),
            (61, 5, 0)
        );
        let patch = |b: &mut Vec<u8>, base: u64, term: u64| {
            let prefix = patched_prefix(b, base, term);
            b[..PATCHED_PREFIX_BYTES].copy_from_slice(&prefix);
        };
        patch(&mut b, 1234, 7);
        let h = BatchHeader::parse_validated(&b).unwrap();
        assert_eq!(
            (h.base_offset, h.last_offset(), h.partition_leader_epoch),
            (1234, 1238, 7)
        );
        patch(&mut b, 1234, u64::MAX);
        assert_eq!(
            BatchHeader::parse_validated(&b)
                .unwrap()
                .partition_leader_epoch,
            i32::MAX
        );
    }

    #[test]
    fn each_kind_of_damage_has_its_error() {
        let good = empty_batch(0);
        assert!(matches!(
            BatchHeader::parse_validated(&good[..11]),
            Err(BatchError::ShortHeader { .. })
        ));
        assert!(matches!(
            BatchHeader::parse_validated(&good[..60]),
            Err(BatchError::ShortHeader { .. })
        ));
        let mut b = good.clone();
        b[MAGIC_AT] = 1;
        assert!(matches!(
            BatchHeader::parse_validated(&b),
            Err(BatchError::BadMagic { magic: 1 })
        ));
        let mut b = good.clone();
        b[BATCH_LENGTH_AT + 3] = 10;
        assert!(matches!(
            BatchHeader::parse_validated(&b),
            Err(BatchError::BadLength { .. })
        ));
        let mut b = good.clone();
        b[BATCH_LENGTH_AT + 2] = 1;
        assert!(matches!(
            BatchHeader::parse_validated(&b),
            Err(BatchError::Truncated { .. })
        ));
        let mut b = good.clone();
        b[60] ^= 1;
        assert!(matches!(
            BatchHeader::parse_validated(&b),
            Err(BatchError::BadCrc { .. })
        ));
        let b = empty_batch(-1);
        assert!(matches!(
            BatchHeader::parse_validated(&b),
            Err(BatchError::BadField(_))
        ));
    }

    #[test]
    fn batches_iterator_stops_at_a_partial_tail() {
        let mut buf = empty_batch(0);
        buf.extend(empty_batch(1));
        buf.extend(&empty_batch(2)[..30]);
        let got: Vec<_> = Batches::new(bytes::Bytes::from(buf)).collect();
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|r| r.is_ok()));
    }

    proptest! {
        /// Arbitrary bytes never panic the parser, and whatever it accepts is consistent.
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(h) = BatchHeader::parse_validated(&bytes) {
                prop_assert!(h.size_bytes <= bytes.len());
                prop_assert!(h.size_bytes >= BATCH_HEADER_BYTES);
            }
            let _ = Batches::new(bytes::Bytes::from(bytes)).count();
        }
    }
}
