//! Ending a transaction in its partitions: a COMMIT or ABORT marker written through
//! each partition's leader (here, or another broker through a WriteTxnMarkers call,
//! [`super::remote`]) and committed, all partitions at once, then the transaction's
//! completion made durable. A marker written twice (a retry after a partial failure)
//! ends nothing the second time, and consumers skip both.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::records::TxnStatus;
use super::{remote, state, Claim, TxnCoordinator, TxnError};
use crate::control_batch::{Marker, MarkerKind};
use crate::internal_batch::now_ms;
use crate::partition::MarkerFrom;
use crate::topics::{is_internal, Topics, OFFSETS_TOPIC};
use crate::Broker;

/// Refuses a partition a transaction cannot include: unknown, or internal (unless
/// `internal_ok`: a group's offsets partition).
pub(super) fn check_partition(
    topics: &Topics,
    topic: &str,
    index: i32,
    internal_ok: bool,
) -> Result<(), TxnError> {
    let known = topics
        .get(topic)
        .is_some_and(|t| t.partition(index).is_some());
    if !known || (is_internal(topic) && !internal_ok) {
        return Err(TxnError::UnknownPartition {
            topic: topic.to_string(),
            partition: index,
        });
    }
    Ok(())
}

/// Writes `marker` of producer `(producer_id, epoch)` on `topic`-`index`, which this
/// broker must lead, and waits for its commit; a deleted partition needs none. On a
/// `__consumer_offsets` partition the group coordinator then settles the offsets the
/// transaction committed there.
pub(super) async fn write_here(
    broker: &Broker,
    topic: &str,
    index: i32,
    (producer_id, epoch): (i64, i16),
    marker: Marker,
    from: MarkerFrom,
) -> Result<(), TxnError> {
    let Some(p) = broker
        .topics
        .get(topic)
        .and_then(|t| t.partition(index).cloned())
    else {
        if from == MarkerFrom::Admin {
            return Err(TxnError::UnknownPartition {
                topic: topic.to_string(),
                partition: index,
            });
        }
        // Deleted since: nothing of the transaction is left there to end.
        debug!(
            topic,
            partition = index,
            "no marker for a deleted partition"
        );
        return Ok(());
    };
    p.append_marker(producer_id, epoch, marker, from)
        .await
        .map_err(|e| match e {
            crate::partition::PartitionError::NotLeader => TxnError::NotLeader {
                topic: topic.to_string(),
                partition: index,
            },
            e => TxnError::from(e),
        })?;
    if topic == OFFSETS_TOPIC {
        let commit = marker.kind == MarkerKind::Commit;
        broker.groups.end_transaction(index, producer_id, commit);
    }
    Ok(())
}

/// Writes the markers of the id's prepared transaction and completes it, in a task of
/// its own that keeps the id's change lock (held by `claim`) until done.
pub(super) fn finish_later(broker: &Arc<Broker>, id: &str, claim: Claim) {
    let broker = broker.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        if let Err(e) = finish(&broker, &id, &claim).await {
            warn!(transactional_id = %id, error = %e, "ending the transaction in its partitions failed; will retry");
        }
    });
}

async fn finish(broker: &Arc<Broker>, id: &str, claim: &Claim) -> Result<(), TxnError> {
    let Some(v) = claim.entry.get() else {
        return Ok(());
    };
    let kind = match v.status {
        TxnStatus::PrepareCommit => MarkerKind::Commit,
        TxnStatus::PrepareAbort => MarkerKind::Abort,
        _ => return Ok(()),
    };
    let marker = Marker {
        kind,
        coordinator_epoch: claim.coordinator_epoch,
    };
    let producer = (v.producer_id, v.producer_epoch);
    let mut writes = JoinSet::new();
    for (leader, partitions) in by_leader(broker, &v.partitions)? {
        if leader == broker.cluster.node_id {
            for (topic, index) in partitions {
                let broker = broker.clone();
                writes.spawn(async move {
                    write_here(
                        &broker,
                        &topic,
                        index,
                        producer,
                        marker,
                        MarkerFrom::Coordinator,
                    )
                    .await
                });
            }
        } else {
            let broker = broker.clone();
            writes.spawn(async move {
                remote::write_markers(&broker, leader, producer, marker, &partitions).await
            });
        }
    }
    while let Some(written) = writes.join_next().await {
        written.map_err(|e| TxnError::Peer(format!("a marker task failed: {e}")))??;
    }
    let Some(done) = state::complete(&v, now_ms()) else {
        return Ok(());
    };
    TxnCoordinator::persist(&claim.partition, id, Some(&done)).await?;
    claim.entry.set(Some(done));
    Ok(())
}

/// The transaction's partitions grouped by the node that leads each now; a partition
/// with no known leader (an election under way) fails this attempt.
fn by_leader(
    broker: &Broker,
    partitions: &std::collections::BTreeSet<(String, i32)>,
) -> Result<BTreeMap<u64, Vec<(String, i32)>>, TxnError> {
    let mut out: BTreeMap<u64, Vec<(String, i32)>> = BTreeMap::new();
    for (topic, index) in partitions {
        let Some(p) = broker
            .topics
            .get(topic)
            .and_then(|t| t.partition(*index).cloned())
        else {
            continue;
        };
        let leader = broker
            .cluster
            .leader_of(p.group(), p.view())
            .ok_or_else(|| TxnError::Peer(format!("{topic}-{index} has no leader now")))?;
        out.entry(leader).or_default().push((topic.clone(), *index));
    }
    Ok(out)
}
