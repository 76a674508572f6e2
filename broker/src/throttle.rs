//! Client quotas applied to each request (see [`crate::quota`]): Produce bytes against
//! `producer_byte_rate`, Fetch response bytes against `consumer_byte_rate`, and the
//! time the broker spent handling it against `request_percentage`. The largest
//! throttle goes into the response's `throttle_time_ms`, and the connection reads no
//! further request until it has passed (KIP-219: answer first, then mute).

use std::time::Duration;

use kafka_protocol::messages::{ApiKey, ResponseKind};
use kafka_protocol::protocol::Encodable;

use crate::handlers::RequestContext;
use crate::quota::QuotaKind;
use crate::Broker;

/// What a request used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// The request frame's size.
    pub request_bytes: usize,
    /// Time spent handling it before its answer (or its wait) was ready.
    pub handler_time: Duration,
}

/// Sets `throttle_time_ms` in any response that has the field (the codec leaves it
/// out of versions without it).
macro_rules! set_throttle {
    ($body:expr, $ms:expr, $($variant:ident),* $(,)?) => {
        match $body {
            $(ResponseKind::$variant(r) => r.throttle_time_ms = $ms,)*
            _ => {}
        }
    };
}

fn set_throttle_time(body: &mut ResponseKind, ms: i32) {
    set_throttle!(
        body,
        ms,
        Produce,
        Fetch,
        ListOffsets,
        OffsetForLeaderEpoch,
        Metadata,
        CreateTopics,
        DeleteTopics,
        CreatePartitions,
        DeleteRecords,
        InitProducerId,
        DescribeCluster,
        FindCoordinator,
        JoinGroup,
        SyncGroup,
        Heartbeat,
        LeaveGroup,
        OffsetCommit,
        OffsetFetch,
        ListGroups,
        DescribeGroups,
        DeleteGroups,
        OffsetDelete,
        DescribeConfigs,
        AlterConfigs,
        IncrementalAlterConfigs,
        DescribeUserScramCredentials,
        AlterUserScramCredentials,
        CreateAcls,
        DescribeAcls,
        DeleteAcls,
        DescribeClientQuotas,
        AlterClientQuotas,
        ApiVersions,
    );
}

/// Records the request against the caller's quotas and returns how long its
/// connection must pause; `body`, the response about to be written at `version`,
/// carries that time. Requests before and for authentication are exempt.
pub fn apply(
    broker: &Broker,
    ctx: &RequestContext,
    body: Option<&mut ResponseKind>,
    version: i16,
    usage: Usage,
) -> Duration {
    if matches!(
        ctx.api,
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
    ) {
        return Duration::ZERO;
    }
    let state = broker.cluster.state();
    let quotas = &state.quotas;
    if quotas.is_empty() {
        return Duration::ZERO;
    }
    let principal = ctx.session.principal();
    let user = principal.strip_prefix("User:").unwrap_or(&principal);
    let client = ctx.client_id_string();
    let who = (user, client.as_str());
    let record = |kind, amount| {
        broker
            .quotas
            .record(quotas, kind, who, amount, &broker.metrics)
    };
    let mut throttle = record(QuotaKind::Request, usage.handler_time.as_secs_f64() * 100.0);
    let bytes = match (ctx.api, body.as_deref()) {
        (ApiKey::Produce, _) => Some((QuotaKind::Produce, usage.request_bytes)),
        (ApiKey::Fetch, Some(ResponseKind::Fetch(r))) => {
            Some((QuotaKind::Fetch, r.compute_size(version).unwrap_or(0)))
        }
        _ => None,
    };
    if let Some((kind, n)) = bytes {
        throttle = throttle.max(record(kind, n as f64));
    }
    if let Some(body) = body {
        let ms = i32::try_from(throttle.as_millis()).unwrap_or(i32::MAX);
        set_throttle_time(body, ms);
    }
    throttle
}
