//! Client quotas applied to each request (see [`crate::quota`]): Produce bytes against
//! `producer_byte_rate` (as the request is read), Fetch response bytes against
//! `consumer_byte_rate` (a Fetch answer holds at most the quota's burst:
//! [`crate::quota::ClientQuotas::fetch_limit`]), and the
//! time the broker spent handling it against `request_percentage` (its throttle at most
//! 1 s, as Kafka's). The largest
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
    /// The throttle its Produce bytes earned when it was read ([`record_produce`]).
    pub produce_throttle: Duration,
    /// Time spent handling it before its answer (or its wait) was ready.
    pub handler_time: Duration,
}

/// The longest throttle `request_percentage` gives (Kafka's request quota caps it at
/// one quota window sample): handler time includes waits on the controller, which a
/// client does not control.
pub const MAX_REQUEST_THROTTLE: Duration = Duration::from_secs(1);

/// Charges a Produce request's bytes to the caller's `producer_byte_rate` as the
/// request is read, and returns the throttle it earns (zero for any other API).
pub fn record_produce(broker: &Broker, ctx: &RequestContext, request_bytes: usize) -> Duration {
    if ctx.api != ApiKey::Produce {
        return Duration::ZERO;
    }
    let state = broker.cluster.state();
    if state.quotas.is_empty() {
        return Duration::ZERO;
    }
    let (user, client) = ctx.quota_identity();
    let who = (user.as_str(), client.as_str());
    let (kind, amount) = (QuotaKind::Produce, request_bytes as f64);
    broker
        .quotas
        .record(&state.quotas, kind, who, amount, &broker.metrics)
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
    let (user, client) = ctx.quota_identity();
    let who = (user.as_str(), client.as_str());
    let record = |kind, amount| {
        broker
            .quotas
            .record(quotas, kind, who, amount, &broker.metrics)
    };
    let handled = usage.handler_time.as_secs_f64() * 100.0;
    let mut throttle = record(QuotaKind::Request, handled)
        .min(MAX_REQUEST_THROTTLE)
        .max(usage.produce_throttle);
    if let Some(ResponseKind::Fetch(r)) = body.as_deref() {
        let bytes = r.compute_size(version).unwrap_or(0);
        throttle = throttle.max(record(QuotaKind::Fetch, bytes as f64));
    }
    if let Some(body) = body {
        let ms = i32::try_from(throttle.as_millis()).unwrap_or(i32::MAX);
        set_throttle_time(body, ms);
    }
    throttle
}
