//! One connection to one broker: size-prefixed frames, request headers, correlation
//! ids, per-request timeouts, and the API versions negotiated at connect. Under it is
//! plain TCP or TLS, and a SASL exchange may authenticate it before any other request,
//! as [`ConnectionConfig::security`] says (see [`crate::security`]).
//!
//! A connection carries one request at a time (`&mut self`): responses come back in
//! order, so ordering per connection is the caller's ordering. After any failure that
//! may leave a response half-read (I/O error, timeout, oversized or undecodable frame)
//! the connection marks itself broken and refuses further requests; owners reconnect.
//! So does a request whose future is dropped before its response is read (cancel
//! safety: the next request never reads a stale answer).
//!
//! [`Pipeline`] is the same connection split into a writer and a reader, for the
//! producer: requests are written as they are sent and answered in order, so several
//! are in flight on one connection (see [`pipeline`]). A connection becomes one with
//! [`Connection::into_pipeline`] once negotiated (and authenticated).

use std::collections::HashMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, ListTransactionsRequest, ListTransactionsResponse,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse, ApiKey, ApiVersionsRequest, ApiVersionsResponse,
    CreateAclsRequest, CreateAclsResponse, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DeleteGroupsRequest, DeleteGroupsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeAclsRequest, DescribeAclsResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse, DescribeClusterRequest, DescribeClusterResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, FetchRequest,
    FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest,
    HeartbeatResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    InitProducerIdRequest, InitProducerIdResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, trace};

use crate::error::{Error, Result, UNSUPPORTED_VERSION};
use crate::security::{tls, Security};
use transport::Transport;

mod authenticate;
pub mod pipeline;
mod transport;

pub use pipeline::{PendingResponse, PendingWrite, Pipeline};

/// Default cap on one response frame: Kafka's `socket.request.max.bytes` (100 MiB). A
/// larger announced size closes the connection instead of allocating.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;
/// Default time to establish a TCP connection and negotiate versions.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time for one request to be answered (Kafka's `request.timeout.ms`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The ApiVersions version tried first; brokers that do not know it answer
/// UNSUPPORTED_VERSION in the v0 layout and the client retries.
const API_VERSIONS_FIRST: i16 = 3;

/// `(api, min, max)`: the versions of each API this client encodes and interprets
/// correctly. Fetch and Produce stop at 12, the last versions that name topics (13+
/// use topic ids); Metadata starts at 1, the first where "no topics" means all.
pub const CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::InitProducerId, 0, 4),
    // Transactions: the versions before KIP-890's batched and verify-only forms.
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    // Consumer groups (the classic protocol). OffsetCommit starts at 2 and OffsetFetch
    // at 1, where the codec starts; JoinGroup at 1, the first with a rebalance timeout.
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 1, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    // SASL: v1 handshakes carry the tokens in SaslAuthenticate (v0 sent them raw).
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // ACLs from v1, the first with resource pattern types (PREFIXED); v2 is flexible.
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    // Client quotas (user and client-id entities); v1 is flexible.
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
];

/// A request this client sends, with its API key and response type. (The codec's own
/// `Request` trait also needs request decoders, which only brokers compile.)
pub trait Request: Encodable {
    /// The API this request belongs to.
    const KEY: ApiKey;
    /// What the broker answers.
    type Response: Decodable;
}

macro_rules! requests {
    ($($request:ty => $response:ty, $key:ident;)*) => {
        $(impl Request for $request {
            const KEY: ApiKey = ApiKey::$key;
            type Response = $response;
        })*
    };
}

