//! A response frame as a list of chunks, so Fetch answers reach the socket without a copy
//! of their record bytes in user space.
//!
//! `kafka-protocol` still encodes every byte of framing (length, header, every field of
//! the body). It writes a `records` field with one `put_slice` of the stored batches;
//! [`SplicingBuf`] recognises that slice by address and length among the record chunks it
//! was given, and keeps the chunk itself (a `Bytes` over the segment's memory map) in the
//! frame instead of copying it. The writer then hands all chunks to one vectored write:
//! the kernel copies the batches from the page cache into the socket, nothing else does.
//! Record chunks below [`SPLICE_MIN_BYTES`] are copied: an extra iovec costs more.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;

/// Record chunks at least this large are sent by reference; smaller ones are copied.
pub const SPLICE_MIN_BYTES: usize = 4096;

/// One encoded response: the 4-byte length prefix, header and body, in order.
#[derive(Debug, Default)]
pub struct ResponseFrame {
    chunks: Vec<Bytes>,
    len_bytes: usize,
}

impl ResponseFrame {
    /// The chunks, in the order they go on the wire.
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    /// The whole frame's size, length prefix included.
    pub fn len_bytes(&self) -> usize {
        self.len_bytes
    }

    /// The frame as one contiguous buffer (a copy; for tests and tools).
    pub fn to_contiguous(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len_bytes);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out.freeze()
    }
}

/// Why a response could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("cannot encode the response: {0}")]
    Codec(String),
    #[error("response of {0} bytes is larger than 2 GiB")]
    TooLarge(usize),
}

/// Encodes a response frame: length, header (at the API's response header version),
/// body; Fetch record chunks of [`SPLICE_MIN_BYTES`] or more are kept by reference.
pub fn encode(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<ResponseFrame, EncodeError> {
    let mut buf = SplicingBuf::new(record_chunks(body));
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api.response_header_version(version))
        .map_err(|e| EncodeError::Codec(e.to_string()))?;
    match body {
        // The one body with record chunks to keep by reference.
        ResponseKind::Fetch(fetch) => fetch.encode(&mut buf, version),
        // `ResponseKind::encode` takes a `BytesMut` only; nothing of these is spliced.
        other => {
            let mut rest = BytesMut::new();
            other
                .encode(&mut rest, version)
                .map(|()| buf.append_chunk(rest.freeze()))
        }
    }
    .map_err(|e| EncodeError::Codec(e.to_string()))?;
    let (mut chunks, body_len) = buf.finish();
    let len = i32::try_from(body_len).map_err(|_| EncodeError::TooLarge(body_len))?;
    // The length prefix is a chunk of its own, so nothing encoded is copied to patch it.
    chunks.insert(0, Bytes::copy_from_slice(&len.to_be_bytes()));
    Ok(ResponseFrame {
        chunks,
        len_bytes: body_len + 4,
    })
}

/// The record chunks of a response worth splicing, in encoding order.
fn record_chunks(body: &ResponseKind) -> Vec<Bytes> {
    match body {
        ResponseKind::Fetch(r) => r
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter_map(|p| p.records.as_ref())
            .filter(|b| b.len() >= SPLICE_MIN_BYTES)
            .cloned()
            .collect(),
        _ => Vec::new(),
    }
}

/// A `BufMut` that collects what is written into owned chunks, keeping the given
/// record chunks by reference when the encoder writes exactly them.
#[derive(Debug)]
pub struct SplicingBuf {
    /// Finished chunks.
    done: Vec<Bytes>,
    /// Bytes in `done`.
    done_bytes: usize,
    /// Where the encoder writes now.
    current: BytesMut,
    /// Chunks to keep by reference, in the order the encoder is expected to write them.
    splice: Vec<Bytes>,
    /// The next of `splice` to look for.
    next: usize,
}

impl SplicingBuf {
    /// A buffer that keeps `splice` by reference when written in this order.
    pub fn new(splice: Vec<Bytes>) -> Self {
        SplicingBuf {
            done: Vec::with_capacity(2 * splice.len() + 1),
            done_bytes: 0,
            current: BytesMut::with_capacity(512),
            splice,
            next: 0,
        }
    }

    /// The chunks written, in order, and their total size.
    pub fn finish(mut self) -> (Vec<Bytes>, usize) {
        let rest = self.current.split().freeze();
        self.push_done(rest);
        (self.done, self.done_bytes)
    }

