//! The in-sync replica sampler: each node samples the groups it leads and keeps, per
//! group, the leader and every voter that held everything committed within
//! `replica.lag.time.max.ms` (the table is [`crate::partition::InSyncReplicas`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Cluster;
use crate::cluster::metadata::CONTROLLER_GROUP;
use crate::partition::{InSyncReplicas, Isr};

/// Per follower of a led group: the last time it held everything committed.
#[derive(Debug, Default)]
struct CaughtUp {
    at: HashMap<(u64, u64), Instant>,
    /// The commit index seen at the previous sample, per group.
    commit: HashMap<u64, u64>,
}

impl Cluster {
    /// Samples the groups this node leads every `interval` and keeps their in-sync
    /// replicas: the leader, and each voter that held everything committed within
    /// the last `lag` (Kafka's `replica.lag.time.max.ms`).
    pub async fn track_isr(
        self: Arc<Self>,
        interval: Duration,
        lag: Duration,
        mut shutdown: crate::shutdown::Shutdown,
    ) {
        let mut caught = CaughtUp::default();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.wait() => return,
            }
            let now = Instant::now();
            let mut isr = HashMap::new();
            for s in self.node.status().await {
                if s.leader != self.node_id || s.group == CONTROLLER_GROUP {
                    continue;
                }
                let floor = caught
                    .commit
                    .insert(s.group, s.committed_index)
                    .unwrap_or(0);
                let mut in_sync = vec![self.node_id];
                for &(follower, matched) in &s.matched {
                    if !s.voters.contains(&follower) {
                        continue;
                    }
                    // A follower counts as caught up only while its node is heard
                    // from: an idle group commits nothing new, so a dead follower
                    // would otherwise keep matching the previous commit for ever.
                    // Seen for the first time (a new leadership), a live follower
                    // gets `lag` to catch up; a dead one is out from the start.
                    let alive = self.node.is_alive(follower);
                    let key = (s.group, follower);
                    if alive && (matched >= floor || !caught.at.contains_key(&key)) {
                        caught.at.insert(key, now);
                    }
                    if caught
                        .at
                        .get(&key)
                        .is_some_and(|at| now.duration_since(*at) <= lag)
                    {
                        in_sync.push(follower);
                    }
                }
                in_sync.sort_unstable();
                let lag = s
                    .matched
                    .iter()
                    .map(|&(f, m)| (f, s.last_index.saturating_sub(m)))
                    .collect();
                isr.insert(
                    s.group,
                    Isr {
                        in_sync,
                        replicas: s.voters.len(),
                        lag,
                    },
                );
            }
            caught.at.retain(|(g, _), _| isr.contains_key(g));
            caught.commit.retain(|g, _| isr.contains_key(g));
            self.isr.replace(isr);
        }
    }

    /// The in-sync replicas of `group` when this node leads it.
    pub fn isr(&self, group: u64) -> Option<Isr> {
        self.isr.get(group)
    }

    /// Groups this node leads with fewer in-sync replicas than replicas.
    pub fn under_replicated(&self) -> usize {
        self.isr.under_replicated()
    }

    /// The table of in-sync replicas this node keeps, for the partitions.
    pub fn in_sync_replicas(&self) -> Arc<InSyncReplicas> {
        Arc::clone(&self.isr)
    }
}
