//! Committed offsets: OffsetCommit (each entry judged, the accepted ones written
//! together and answered once durable), OffsetFetch, OffsetDelete, and the expiry of an
//! empty group's offsets after `offsets.retention.minutes`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tracing::{info, warn};

use super::records::{OffsetValue, RecordKey};
use super::state;
use super::state::{Group, GroupState};
use super::{
    lock, not_found, wall_ms, Coordinator, FetchedOffsets, GroupError, TopicPartition,
    COMMIT_TIMEOUT,
};
use crate::error::Result;
use crate::partition::{Partition, PartitionResult};
use crate::topics::Topics;

/// What OffsetCommit did with each entry of a request the group accepted (see
/// [`Coordinator::commit`]): `refused[i]` says why entry `i` was not stored; the others
/// were written together, with `written`'s outcome.
#[derive(Debug)]
pub struct CommitOutcome {
    pub refused: Vec<Option<GroupError>>,
    pub written: Result<(), GroupError>,
}

/// Who commits: the member (KIP-447 fences a stale one inside a transaction too) and,
/// for TxnOffsetCommit, the transaction's producer.
#[derive(Debug, Clone)]
pub struct Committer {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    /// `(producer id, epoch)` of a TxnOffsetCommit: the offsets wait for the
    /// transaction's marker.
    pub producer: Option<(i64, i16)>,
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

impl Coordinator {
    /// OffsetCommit and TxnOffsetCommit, answered once the offsets are durable: `Err`
    /// refuses every entry; otherwise each entry was refused on its own or written with
    /// the others. Offsets of a transaction are the group's only once its COMMIT marker
    /// is written ([`Coordinator::end_transaction`]).
    pub async fn commit(
        &self,
        group_id: &str,
        who: &Committer,
        entries: &[CommitEntry],
        topics: &Topics,
    ) -> Result<CommitOutcome, GroupError> {
        let generation = who.generation;
        self.check_group_id(group_id)?;
        self.serves(group_id)?;
        let partition = self
            .partition_of(group_id)
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        let refused: Vec<Option<GroupError>> = entries
            .iter()
            .map(|e| self.refuse_entry(e, topics))
            .collect();
        let valid: Vec<usize> = (0..entries.len())
            .filter(|&i| refused[i].is_none())
            .collect();
        let group = match self.get(group_id) {
            Some(g) => g,
            // Nothing to store: no group is made for it.
            None if valid.is_empty() => {
                return Ok(CommitOutcome {
                    refused,
                    written: Ok(()),
                })
            }
            None if generation < 0 => self.get_or_create(group_id),
            None => {
                return Err(GroupError::IllegalGeneration {
                    given: generation,
                    current: 0,
                })
            }
        };
        let written = {
            let mut g = lock(&group);
            // Without a generation and member, a transaction's commit comes from a
            // client older than KIP-447: Kafka does not check it.
            let unchecked = who.producer.is_some() && generation < 0 && who.member_id.is_empty();
            if !unchecked {
                let instance_id = who.instance_id.as_deref();
                g.check_commit(&who.member_id, instance_id, generation, Instant::now())?;
            }
            if valid.is_empty() {
                return Ok(CommitOutcome {
                    refused,
                    written: Ok(()),
                });
            }
            Self::write_offsets(&mut g, &partition, group_id, entries, &valid, who.producer)
        };
        let outcome = match written {
            Ok(last) => partition.wait_durable(last, COMMIT_TIMEOUT).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &outcome {
            warn!(group = group_id, error = %e, "committing offsets failed");
        }
        Ok(CommitOutcome {
            refused,
            written: outcome.map_err(GroupError::from),
        })
    }

    /// Appends the `valid` entries' offsets to the group's partition and, once
    /// appended, records them as the group's (or as pending in `producer`'s
    /// transaction); the last offset written.
    pub(super) fn write_offsets(
        g: &mut Group,
        partition: &Partition,
        group_id: &str,
        entries: &[CommitEntry],
        valid: &[usize],
        producer: Option<(i64, i16)>,
    ) -> PartitionResult<u64> {
        let now = wall_ms();
        let values: Vec<(usize, OffsetValue)> = valid
            .iter()
            .map(|&i| {
                let e = &entries[i];
                (
                    i,
                    OffsetValue {
                        offset: e.offset,
                        leader_epoch: e.leader_epoch,
                        metadata: e.metadata.clone().unwrap_or_default(),
                        commit_timestamp_ms: now,
                    },
                )
            })
            .collect();
        let records = values
            .iter()
            .map(|(i, v)| {
                let e = &entries[*i];
                let key = RecordKey::Offset {
                    group: group_id.to_string(),
                    topic: e.topic.clone(),
                    partition: e.partition,
                };
                (key.encode(), Some(v.encode()))
            })
            .collect();
        let written = Self::append(partition, records, producer);
        if written.is_ok() {
            let into = match producer {
                Some((id, _)) => g.pending_txn.entry(id).or_default(),
                None => &mut g.offsets,
            };
            for (i, value) in values {
                let e = &entries[i];
                into.insert((e.topic.clone(), e.partition), state::Committed { value });
            }
        }
        written
    }

    /// Why one OffsetCommit entry cannot be stored, if it cannot.
    pub(super) fn refuse_entry(&self, e: &CommitEntry, topics: &Topics) -> Option<GroupError> {
        let exists = topics
            .get(&e.topic)
            .is_some_and(|t| t.partition(e.partition).is_some());
        let bytes = e.metadata.as_ref().map_or(0, String::len);
        if !exists {
            Some(GroupError::UnknownTopicOrPartition {
                topic: e.topic.clone(),
                partition: e.partition,
            })
        } else if bytes > self.config.offset_metadata_max_bytes {
            Some(GroupError::OffsetMetadataTooLarge {
                topic: e.topic.clone(),
                partition: e.partition,
                bytes,
                max: self.config.offset_metadata_max_bytes,
            })
        } else {
            None
        }
    }

    /// OffsetFetch: committed offsets of the partitions asked for (all when `None`);
    /// `None` for a partition without one.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> FetchedOffsets {
        let group = self.get(group_id);
        let g = group.as_ref().map(|g| lock(g));
        let offsets = g.as_ref().map(|g| &g.offsets);
        match wanted {
            Some(wanted) => wanted
                .into_iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .into_iter()
                        .map(|p| {
                            let v = offsets
                                .and_then(|o| o.get(&(topic.clone(), p)))
                                .map(|c| c.value.clone());
                            (p, v)
                        })
                        .collect();
                    (topic, found)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<OffsetValue>)>> =
                    BTreeMap::new();
                for ((topic, p), c) in offsets.into_iter().flatten() {
                    by_topic
                        .entry(topic.clone())
                        .or_default()
                        .push((*p, Some(c.value.clone())));
                }
                by_topic
                    .into_iter()
                    .map(|(t, mut ps)| {
                        ps.sort_by_key(|(p, _)| *p);
                        (t, ps)
                    })
                    .collect()
            }
        }
    }

    /// OffsetDelete: removes committed offsets the group no longer consumes. A group-level
    /// error, or one outcome per partition.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let (group, partition) = self.existing(group_id)?;
        let mut outcomes: Vec<Result<(), GroupError>> = partitions.iter().map(|_| Ok(())).collect();
        let written = {
            let mut g = lock(&group);
            if g.state == GroupState::Dead {
                return Err(not_found(group_id));
            }
            let subscribed = if g.members.is_empty() {
                Vec::new()
            } else {
                match g.subscribed_topics() {
                    Some(t) => t,
                    None => {
                        return Err(GroupError::NonEmptyGroup {
                            group: group_id.to_string(),
                        })
                    }
                }
            };
            let mut tombstones = Vec::new();
            let mut removed = Vec::new();
            for (i, (topic, p)) in partitions.iter().enumerate() {
                if subscribed.contains(topic) {
                    outcomes[i] = Err(GroupError::SubscribedToTopic {
                        topic: topic.clone(),
                    });
                } else if g.offsets.contains_key(&(topic.clone(), *p)) {
                    let key = RecordKey::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: *p,
                    };
                    tombstones.push((key.encode(), None));
                    removed.push((topic.clone(), *p));
                }
            }
            if tombstones.is_empty() {
                return Ok(outcomes);
            }
            let written = Self::append(&partition, tombstones, None);
            if written.is_ok() {
                for k in removed {
                    g.offsets.remove(&k);
                }
            }
            written
        };
        let outcome = match written {
            Ok(last) => partition.wait_durable(last, COMMIT_TIMEOUT).await,
            Err(e) => Err(e),
        };
        outcome.map_err(GroupError::from)?;
        Ok(outcomes)
    }

    /// Removes offsets of empty groups older than `offsets.retention.minutes` (and the
    /// group when nothing is left). Returns how many offsets expired.
    pub fn expire_offsets(&self, now_wall_ms: i64) -> usize {
        let retention_ms = self.config.offsets_retention.as_millis() as i64;
        let groups: Vec<Arc<Mutex<Group>>> = self.groups().values().cloned().collect();
        let mut expired_total = 0;
        for group in groups {
            let mut g = lock(&group);
            if g.state != GroupState::Empty {
                continue;
            }
            let since = g.state_since_ms;
            let expired: Vec<TopicPartition> = g
                .offsets
                .iter()
                .filter(|(_, c)| {
                    now_wall_ms.saturating_sub(c.value.commit_timestamp_ms.max(since))
                        >= retention_ms
                })
                .map(|(k, _)| k.clone())
                .collect();
            let drop_group = expired.len() == g.offsets.len();
            if expired.is_empty() && !drop_group {
                continue;
            }
            let Some(partition) = self.partition_of(&g.id) else {
                continue;
            };
            let mut tombstones: Vec<(Bytes, Option<Bytes>)> = expired
                .iter()
                .map(|(topic, p)| {
                    let key = RecordKey::Offset {
                        group: g.id.clone(),
                        topic: topic.clone(),
                        partition: *p,
                    };
                    (key.encode(), None)
                })
                .collect();
            if drop_group {
                tombstones.push((
                    RecordKey::Group {
                        group: g.id.clone(),
                    }
                    .encode(),
                    None,
                ));
            }
            match Self::append(&partition, tombstones, None) {
                Ok(_) => {
                    expired_total += expired.len();
                    for k in &expired {
                        g.offsets.remove(k);
                    }
                    if drop_group {
                        g.state = GroupState::Dead;
                        let id = g.id.clone();
                        drop(g);
                        self.groups().remove(&id);
                        info!(group = %id, "empty group removed after offsets.retention.minutes");
                    }
                }
                Err(e) => warn!(group = %g.id, error = %e, "expiring offsets failed"),
            }
        }
        expired_total
    }
}
