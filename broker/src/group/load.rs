//! Loading groups from `__consumer_offsets` whenever this broker becomes (or stops
//! being) the leader of one of its partitions; the latest record per key wins,
//! tombstones delete.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use log_store::BatchHeader;
use tracing::{info, warn};

use super::records::{GroupValue, OffsetValue, RecordKey};
use super::state::{Group, GroupState};
use super::{lock, wall_ms, Coordinator, MIN_RECORD_BYTES, OFFSETS_TOPIC, REPLAY_READ_BYTES};
use super::{records, state};
use crate::error::{BrokerError, Result};
use crate::partition::Partition;

impl Coordinator {
    /// Loads the groups of the `__consumer_offsets` partitions this node leads now (as
    /// every tick does); true once it coordinates every partition. A cluster of one
    /// waits for this before it serves.
    pub fn load_led_partitions(&self) -> bool {
        self.follow_leadership();
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let partitions = self.partitions();
        !partitions.is_empty()
            && partitions.iter().all(|p| {
                p.view()
                    .is_some_and(|v| v.is_leader && loaded.get(&p.index()) == Some(&v.term))
            })
    }

    /// Loads the groups of each `__consumer_offsets` partition this node has come to lead (once the new leader's log is fully committed, so it holds
    /// every acknowledged commit), and drops those of partitions it no longer leads.
    /// Called every tick.
    pub(super) fn follow_leadership(&self) {
        let loaded = &self.loaded;
        for p in self.partitions() {
            let index = p.index();
            let view = p.view();
            let current = loaded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&index)
                .copied();
            match view {
                Some(v) if v.is_leader => {
                    if current == Some(v.term) {
                        continue;
                    }
                    let caught_up = p.offsets().is_ok_and(|o| o.high_watermark == o.log_end);
                    if !caught_up {
                        continue;
                    }
                    self.unload_partition(index);
                    let started = Instant::now();
                    match self.replay_partition(&p, started) {
                        Ok(records) => {
                            info!(
                                partition = index,
                                term = v.term,
                                records,
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "now coordinating the groups of this {OFFSETS_TOPIC} partition"
                            );
                            loaded
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(index, v.term);
                        }
                        Err(e) => {
                            warn!(partition = index, error = %e, "loading groups failed; will retry")
                        }
                    }
                }
                _ => {
                    if current.is_some() {
                        loaded
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&index);
                        self.unload_partition(index);
                        info!(
                            partition = index,
                            "no longer coordinating the groups of this {OFFSETS_TOPIC} partition"
                        );
                    }
                }
            }
        }
    }

    /// Drops the cached groups of `__consumer_offsets` partition `index` (their
    /// coordinator moved); waiting joins and syncs answer NOT_COORDINATOR.
    pub(super) fn unload_partition(&self, index: i32) {
        let n = self.partitions().len() as i32;
        let gone: Vec<Arc<Mutex<Group>>> = {
            let mut groups = self.groups();
            let ids: Vec<String> = groups
                .keys()
                .filter(|id| records::partition_for(id, n) == index)
                .cloned()
                .collect();
            ids.iter().filter_map(|id| groups.remove(id)).collect()
        };
        for g in gone {
            lock(&g).unload();
        }
    }

    /// Replays one `__consumer_offsets` partition into the group cache, up to its high
    /// watermark; the records read. Groups whose metadata was deleted and that hold no
    /// offsets are then dropped; groups known only from their offsets (no metadata
    /// record) get no "empty since", so their offsets expire by commit time however
    /// often the coordinator moves.
    pub(super) fn replay_partition(&self, p: &Partition, now: Instant) -> Result<u64> {
        let read = self.read_partition(p, now)?;
        let n = self.partitions().len() as i32;
        // The map's lock is never held while a group's is taken (handlers lock a group,
        // then the map): collect, judge, then remove.
        let loaded: Vec<(String, Arc<Mutex<Group>>)> = self
            .groups()
            .iter()
            .filter(|(id, _)| records::partition_for(id, n) == p.index())
            .map(|(id, g)| (id.clone(), g.clone()))
            .collect();
        let mut gone = Vec::new();
        for (id, g) in loaded {
            let mut group = lock(&g);
            if group.protocol_type.is_none() && group.members.is_empty() {
                group.state_since_ms = i64::MIN;
            }
            if group.state == GroupState::Dead && group.offsets.is_empty() {
                gone.push((id, g.clone()));
            }
        }
        let mut groups = self.groups();
        for (id, g) in gone {
            if groups.get(&id).is_some_and(|now| Arc::ptr_eq(now, &g)) {
                groups.remove(&id);
            }
        }
        Ok(read)
    }

    fn read_partition(&self, p: &Partition, now: Instant) -> Result<u64> {
        let mut records_read = 0;
        let mut offset = p.offsets().map(|o| o.log_start).unwrap_or(0);
        loop {
            let chunk = p.read(offset, REPLAY_READ_BYTES).map_err(|e| {
                BrokerError::Config(format!(
                    "cannot read {OFFSETS_TOPIC}-{} at offset {offset}: {e}",
                    p.index()
                ))
            })?;
            if chunk.is_empty() {
                return Ok(records_read);
            }
            for item in log_store::Batches::new(chunk) {
                let (header, bytes) = item.map_err(|e| BrokerError::Log {
                    topic: OFFSETS_TOPIC.into(),
                    partition: p.index(),
                    source: log_store::LogError::CorruptBatch(e),
                })?;
                offset = header.last_offset() as u64 + 1;
                records_read += self.replay_batch(&header, bytes, now, p.index());
            }
        }
    }

    pub(super) fn replay_batch(
        &self,
        header: &BatchHeader,
        bytes: Bytes,
        now: Instant,
        index: i32,
    ) -> u64 {
        if header.is_control() {
            return 0;
        }
        let claimed = header.records_count.max(0) as usize;
        if claimed > bytes.len() / MIN_RECORD_BYTES {
            warn!(
                partition = index,
                offset = header.base_offset,
                "{OFFSETS_TOPIC} batch claims more records than it holds; skipped"
            );
            return 0;
        }
        let mut buf = bytes;
        let set = match RecordBatchDecoder::decode(&mut buf) {
            Ok(set) => set,
            Err(e) => {
                warn!(partition = index, offset = header.base_offset, error = %e, "undecodable {OFFSETS_TOPIC} batch skipped");
                return 0;
            }
        };
        let mut n = 0;
        for record in set.records {
            n += 1;
            let Some(key) = record.key else { continue };
            match RecordKey::decode(key) {
                Ok(key) => self.apply(key, record.value, now),
                Err(e) => {
                    warn!(partition = index, offset = record.offset, error = %e, "skipping a {OFFSETS_TOPIC} record")
                }
            }
        }
        n
    }

    pub(super) fn apply(&self, key: RecordKey, value: Option<Bytes>, now: Instant) {
        let group = self.get_or_create(key.group());
        let mut g = lock(&group);
        match (key, value) {
            (
                RecordKey::Offset {
                    topic, partition, ..
                },
                None,
            ) => {
                g.offsets.remove(&(topic, partition));
            }
            (
                RecordKey::Offset {
                    topic, partition, ..
                },
                Some(v),
            ) => match OffsetValue::decode(v) {
                Ok(value) => {
                    g.offsets
                        .insert((topic, partition), state::Committed { value });
                }
                Err(e) => warn!(group = %g.id, error = %e, "skipping an offset record"),
            },
            (RecordKey::Group { .. }, None) => {
                g.restore(
                    GroupValue {
                        protocol_type: String::new(),
                        generation: 0,
                        protocol: None,
                        leader: None,
                        state_timestamp_ms: wall_ms(),
                        members: Vec::new(),
                    },
                    now,
                );
                g.state = GroupState::Dead;
            }
            (RecordKey::Group { .. }, Some(v)) => match GroupValue::decode(v) {
                Ok(value) => g.restore(value, now),
                Err(e) => warn!(group = %g.id, error = %e, "skipping a group metadata record"),
            },
        }
        if g.state == GroupState::Dead && g.offsets.is_empty() {
            return;
        }
        if g.state == GroupState::Dead {
            // Offsets committed after a delete bring the group back, empty.
            g.state = GroupState::Empty;
        }
    }
}
