//! OffsetFetch: a group's committed offsets — one group per request up to v7, several
//! from v8. Partitions without a committed offset answer -1 (no error), as in Kafka;
//! no topics (null, v2+) means every partition the group has committed.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::group::records::OffsetValue;
use crate::group::FetchedOffsets as Fetched;

fn name(t: String) -> TopicName {
    TopicName(StrBytes::from_string(t))
}

fn fields(v: &Option<OffsetValue>, version: i16) -> (i64, i32, Option<StrBytes>) {
    match v {
        Some(v) => (
            v.offset,
            if version >= 5 { v.leader_epoch } else { -1 },
            Some(StrBytes::from_string(v.metadata.clone())),
        ),
        None => (-1, -1, Some(StrBytes::from_static_str(""))),
    }
}

fn single(found: Fetched, version: i16) -> Vec<OffsetFetchResponseTopic> {
    found
        .into_iter()
        .map(|(t, ps)| {
            let partitions = ps
                .into_iter()
                .map(|(p, v)| {
                    let (offset, epoch, metadata) = fields(&v, version);
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(metadata)
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(name(t))
                .with_partitions(partitions)
        })
        .collect()
}

fn multi(found: Fetched, version: i16) -> Vec<OffsetFetchResponseTopics> {
    found
        .into_iter()
        .map(|(t, ps)| {
            let partitions = ps
                .into_iter()
                .map(|(p, v)| {
                    let (offset, epoch, metadata) = fields(&v, version);
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(metadata)
                })
                .collect();
            OffsetFetchResponseTopics::default()
                .with_name(name(t))
                .with_partitions(partitions)
        })
        .collect()
}

pub fn handle(ctx: &RequestContext, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let groups = &ctx.broker.groups;
    let version = ctx.version;
    if version < 8 {
        let wanted: Option<Vec<(String, Vec<i32>)>> = r.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.to_string(), t.partition_indexes))
                .collect()
        });
        if let Err(code) = groups.serves(r.group_id.as_str()).map_err(|e| e.code()) {
            if version >= 2 {
                return OffsetFetchResponse::default().with_error_code(ctx.code(code));
            }
            // v1 has no top-level error: each requested partition carries it.
            let topics = wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| {
                    let partitions = ps
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(-1)
                                .with_metadata(Some(StrBytes::from_static_str("")))
                                .with_error_code(ctx.code(code))
                        })
                        .collect();
                    OffsetFetchResponseTopic::default()
                        .with_name(name(t))
                        .with_partitions(partitions)
                })
                .collect();
            return OffsetFetchResponse::default().with_topics(topics);
        }
        let found = groups.fetch_offsets(r.group_id.as_str(), wanted);
        return OffsetFetchResponse::default().with_topics(single(found, version));
    }
    let results = r
        .groups
        .into_iter()
        .map(|g| {
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes))
                    .collect()
            });
            if let Err(e) = groups.serves(g.group_id.as_str()) {
                return OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(ctx.code(e.code()));
            }
            let found = groups.fetch_offsets(g.group_id.as_str(), wanted);
            OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id)
                .with_topics(multi(found, version))
        })
        .collect();
    OffsetFetchResponse::default().with_groups(results)
}
