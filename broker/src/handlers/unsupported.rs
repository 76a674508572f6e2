//! Requests for APIs (or versions) this broker does not implement.
//!
//! Clients only send what ApiVersions advertised, so these come from tools that skip
//! negotiation, from old clients probing, and from fuzzers. Where the API's response
//! has a top-level error code and the codec knows the version, the answer is that
//! response with UNSUPPORTED_VERSION; anything else closes the connection, which is
//! what Kafka does for a version it cannot parse.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse, ListGroupsResponse,
    RequestKind, ResponseKind, SaslHandshakeResponse, SyncGroupResponse,
};

use super::Reply;
use super::RequestContext;

pub fn reply(ctx: &RequestContext, body: &mut Bytes) -> Result<Reply, String> {
    let (api, version) = (ctx.api, ctx.version);
    let close = || Err(format!("{api:?} v{version} is not supported"));
    let range = api.valid_versions();
    if version < range.min || version > range.max {
        return close();
    }
    let code = ctx.code(ResponseError::UnsupportedVersion.code());
    let response: ResponseKind = match api {
        ApiKey::FindCoordinator => {
            let request = match RequestKind::decode(api, body, version) {
                Ok(RequestKind::FindCoordinator(r)) => r,
                _ => return close(),
            };
            super::find_coordinator::answer(request, version, code, "this version is not supported")
                .into()
        }
        ApiKey::JoinGroup => JoinGroupResponse::default().with_error_code(code).into(),
        ApiKey::SyncGroup => SyncGroupResponse::default().with_error_code(code).into(),
        ApiKey::Heartbeat => HeartbeatResponse::default().with_error_code(code).into(),
        ApiKey::LeaveGroup => LeaveGroupResponse::default().with_error_code(code).into(),
        ApiKey::ListGroups => ListGroupsResponse::default().with_error_code(code).into(),
        ApiKey::SaslHandshake => SaslHandshakeResponse::default()
            .with_error_code(code)
            .into(),
        _ => return close(),
    };
    Ok(Reply::now(response))
}