requests! {
    ProduceRequest => ProduceResponse, Produce;
    FetchRequest => FetchResponse, Fetch;
    ListOffsetsRequest => ListOffsetsResponse, ListOffsets;
    MetadataRequest => MetadataResponse, Metadata;
    CreateTopicsRequest => CreateTopicsResponse, CreateTopics;
    DeleteTopicsRequest => DeleteTopicsResponse, DeleteTopics;
    CreatePartitionsRequest => CreatePartitionsResponse, CreatePartitions;
    InitProducerIdRequest => InitProducerIdResponse, InitProducerId;
    DescribeConfigsRequest => DescribeConfigsResponse, DescribeConfigs;
    IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse, IncrementalAlterConfigs;
    DescribeClusterRequest => DescribeClusterResponse, DescribeCluster;
    FindCoordinatorRequest => FindCoordinatorResponse, FindCoordinator;
    JoinGroupRequest => JoinGroupResponse, JoinGroup;
    SyncGroupRequest => SyncGroupResponse, SyncGroup;
    HeartbeatRequest => HeartbeatResponse, Heartbeat;
    LeaveGroupRequest => LeaveGroupResponse, LeaveGroup;
    OffsetCommitRequest => OffsetCommitResponse, OffsetCommit;
    OffsetFetchRequest => OffsetFetchResponse, OffsetFetch;
    ListGroupsRequest => ListGroupsResponse, ListGroups;
    DescribeGroupsRequest => DescribeGroupsResponse, DescribeGroups;
    DeleteGroupsRequest => DeleteGroupsResponse, DeleteGroups;
    OffsetDeleteRequest => OffsetDeleteResponse, OffsetDelete;
    SaslHandshakeRequest => SaslHandshakeResponse, SaslHandshake;
    SaslAuthenticateRequest => SaslAuthenticateResponse, SaslAuthenticate;
    DescribeUserScramCredentialsRequest => DescribeUserScramCredentialsResponse,
        DescribeUserScramCredentials;
    AlterUserScramCredentialsRequest => AlterUserScramCredentialsResponse,
        AlterUserScramCredentials;
    DescribeAclsRequest => DescribeAclsResponse, DescribeAcls;
    CreateAclsRequest => CreateAclsResponse, CreateAcls;
    DeleteAclsRequest => DeleteAclsResponse, DeleteAcls;
    DescribeClientQuotasRequest => DescribeClientQuotasResponse, DescribeClientQuotas;
    AlterClientQuotasRequest => AlterClientQuotasResponse, AlterClientQuotas;
    AddPartitionsToTxnRequest => AddPartitionsToTxnResponse, AddPartitionsToTxn;
    AddOffsetsToTxnRequest => AddOffsetsToTxnResponse, AddOffsetsToTxn;
    EndTxnRequest => EndTxnResponse, EndTxn;
    TxnOffsetCommitRequest => TxnOffsetCommitResponse, TxnOffsetCommit;
    ListTransactionsRequest => ListTransactionsResponse, ListTransactions;
    DescribeTransactionsRequest => DescribeTransactionsResponse, DescribeTransactions;
}

/// Settings shared by every connection of a client.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Sent in every request header (`client.id`).
    pub client_id: String,
    /// Bound on TCP connect plus version negotiation.
    pub connect_timeout: Duration,
    /// Bound on each request's round trip (long-poll fetches add their wait).
    pub request_timeout: Duration,
    /// Largest response frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// TLS and SASL (`security.protocol` and the settings it needs); plain TCP by
    /// default.
    pub security: Security,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            client_id: "strata-client".to_string(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            security: Security::default(),
        }
    }
}

/// A negotiated connection to one broker.
#[derive(Debug)]
pub struct Connection {
    addr: String,
    stream: Transport,
    config: ConnectionConfig,
    next_correlation_id: i32,
    /// api key → the highest version both sides speak.
    versions: HashMap<i16, i16>,
    broken: bool,
}

impl Connection {
    /// Connects to `addr` (with a TLS handshake when the security protocol asks for
    /// one), negotiates API versions (ApiVersions v3, falling back to v0 when the
    /// broker answers UNSUPPORTED_VERSION) and authenticates with SASL when configured.
    /// Fails with [`Error::Connect`] when the whole exchange does not finish within
    /// `config.connect_timeout`, and with [`Error::Tls`] or [`Error::Authentication`]
    /// when the broker or the client refuses the other.
    pub async fn connect(addr: &str, config: ConnectionConfig) -> Result<Connection> {
        let connect_timeout = config.connect_timeout;
        let attempt = async {
            let stream = Transport::open(addr, &config.security).await?;
            let sasl = config.security.sasl().cloned();
            let mut conn = Connection {
                addr: addr.to_string(),
                stream,
                config,
                next_correlation_id: 1,
                versions: HashMap::new(),
                broken: false,
            };
            conn.negotiate().await?;
            if let Some(credentials) = sasl {
                conn.authenticate(&credentials).await?;
            }
            Ok(conn)
        };
        match tokio::time::timeout(connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(Error::Connect {
                addr: addr.to_string(),
                reason: format!(
                    "no connection, TLS, API versions and SASL within {connect_timeout:?}"
                ),
            }),
        }
    }

