//! Loading groups from `__consumer_offsets` whenever this broker becomes (or stops
//! being) the leader of one of its partitions; the latest record per key wins,
//! tombstones delete.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use log_store::BatchHeader;
use tracing::warn;

use super::records::{GroupValue, OffsetValue, RecordKey};
use super::state::{Group, GroupState};
use super::{lock, wall_ms, Coordinator, OFFSETS_TOPIC};
use super::{records, state};
use crate::error::{BrokerError, Result};
use crate::leadership::Keys;
use crate::partition::Partition;

impl Coordinator {
    /// Loads the groups of the `__consumer_offsets` partitions this node leads now (as
    /// every tick does); true once it coordinates every partition. A cluster of one
    /// waits for this before it serves.
    pub fn load_led_partitions(&self) -> bool {
        self.follow_leadership();
        let partitions = self.partitions();
        !partitions.is_empty() && partitions.iter().all(|p| self.loaded.serves(p).is_ok())
    }

    /// Loads the groups of each `__consumer_offsets` partition this node has come to
    /// lead, and drops those of partitions it no longer leads. Called every tick.
    pub(super) fn follow_leadership(&self) {
        self.loaded.follow(self, &self.partitions());
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
        p.replay(|header, bytes| {
            records_read += self.replay_batch(header, bytes, now, p.index());
        })
        .map_err(|e| {
            BrokerError::Config(format!("cannot read {OFFSETS_TOPIC}-{}: {e}", p.index()))
        })?;
        Ok(records_read)
    }

    pub(super) fn replay_batch(
        &self,
        header: &BatchHeader,
        bytes: Bytes,
        now: Instant,
        index: i32,
    ) -> u64 {
        if header.is_control() {
            // A transaction's marker decides the offsets it committed here.
            match crate::control_batch::decode(bytes) {
                Ok(m) => {
                    let commit = m.kind == crate::control_batch::MarkerKind::Commit;
                    self.end_transaction(index, header.producer_id, commit);
                }
                Err(e) => {
                    warn!(partition = index, offset = header.base_offset, error = %e, "unreadable transaction marker skipped")
                }
            }
            return 0;
        }
        let records = match crate::internal_batch::decode(bytes) {
            Ok(records) => records,
            Err(e) => {
                warn!(partition = index, offset = header.base_offset, error = %e, "undecodable {OFFSETS_TOPIC} batch skipped");
                return 0;
            }
        };
        let producer = header.is_transactional().then_some(header.producer_id);
        let mut n = 0;
        for (key, value, offset) in records {
            n += 1;
            let Some(key) = key else { continue };
            match RecordKey::decode(key) {
                Ok(key) => self.apply(key, value, now, producer),
                Err(e) => {
                    warn!(partition = index, offset, error = %e, "skipping a {OFFSETS_TOPIC} record")
                }
            }
        }
        n
    }

    /// Applies one record read back; `producer`: the record was committed inside that
    /// producer's transaction, which a later marker decides.
    pub(super) fn apply(
        &self,
        key: RecordKey,
        value: Option<Bytes>,
        now: Instant,
        producer: Option<i64>,
    ) {
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
                    let into = match producer {
                        Some(id) => g.pending_txn.entry(id).or_default(),
                        None => &mut g.offsets,
                    };
                    into.insert((topic, partition), state::Committed { value });
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

impl Keys for Coordinator {
    const WHAT: &'static str = "groups";
    const TOPIC: &'static str = OFFSETS_TOPIC;

    fn unload(&self, index: i32) {
        self.unload_partition(index);
    }

    fn replay(&self, p: &Partition) -> std::result::Result<u64, String> {
        self.replay_partition(p, Instant::now())
            .map_err(|e| e.to_string())
    }
}
