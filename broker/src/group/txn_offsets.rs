//! Offsets committed inside a transaction (TxnOffsetCommit through
//! [`Coordinator::commit`] with a producer): written to the group's `__consumer_offsets`
//! partition as a transactional batch of the producer and kept pending in the group.
//! The transaction's marker on that partition decides them: COMMIT makes them the
//! group's committed offsets, ABORT drops them. Replaying the partition does the same
//! with the batches and markers it reads. Until then OffsetFetch with `require_stable`
//! answers UNSTABLE_OFFSET_COMMIT for those partitions.

use std::collections::HashSet;

use super::{lock, records, Coordinator, TopicPartition};

impl Coordinator {
    /// A transaction of `producer_id` ended on `__consumer_offsets` partition `index`
    /// (its marker is written there): its pending offsets become the groups' on
    /// `commit`, and are dropped otherwise.
    pub fn end_transaction(&self, index: i32, producer_id: i64, commit: bool) {
        let n = self.partitions().len() as i32;
        let groups: Vec<_> = self
            .groups()
            .iter()
            .filter(|(id, _)| records::partition_for(id, n) == index)
            .map(|(_, g)| g.clone())
            .collect();
        for group in groups {
            let mut g = lock(&group);
            let Some(pending) = g.pending_txn.remove(&producer_id) else {
                continue;
            };
            if commit {
                g.offsets.extend(pending);
            }
        }
    }

    /// The partitions of `group_id` with offsets waiting for a transaction's outcome.
    pub fn unstable_offsets(&self, group_id: &str) -> HashSet<TopicPartition> {
        let Some(group) = self.get(group_id) else {
            return HashSet::new();
        };
        let g = lock(&group);
        g.pending_txn
            .values()
            .flat_map(|p| p.keys().cloned())
            .collect()
    }
}
