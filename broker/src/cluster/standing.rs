//! This node's standing with the cluster, kept in its data directory's identity
//! ([`crate::identity`]).
//!
//! A node whose directory is new starts **joining**: its controller replica does not
//! vote until it caught up (fresh elections among empty directories excepted, so a new
//! cluster can form). As it applies the controller's records it opens the partition
//! replicas placed on it; the first time it does, it looks for itself among the
//! registered brokers. Registered with another directory incarnation means this id
//! lost its directory: the standing becomes **rejoining** (durably, before the replica
//! opens) and every replica it opens from then on waits, without voting, until it holds
//! what its group committed. Once the controller replica caught up and every committed
//! record is applied, the node is a **member**; only then does it register its new
//! incarnation, so the old one stays visible while replicas are still being opened
//! (also in a checkpoint this node may receive instead of the records).
//!
//! The identity also pins the cluster: a directory that knew another controller's
//! cluster id fails the node rather than mixing two clusters' data.

use tracing::{info, warn};

use super::{cluster_err, Cluster};
use crate::error::Result;
use crate::identity::Standing;

impl Cluster {
    /// Whether the partition replicas this node opens now must rejoin (not vote until
    /// caught up); records a lost directory's standing first when this is when it shows.
    pub fn replicas_rejoin(&self) -> Result<bool> {
        let mut identity = self.identity.lock().unwrap_or_else(|p| p.into_inner());
        match identity.identity().standing {
            Standing::Rejoining => Ok(true),
            Standing::Joining => {
                let lost = self
                    .state()
                    .brokers
                    .get(&self.node_id)
                    .is_some_and(|b| b.incarnation != self.incarnation);
                if lost {
                    let cluster_id = identity.identity().cluster_id.clone();
                    identity.update(Standing::Rejoining, cluster_id)?;
                    warn!(
                        node = self.node_id,
                        "the controller knows this node from another data directory: the \
                         old one was lost, so its replicas rejoin without voting until caught up"
                    );
                }
                Ok(lost)
            }
            Standing::Member | Standing::Single => Ok(false),
        }
    }

    /// This node's standing now.
    pub fn standing(&self) -> Standing {
        self.identity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .identity()
            .standing
    }

    /// Whether a joining or rejoining node has caught up with the controller: its
    /// replica votes again, a leader is known, and every committed record is applied.
    fn caught_up_with_controller(&self) -> bool {
        let view = *self.controller.borrow();
        !view.rejoining && view.leader != 0 && *self.applied.borrow() >= view.committed_offset
    }

    /// Keeps the identity in step with the applied metadata until shutdown: learns the
    /// cluster id, and ends a join. Fails when the controller's cluster id is not the one
    /// this directory belongs to.
    pub async fn track_standing(
        self: std::sync::Arc<Self>,
        mut shutdown: crate::shutdown::Shutdown,
    ) -> Result<()> {
        let mut applied = self.applied.subscribe();
        let mut controller = self.controller.clone();
        loop {
            self.update_standing()?;
            tokio::select! {
                _ = applied.changed() => {}
                _ = controller.changed() => {}
                _ = shutdown.wait() => return Ok(()),
            }
        }
    }

    fn update_standing(&self) -> Result<()> {
        let theirs = self.state().cluster_id.clone();
        let mut identity = self.identity.lock().unwrap_or_else(|p| p.into_inner());
        let now = identity.identity().clone();
        if let (Some(mine), Some(theirs)) = (&now.cluster_id, &theirs) {
            if mine != theirs {
                return Err(cluster_err(format!(
                    "this data directory belongs to cluster {mine}, but the controller's \
                     cluster is {theirs}: the node was pointed at another cluster's peers"
                )));
            }
        }
        let joining = matches!(now.standing, Standing::Joining | Standing::Rejoining);
        let standing = if joining && self.caught_up_with_controller() {
            info!(node = self.node_id, was = ?now.standing, "caught up with the controller: a member");
            Standing::Member
        } else {
            now.standing
        };
        identity.update(standing, theirs.or(now.cluster_id))
    }
}
