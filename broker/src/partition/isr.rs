//! The table of in-sync replicas (Kafka's ISR) of the groups this node leads: the
//! cluster's sampler fills it, the partitions' acks=all appends check
//! `min.insync.replicas` against it, Metadata and the metrics read it.

use std::collections::HashMap;
use std::sync::RwLock;

/// The in-sync replicas of a group this node leads, and how many replicas it has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Isr {
    pub in_sync: Vec<u64>,
    pub replicas: usize,
    /// Entries each follower is missing, as of the last sample.
    pub lag: Vec<(u64, u64)>,
}

/// The latest sample of the in-sync replicas of every group this node leads. Shared
/// by the partitions ([`super::Shared`]), whose acks=all append checks
/// `min.insync.replicas` against it; empty on a node that leads nothing.
#[derive(Debug, Default)]
pub struct InSyncReplicas {
    table: RwLock<HashMap<u64, Isr>>,
}

impl InSyncReplicas {
    /// The in-sync replicas of `group` when this node leads it.
    pub fn get(&self, group: u64) -> Option<Isr> {
        self.read().get(&group).cloned()
    }

    /// How many replicas of `group` are in sync, when this node leads it (no copy: the
    /// produce path asks this for acks=all).
    pub fn count(&self, group: u64) -> Option<usize> {
        self.read().get(&group).map(|i| i.in_sync.len())
    }

    /// Groups this node leads with fewer in-sync replicas than replicas.
    pub fn under_replicated(&self) -> usize {
        self.read()
            .values()
            .filter(|i| i.in_sync.len() < i.replicas)
            .count()
    }

    pub(crate) fn replace(&self, table: HashMap<u64, Isr>) {
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = table;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u64, Isr>> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl super::Partition {
    /// Refuses an append when fewer than `min_in_sync` replicas are in sync, as Kafka
    /// checks before the append (duplicates included). A leader that has not sampled
    /// its group yet (for up to one ISR sample interval after it was elected) counts
    /// what its first sample will: itself and every voter whose node is heard from
    /// (refusing on itself alone would turn every failover into a burst of
    /// NOT_ENOUGH_REPLICAS).
    pub(super) fn check_in_sync(
        &self,
        h: &super::Hosted,
        min_in_sync: u32,
    ) -> super::PartitionResult<()> {
        if min_in_sync <= 1 || !h.view.borrow().is_leader {
            return Ok(());
        }
        let in_sync = self.shared.in_sync.count(h.group).unwrap_or_else(|| {
            let me = h.view.borrow().leader;
            let live = h.voters.iter().filter(|&&v| v != me && h.node.is_alive(v));
            1 + live.count()
        });
        if (in_sync as u64) < u64::from(min_in_sync) {
            return Err(super::PartitionError::NotEnoughReplicas {
                in_sync,
                required: min_in_sync,
            });
        }
        Ok(())
    }
}
