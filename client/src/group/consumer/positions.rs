//! Reading the assigned partitions: resolving each partition's position (committed
//! offset or `auto.offset.reset`), fetching, and handing records out in order.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::{debug, warn};

use super::{GroupConsumer, OffsetReset, Position};
use crate::error::{Error, Result, OFFSET_OUT_OF_RANGE};
use crate::offsets::{list_offset, refreshable, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use crate::record::ConsumerRecord;
use crate::topic_partition::TopicPartition;

impl GroupConsumer {
    /// The assigned partitions whose position is `position`.
    fn partitions_at(&self, position: Position) -> Vec<TopicPartition> {
        self.assignment
            .iter()
            .filter(|(_, s)| s.position == position)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Resolves positions not yet known: the group's committed offsets, then
    /// `auto.offset.reset`.
    pub(super) async fn resolve_positions(&mut self) -> Result<()> {
        let unknown: Vec<TopicPartition> = self.partitions_at(Position::Committed);
        if !unknown.is_empty() {
            let committed = self.fetch_committed(&unknown).await?;
            for tp in unknown {
                let Some(state) = self.assignment.get_mut(&tp) else {
                    continue;
                };
                match committed.get(&tp) {
                    Some(&offset) => {
                        debug!(%tp, offset, "resuming at the committed offset");
                        state.position = Position::At(offset);
                        state.fetch_position = offset;
                        self.committed.insert(tp, offset);
                    }
                    None => state.position = Position::Reset,
                }
            }
        }
        let to_reset: Vec<TopicPartition> = self.partitions_at(Position::Reset);
        for tp in to_reset {
            let timestamp = match self.config.auto_offset_reset {
                OffsetReset::Earliest => EARLIEST_TIMESTAMP,
                OffsetReset::Latest => LATEST_TIMESTAMP,
                OffsetReset::None => {
                    return Err(Error::NoOffset {
                        group: self.config.group_id.clone(),
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                    })
                }
            };
            let offset = list_offset(&self.cluster, &tp.topic, tp.partition, timestamp)
                .await?
                .offset;
            debug!(%tp, offset, reset = ?self.config.auto_offset_reset, "no usable committed offset; reset");
            if let Some(state) = self.assignment.get_mut(&tp) {
                state.position = Position::At(offset);
                state.fetch_position = offset;
            }
        }
        Ok(())
    }

    /// One round of fetches over the partitions with a position. `Ok(false)` when
    /// nothing could be fetched and the caller should back off (retriable errors, or
    /// nothing assigned).
    pub(super) async fn fetch(&mut self, wait: Duration) -> Result<bool> {
        let positions: Vec<(TopicPartition, i64)> = self
            .assignment
            .iter()
            .filter(|(_, s)| matches!(s.position, Position::At(_)))
            .map(|(tp, s)| (tp.clone(), s.fetch_position))
            .collect();
        if positions.is_empty() {
            self.pause(wait).await;
            return Ok(true);
        }
        let results = self.fetcher.fetch(&positions, wait).await;
        let mut healthy = true;
        for result in results {
            let Some(state) = self.assignment.get_mut(&result.tp) else {
                continue;
            };
            if state.fetch_position != result.fetch_offset {
                continue;
            }
            match result.outcome {
                Ok(fetched) => {
                    let from = state.fetch_position;
                    self.buffer
                        .extend(fetched.records.into_iter().filter(|r| r.offset >= from));
                    if let Some(next) = fetched.next_offset {
                        state.fetch_position = state.fetch_position.max(next);
                    }
                    if fetched.high_watermark >= 0 {
                        state.high_watermark = Some(fetched.high_watermark);
                    }
                }
                Err(e) if e.kafka_code() == Some(OFFSET_OUT_OF_RANGE) => {
                    warn!(tp = %result.tp, offset = result.fetch_offset, "offset out of range; applying auto.offset.reset");
                    state.position = Position::Reset;
                    self.buffer.retain(|r| {
                        *r.topic != *result.tp.topic || r.partition != result.tp.partition
                    });
                }
                Err(e) if refreshable(&e) => {
                    debug!(tp = %result.tp, error = %e, "fetch failed; refreshing metadata");
                    healthy = false;
                }
                Err(e) => return Err(e),
            }
        }
        if !healthy {
            let _ = self
                .cluster
                .refresh_metadata(Some(&self.topics), false)
                .await;
        }
        Ok(healthy)
    }

    /// Up to `max.poll.records` buffered records, moving positions past them.
    pub(super) fn drain(&mut self) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        // Records come partition by partition: build the lookup key only when it changes.
        let mut tp: Option<TopicPartition> = None;
        while out.len() < self.config.max_poll_records {
            let Some(record) = self.buffer.pop_front() else {
                break;
            };
            let key = match tp.take() {
                Some(k) if *k.topic == *record.topic && k.partition == record.partition => k,
                _ => TopicPartition::new(record.topic.to_string(), record.partition),
            };
            let key = tp.insert(key);
            let Some(state) = self.assignment.get_mut(key) else {
                continue;
            };
            match state.position {
                Position::At(p) if record.offset >= p => {
                    state.position = Position::At(record.offset + 1);
                    out.push(record);
                }
                _ => {}
            }
        }
        out
    }

    /// Positions that differ from what the group has committed.
    pub(super) fn consumed_offsets(&self) -> BTreeMap<TopicPartition, i64> {
        self.assignment
            .iter()
            .filter_map(|(tp, s)| match s.position {
                Position::At(p) if self.committed.get(tp) != Some(&p) => Some((tp.clone(), p)),
                _ => None,
            })
            .collect()
    }
}
