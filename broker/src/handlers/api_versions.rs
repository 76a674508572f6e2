//! ApiVersions: the version range of every API this broker answers.
//!
//! A request at a version above ours gets UNSUPPORTED_VERSION with our ranges, encoded
//! at v0, the layout every client can read, so it retries at a version we know.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

use super::Reply;
use super::RequestContext;
use crate::versions;

pub fn handle(ctx: &RequestContext) -> (Reply, i16) {
    let api_keys = versions::SUPPORTED
        .iter()
        .map(|&(api, min, max)| {
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    let mut response = ApiVersionsResponse::default().with_api_keys(api_keys);
    let version = ctx.version;
    let supported = versions::accepted(ctx.api, version);
    if !supported {
        response.error_code = ctx.code(ResponseError::UnsupportedVersion.code());
    }
    (Reply::now(response), if supported { version } else { 0 })
}