    /// Copies everything into `current` (only when the encoder seeks back into a spliced
    /// chunk, which no message encoder does; kept so such an encoder stays correct).
    fn make_contiguous(&mut self) {
        if self.done.is_empty() {
            return;
        }
        let mut all = BytesMut::with_capacity(self.done_bytes + self.current.len());
        for c in self.done.drain(..) {
            all.extend_from_slice(&c);
        }
        all.extend_from_slice(&self.current);
        self.current = all;
        self.done_bytes = 0;
    }

    /// Appends `chunk` after everything written so far, without copying it.
    fn append_chunk(&mut self, chunk: Bytes) {
        let head = self.current.split().freeze();
        self.push_done(head);
        self.push_done(chunk);
    }

    fn push_done(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.done_bytes += chunk.len();
            self.done.push(chunk);
        }
    }
}

// SAFETY: every method delegates to the inner `BytesMut`, which upholds `BufMut`'s
// contract; `put_slice` either delegates or appends whole finished chunks without
// touching `current`'s uninitialised tail.
unsafe impl BufMut for SplicingBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut()`, which is
        // `current`'s.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if let Some(chunk) = self.splice.get(self.next) {
            if chunk.as_ptr() == src.as_ptr() && chunk.len() == src.len() {
                let chunk = chunk.clone();
                self.next += 1;
                self.append_chunk(chunk);
                return;
            }
        }
        self.current.extend_from_slice(src);
    }
}

impl ByteBufMut for SplicingBuf {
    fn offset(&self) -> usize {
        self.done_bytes + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        if offset < self.done_bytes {
            self.make_contiguous();
        }
        self.current.resize(offset - self.done_bytes, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        if r.start < self.done_bytes {
            self.make_contiguous();
        }
        let base = self.done_bytes;
        &mut self.current[r.start - base..r.end - base]
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, ProduceResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    /// The frame as the codec alone encodes it into one buffer.
    fn contiguous(api: ApiKey, version: i16, body: &ResponseKind) -> Vec<u8> {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(9)
            .encode(&mut buf, api.response_header_version(version))
            .expect("header");
        body.encode(&mut buf, version).expect("body");
        let mut out = (buf.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&buf);
        out
    }

    fn fetch(records: &[Bytes]) -> ResponseKind {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(10)
                    .with_records(Some(r.clone()))
            })
            .collect();
        FetchResponse::default()
            .with_responses(vec![FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(partitions)])
            .into()
    }

    #[test]
    fn fetch_records_are_kept_by_reference_and_the_bytes_match_the_codec() {
        let big = Bytes::from(vec![7u8; SPLICE_MIN_BYTES]);
        let small = Bytes::from(vec![8u8; SPLICE_MIN_BYTES - 1]);
        let other_big = Bytes::from(vec![9u8; 3 * SPLICE_MIN_BYTES]);
        let body = fetch(&[big.clone(), small.clone(), other_big.clone()]);
        for version in [4, 11, 12] {
            let frame = encode(ApiKey::Fetch, version, 9, &body).expect("encode");
            assert_eq!(
                &frame.to_contiguous()[..],
                &contiguous(ApiKey::Fetch, version, &body)[..],
                "v{version}"
            );
            assert_eq!(frame.len_bytes(), frame.to_contiguous().len());
            // The large record chunks are the stored bytes themselves, not copies.
            let by_reference: Vec<_> = frame
                .chunks()
                .iter()
                .filter(|c| c.as_ptr() == big.as_ptr() || c.as_ptr() == other_big.as_ptr())
                .collect();
            assert_eq!(by_reference.len(), 2, "v{version}");
            assert!(frame.chunks().iter().all(|c| c.as_ptr() != small.as_ptr()));
        }
    }

    #[test]
    fn other_responses_encode_as_the_codec_does() {
        let body: ResponseKind = ProduceResponse::default().into();
        let frame = encode(ApiKey::Produce, 9, 9, &body).expect("encode");
        assert_eq!(
            &frame.to_contiguous()[..],
            &contiguous(ApiKey::Produce, 9, &body)[..]
        );
    }

    #[test]
    fn seeking_back_over_a_spliced_chunk_still_writes_the_right_bytes() {
        let big = Bytes::from(vec![1u8; SPLICE_MIN_BYTES]);
        let mut buf = SplicingBuf::new(vec![big.clone()]);
        buf.put_u8(0);
        buf.put_slice(&big);
        buf.put_u8(2);
        assert_eq!(buf.offset(), SPLICE_MIN_BYTES + 2);
        buf.range(0..1)[0] = 5;
        let (chunks, len) = buf.finish();
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(len, all.len());
        assert_eq!(all[0], 5);
        assert_eq!(&all[1..=SPLICE_MIN_BYTES], &big[..]);
        assert_eq!(all[SPLICE_MIN_BYTES + 1], 2);
    }
}
