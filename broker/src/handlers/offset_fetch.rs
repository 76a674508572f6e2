//! OffsetFetch: a group's committed offsets — one group per request up to v7, several
//! from v8. Partitions without a committed offset answer -1 (no error), as in Kafka;
//! no topics (null, v2+) means every partition the group has committed.
//!
//! As in Kafka, the group needs DESCRIBE (GROUP_AUTHORIZATION_FAILED), a named topic
//! the caller may not describe answers TOPIC_AUTHORIZATION_FAILED per partition, and
//! "every partition" leaves such topics out. With `require_stable` (v7+, sent by
//! read_committed consumers) a partition whose offset waits for a transaction's
//! outcome answers UNSTABLE_OFFSET_COMMIT, which the client retries.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use kafka_protocol::error::ResponseError;

use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::group::records::OffsetValue;

/// Per topic, per partition: the committed offset (if any), or the error code.
type Found = Vec<(String, Vec<(i32, Result<Option<OffsetValue>, i16>)>)>;

fn name(t: String) -> TopicName {
    TopicName(StrBytes::from_string(t))
}

/// A partition's (offset, leader epoch, metadata, error code).
fn fields(v: &Result<Option<OffsetValue>, i16>, version: i16) -> (i64, i32, StrBytes, i16) {
    match v {
        Ok(Some(v)) => (
            v.offset,
            if version >= 5 { v.leader_epoch } else { -1 },
            StrBytes::from_string(v.metadata.clone()),
            0,
        ),
        Ok(None) => (-1, -1, StrBytes::from_static_str(""), 0),
        Err(code) => (-1, -1, StrBytes::from_static_str(""), *code),
    }
}

fn single(ctx: &RequestContext, found: Found) -> Vec<OffsetFetchResponseTopic> {
    let topic = |(t, ps): (String, Vec<_>)| {
        let partition = |(p, v)| {
            let (offset, epoch, metadata, code) = fields(&v, ctx.version);
            OffsetFetchResponsePartition::default()
                .with_partition_index(p)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(epoch)
                .with_metadata(Some(metadata))
                .with_error_code(ctx.code(code))
        };
        OffsetFetchResponseTopic::default()
            .with_name(name(t))
            .with_partitions(ps.into_iter().map(partition).collect())
    };
    found.into_iter().map(topic).collect()
}

fn multi(ctx: &RequestContext, found: Found) -> Vec<OffsetFetchResponseTopics> {
    let topic = |(t, ps): (String, Vec<_>)| {
        let partition = |(p, v)| {
            let (offset, epoch, metadata, code) = fields(&v, ctx.version);
            OffsetFetchResponsePartitions::default()
                .with_partition_index(p)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(epoch)
                .with_metadata(Some(metadata))
                .with_error_code(ctx.code(code))
        };
        OffsetFetchResponseTopics::default()
            .with_name(name(t))
            .with_partitions(ps.into_iter().map(partition).collect())
    };
    found.into_iter().map(topic).collect()
}

/// One group's offsets as the caller may see them (unstable ones refused when
/// `require_stable`), or the group's error code.
fn fetch(
    ctx: &RequestContext,
    group_id: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Result<Found, i16> {
    let mut found = fetch_all(ctx, group_id, wanted)?;
    if require_stable {
        let unstable = ctx.broker.groups.unstable_offsets(group_id);
        let code = ResponseError::UnstableOffsetCommit.code();
        for (t, ps) in &mut found {
            for (p, v) in ps.iter_mut() {
                if v.is_ok() && unstable.contains(&(t.clone(), *p)) {
                    *v = Err(code);
                }
            }
        }
    }
    Ok(found)
}

fn fetch_all(
    ctx: &RequestContext,
    group_id: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Found, i16> {
    let checks = ctx.checks();
    let groups = &ctx.broker.groups;
    checks
        .group(Operation::Describe, group_id)
        .and_then(|()| groups.serves(group_id))
        .map_err(|e| e.code())?;
    let describable = |t: &str| checks.allows(Operation::Describe, ResourceType::Topic, t);
    let Some(wanted) = wanted else {
        let all = groups.fetch_offsets(group_id, None).into_iter();
        let visible = all.filter(|(t, _)| checks.sees(Operation::Describe, ResourceType::Topic, t));
        return Ok(visible
            .map(|(t, ps)| (t, ps.into_iter().map(|(p, v)| (p, Ok(v))).collect()))
            .collect());
    };
    let denied = ResponseError::TopicAuthorizationFailed.code();
    let (allowed, refused): (Vec<_>, Vec<_>) =
        wanted.into_iter().partition(|(t, _)| describable(t));
    let found = groups.fetch_offsets(group_id, Some(allowed)).into_iter();
    let found = found.map(|(t, ps)| (t, ps.into_iter().map(|(p, v)| (p, Ok(v))).collect()));
    let refused = refused
        .into_iter()
        .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, Err(denied))).collect()));
    Ok(found.chain(refused).collect())
}

fn wanted_topics<T>(
    topics: Option<Vec<T>>,
    of: impl Fn(T) -> (String, Vec<i32>),
) -> Option<Vec<(String, Vec<i32>)>> {
    topics.map(|ts| ts.into_iter().map(of).collect())
}

pub fn handle(ctx: &RequestContext, r: OffsetFetchRequest) -> OffsetFetchResponse {
    if ctx.version >= 8 {
        let results = r
            .groups
            .into_iter()
            .map(|g| {
                let wanted = wanted_topics(g.topics, |t| (t.name.to_string(), t.partition_indexes));
                let out = OffsetFetchResponseGroup::default();
                match fetch(ctx, g.group_id.as_str(), wanted, r.require_stable) {
                    Ok(found) => out.with_topics(multi(ctx, found)),
                    Err(code) => out.with_error_code(ctx.code(code)),
                }
                .with_group_id(g.group_id)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(results);
    }
    let wanted = wanted_topics(r.topics, |t| (t.name.to_string(), t.partition_indexes));
    let require_stable = ctx.version >= 7 && r.require_stable;
    match fetch(ctx, r.group_id.as_str(), wanted.clone(), require_stable) {
        Ok(found) => OffsetFetchResponse::default().with_topics(single(ctx, found)),
        Err(code) if ctx.version >= 2 => {
            OffsetFetchResponse::default().with_error_code(ctx.code(code))
        }
        // v1 has no top-level error: each requested partition carries it.
        Err(code) => {
            let refused =
                |(t, ps): (String, Vec<i32>)| (t, ps.into_iter().map(|p| (p, Err(code))).collect());
            let found = wanted
                .unwrap_or_default()
                .into_iter()
                .map(refused)
                .collect();
            OffsetFetchResponse::default().with_topics(single(ctx, found))
        }
    }
}
