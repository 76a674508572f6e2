//! The scripted brokers of the client tests share their framing: read one request
//! frame, write one response frame (size, response header, body).
#![allow(dead_code)]

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Encodable};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The next request's header and body; `None` once the client hung up.
pub async fn read_request(stream: &mut (impl AsyncRead + Unpin)) -> Option<(RequestHeader, Bytes)> {
    let size = stream.read_i32().await.ok()?;
    let mut frame = vec![0u8; usize::try_from(size).ok()?];
    stream.read_exact(&mut frame).await.ok()?;
    let mut frame = Bytes::from(frame);
    let header = decode_request_header_from_buffer(&mut frame).expect("request header");
    Some((header, frame))
}

/// The response frame answering `header` with the encoded `body`.
pub fn response_frame(header: &RequestHeader, body: &[u8]) -> BytesMut {
    let api = ApiKey::try_from(header.request_api_key).expect("known api");
    let mut out = BytesMut::new();
    out.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(header.correlation_id)
        .encode(
            &mut out,
            api.response_header_version(header.request_api_version),
        )
        .expect("response header");
    out.extend_from_slice(body);
    let size = (out.len() - 4) as i32;
    out[0..4].copy_from_slice(&size.to_be_bytes());
    out
}

/// An ApiVersions answer advertising `(api, min, max)` ranges.
pub fn versions(ranges: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        ranges
            .iter()
            .map(|&(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(k as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect(),
    )
}
