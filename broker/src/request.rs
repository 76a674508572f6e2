//! Decoding one request frame (everything after the length prefix): the header, then —
//! for an API and version this broker answers — the body, with the `kafka-protocol`
//! codec. This is the path every byte from the network takes first; the `fuzz/` target
//! drives it with arbitrary input.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

use crate::versions;

/// Bytes of the smallest request header (api key, version, correlation id).
pub const MIN_HEADER_BYTES: usize = 8;

/// A request's body, as far as the broker decodes it.
#[derive(Debug)]
pub enum Body {
    /// An API and version this broker answers.
    Decoded(Box<RequestKind>),
    /// ApiVersions is answered at any version, without reading its body.
    ApiVersions,
    /// A known API at a version this broker does not answer; the raw body.
    Unsupported(Bytes),
}

/// One decoded request.
#[derive(Debug)]
pub struct Request {
    pub header: RequestHeader,
    pub api: ApiKey,
    pub version: i16,
    pub body: Body,
}

/// Decodes a frame. `Err` says why the connection must close: too short for a header,
/// an unknown API key, or bytes the codec cannot decode.
pub fn decode(mut frame: Bytes) -> Result<Request, String> {
    if frame.len() < MIN_HEADER_BYTES {
        return Err(format!("request of {} bytes has no header", frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(raw_key).map_err(|_| format!("unknown API key {raw_key}"))?;
    let header_version = api.request_header_version(version);
    let unread = frame.clone();
    let header = match RequestHeader::decode(&mut frame, header_version) {
        Ok(h) => h,
        // A client probing with an ApiVersions version newer than the codec knows may
        // use either header layout; the v1 (non-flexible) one is what every client can
        // fall back to, so accept it to answer UNSUPPORTED_VERSION.
        Err(_) if api == ApiKey::ApiVersions && header_version > 1 => {
            frame = unread;
            RequestHeader::decode(&mut frame, 1)
                .map_err(|e| format!("undecodable {api:?} v{version} header: {e}"))?
        }
        Err(e) => return Err(format!("undecodable {api:?} v{version} header: {e}")),
    };
    let body = if api == ApiKey::ApiVersions {
        Body::ApiVersions
    } else if !versions::accepted(api, version) {
        Body::Unsupported(frame)
    } else {
        let decoded = RequestKind::decode(api, &mut frame, version)
            .map_err(|e| format!("undecodable {api:?} v{version} request: {e}"))?;
        Body::Decoded(Box::new(decoded))
    };
    Ok(Request {
        header,
        api,
        version,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_unknown_and_garbage_frames_are_errors() {
        assert!(decode(Bytes::from_static(b"\x00\x03")).is_err());
        assert!(decode(Bytes::from_static(b"\x7f\x00\x00\x00\x00\x00\x00\x01")).is_err());
        // Metadata v1 claiming 2^31 - 1 topics in a few bytes: an error, not an abort
        // (the process-wide allocator guard is in `crate::alloc`; here the count is
        // bounded by what the test allocator grants, so use a modest forged count).
        let mut forged = b"\x00\x03\x00\x01\x00\x00\x00\x01\x00\x00".to_vec();
        forged.extend_from_slice(&1_000_000i32.to_be_bytes());
        assert!(decode(Bytes::from(forged)).is_err());
        // ApiVersions at an unknown version still decodes (answered in the v0 layout).
        let r = decode(Bytes::from_static(
            b"\x00\x12\x00\x63\x00\x00\x00\x07\x00\x00",
        ))
        .unwrap();
        assert!(matches!(r.body, Body::ApiVersions));
        assert_eq!(r.header.correlation_id, 7);
    }
}