    /// Fails when an earlier failure broke this connection.
    fn refuse_if_broken(&self) -> Result<()> {
        if !self.broken {
            return Ok(());
        }
        Err(Error::io(
            &self.addr,
            std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "connection closed after an earlier failure",
            ),
        ))
    }

    /// Turns this connection into a [`Pipeline`]: its stream is split between a writer
    /// and a reader on a task of their own (spawned on the current Tokio runtime).
    /// Fails on a broken connection.
    pub fn into_pipeline(self) -> Result<Pipeline> {
        self.refuse_if_broken()?;
        Ok(Pipeline::start(
            self.addr,
            self.stream,
            self.config,
            self.versions,
            self.next_correlation_id,
        ))
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether an earlier failure left the stream unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The version that will be used for `api`, if the broker and client share one.
    pub fn api_version(&self, api: ApiKey) -> Option<i16> {
        self.versions.get(&(api as i16)).copied()
    }

    /// Sends `request` at the negotiated version and waits for its response, within the
    /// request timeout.
    pub async fn send<R: Request>(&mut self, request: &R) -> Result<R::Response> {
        let timeout = self.config.request_timeout;
        self.send_with_timeout(request, timeout).await
    }

    /// As [`Connection::send`] with an explicit bound (a long-poll fetch waits longer).
    pub async fn send_with_timeout<R: Request>(
        &mut self,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response> {
        let (api, version) = self.negotiated::<R>()?;
        let body = self
            .round_trip(api, version, request, true, timeout)
            .await?
            .unwrap_or_default();
        self.decode_body::<R::Response>(api, version, body)
    }

    /// Sends `request` without waiting for a response (Produce with acks=0, where the
    /// broker sends none). Returns once the bytes are written to the socket.
    pub async fn send_no_response<R: Request>(&mut self, request: &R) -> Result<()> {
        let (api, version) = self.negotiated::<R>()?;
        let timeout = self.config.request_timeout;
        self.round_trip(api, version, request, false, timeout)
            .await
            .map(|_| ())
    }

    /// Builds the request for the negotiated version of its API (for requests whose
    /// fields differ between versions) and sends it, waiting at most `timeout`.
    pub async fn send_built<R: Request>(
        &mut self,
        build: impl FnOnce(i16) -> R,
        timeout: Duration,
    ) -> Result<R::Response> {
        let (_, version) = self.negotiated::<R>()?;
        self.send_with_timeout(&build(version), timeout).await
    }

    /// The bound [`Connection::send`] puts on a round trip.
    pub fn request_timeout(&self) -> Duration {
        self.config.request_timeout
    }

    fn negotiated<R: Request>(&self) -> Result<(ApiKey, i16)> {
        let api = R::KEY;
        let version = self.api_version(api).ok_or_else(|| {
            let (client_min, client_max) = client_range(api).unwrap_or((-1, -1));
            Error::UnsupportedApi {
                addr: self.addr.clone(),
                api,
                client_min,
                client_max,
            }
        })?;
        Ok((api, version))
    }

    fn decode_body<T: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        mut body: Bytes,
    ) -> Result<T> {
        T::decode(&mut body, version).map_err(|e| {
            self.broken = true;
            Error::Decode {
                addr: self.addr.clone(),
                api,
                version,
                reason: e.to_string(),
            }
        })
    }

    /// Writes one request frame and, if `expect_response`, reads one response frame and
    /// returns its body (after the response header). Any failure breaks the connection.
    async fn round_trip<B: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &B,
        expect_response: bool,
        timeout: Duration,
    ) -> Result<Option<Bytes>> {
        self.refuse_if_broken()?;
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = self.encode_frame(api, version, correlation_id, body)?;
        trace!(api = ?api, version, correlation_id, bytes = frame.len(), addr = %self.addr, "request");
        // Broken until the exchange completes: a caller that drops this future midway
        // (a `select!`, a cancelled task) leaves a response unread on the stream.
        self.broken = true;
        let result = self.exchange(api, &frame, expect_response, timeout).await;
        let mut frame = match result {
            Ok(Some(frame)) => {
                self.broken = false;
                frame
            }
            Ok(None) => {
                self.broken = false;
                return Ok(None);
            }
            Err(e) => {
                debug!(api = ?api, correlation_id, addr = %self.addr, error = %e, "request failed; closing connection");
                self.broken = true;
                return Err(e);
            }
        };
        self.read_response_header(api, version, correlation_id, &mut frame)?;
        Ok(Some(frame))
    }

    /// Writes `frame` and, if `expect_response`, reads the response frame, all within
    /// `timeout`.
    async fn exchange(
        &mut self,
        api: ApiKey,
        frame: &[u8],
        expect_response: bool,
        timeout: Duration,
    ) -> Result<Option<Bytes>> {
        let attempt = async {
            self.stream.write_all(frame).await.map_err(|e| self.io(e))?;
            // TLS may hold the last record back until flushed (a no-op on TCP).
            self.stream.flush().await.map_err(|e| self.io(e))?;
            if !expect_response {
                return Ok(None);
            }
            let frame = self.read_frame().await?;
            Ok(Some(frame))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                addr: self.addr.clone(),
                api,
                timeout,
            }),
        }
    }

    /// Takes the response header off `frame` and checks that it answers the request
    /// sent as `correlation_id`; a header that does not breaks the connection.
    fn read_response_header(
        &mut self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        frame: &mut Bytes,
    ) -> Result<()> {
        let header_version = api.response_header_version(version);
        let header = ResponseHeader::decode(frame, header_version).map_err(|e| {
            self.broken = true;
            Error::Decode {
                addr: self.addr.clone(),
                api,
                version,
                reason: format!("response header: {e}"),
            }
        })?;
        if header.correlation_id != correlation_id {
            self.broken = true;
            return Err(Error::Decode {
                addr: self.addr.clone(),
                api,
                version,
                reason: format!(
                    "correlation id {} answers no request (expected {correlation_id})",
                    header.correlation_id
                ),
            });
        }
        Ok(())
    }

    fn encode_frame<B: Encodable>(
        &self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &B,
    ) -> Result<BytesMut> {
        encode_frame(&self.config.client_id, api, version, correlation_id, body)
    }

    async fn read_frame(&mut self) -> Result<Bytes> {
        let size = self.stream.read_i32().await.map_err(|e| self.io(e))?;
        let limit = self.config.max_frame_bytes;
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= limit)
            .ok_or_else(|| self.bad_frame_size(size, limit))?;
        let mut body = vec![0u8; size];
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|e| self.io(e))?;
        Ok(Bytes::from(body))
    }

    fn bad_frame_size(&self, size: i32, limit: usize) -> Error {
        bad_frame_size(&self.addr, &self.config.security, size, limit)
    }

    fn io(&self, source: std::io::Error) -> Error {
        io_error(&self.addr, source)
    }

    /// ApiVersions: v3 first; on UNSUPPORTED_VERSION (answered in the v0 layout) retry
    /// with v0, which every broker speaks.
    async fn negotiate(&mut self) -> Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strata-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response = self.api_versions(&request, API_VERSIONS_FIRST).await?;
        if response.error_code == UNSUPPORTED_VERSION {
            debug!(addr = %self.addr, "ApiVersions v{API_VERSIONS_FIRST} unsupported; retrying with v0");
            response = self.api_versions(&request, 0).await?;
        }
        Error::check(
            response.error_code,
            || format!("ApiVersions with {}", self.addr),
            None,
        )?;
        self.versions = common_versions(&response);
        debug!(addr = %self.addr, versions = ?self.versions, "negotiated API versions");
        Ok(())
    }

    /// One ApiVersions exchange at `version`. An error answer may come in the v0 layout
    /// whatever was asked, so a body that does not decode at `version` is tried as v0.
    async fn api_versions(
        &mut self,
        request: &ApiVersionsRequest,
        version: i16,
    ) -> Result<ApiVersionsResponse> {
        let api = ApiKey::ApiVersions;
        let timeout = self.config.request_timeout;
        let body = self
            .round_trip(api, version, request, true, timeout)
            .await?
            .unwrap_or_default();
        let first = match ApiVersionsResponse::decode(&mut body.clone(), version) {
            Ok(r) if r.error_code != UNSUPPORTED_VERSION || version == 0 => return Ok(r),
            other => other.ok(),
        };
        match (ApiVersionsResponse::decode(&mut body.clone(), 0), first) {
            (Ok(v0), _) => Ok(v0),
            (Err(_), Some(r)) => Ok(r),
            (Err(e), None) => {
                self.broken = true;
                Err(Error::Decode {
                    addr: self.addr.clone(),
                    api,
                    version,
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// One request frame: size, request header (with `client_id`) and body.
pub(crate) fn encode_frame<B: Encodable>(
    client_id: &str,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &B,
) -> Result<BytesMut> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    // One allocation for the whole frame: a Produce request carries batches of up to
    // max.request.size, which growing from a small buffer would copy many times.
    let body_bytes = body.compute_size(version).unwrap_or(0);
    let header_bytes = 32 + client_id.len();
    let mut buf = BytesMut::with_capacity(4 + header_bytes + body_bytes);
    buf.put_i32(0); // size, patched below
    header
        .encode(&mut buf, api.request_header_version(version))
        .map_err(|e| Error::Encode {
            api,
            version,
            reason: format!("request header: {e}"),
        })?;
    body.encode(&mut buf, version).map_err(|e| Error::Encode {
        api,
        version,
        reason: e.to_string(),
    })?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| Error::Encode {
        api,
        version,
        reason: format!(
            "request of {} bytes exceeds the frame size field",
            buf.len()
        ),
    })?;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// [`Error::FrameSize`]; or [`Error::Tls`] when a connection without TLS got what
/// starts a TLS record (the listener speaks TLS), which says what to configure.
pub(crate) fn bad_frame_size(addr: &str, security: &Security, size: i32, limit: usize) -> Error {
    if security.tls().is_none() && tls::is_record_header(size.to_be_bytes()) {
        return Error::Tls {
            addr: addr.to_string(),
            reason: "the broker answered in TLS: this listener needs security.protocol=SSL \
                     or SASL_SSL (and ssl.ca.location)"
                .to_string(),
        };
    }
    Error::FrameSize {
        addr: addr.to_string(),
        size_bytes: i64::from(size),
        limit_bytes: limit,
    }
}

/// [`Error::Tls`] for a TLS failure (an alert from the broker), else [`Error::Io`].
pub(crate) fn io_error(addr: &str, source: std::io::Error) -> Error {
    tls::tls_failure(addr, &source).unwrap_or_else(|| Error::io(addr, source))
}

/// For each API this client speaks, the highest version inside both ranges.
fn common_versions(response: &ApiVersionsResponse) -> HashMap<i16, i16> {
    let mut versions = HashMap::new();
    for &(api, client_min, client_max) in CLIENT_VERSIONS {
        let Some(broker) = response.api_keys.iter().find(|k| k.api_key == api as i16) else {
            continue;
        };
        let max = client_max.min(broker.max_version);
        if max >= client_min.max(broker.min_version) {
            versions.insert(api as i16, max);
        }
    }
    versions
}

fn client_range(api: ApiKey) -> Option<(i16, i16)> {
    CLIENT_VERSIONS
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|&(_, min, max)| (min, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    fn broker(ranges: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
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

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        let v = common_versions(&broker(&[
            (ApiKey::Produce, 0, 11),
            (ApiKey::Fetch, 4, 17),
            (ApiKey::Metadata, 0, 0),
            (ApiKey::CreateTopics, 8, 9),
        ]));
        assert_eq!(v.get(&(ApiKey::Produce as i16)), Some(&11));
        assert_eq!(v.get(&(ApiKey::Fetch as i16)), Some(&12));
        // Only v0, which this client does not speak.
        assert_eq!(v.get(&(ApiKey::Metadata as i16)), None);
        // Broker's range starts above ours.
        assert_eq!(v.get(&(ApiKey::CreateTopics as i16)), None);
        // Not advertised at all.
        assert_eq!(v.get(&(ApiKey::ListOffsets as i16)), None);
    }

    #[test]
    fn client_ranges_lie_within_the_codec() {
        for &(api, min, max) in CLIENT_VERSIONS {
            let codec = api.valid_versions();
            assert!(codec.min <= min && max <= codec.max, "{api:?}");
        }
    }
}
