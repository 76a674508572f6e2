//! Ending a transaction in its partitions: a COMMIT or ABORT marker written through
//! each partition's leader and committed, then the transaction's completion made
//! durable. A marker written twice (a retry after a partial failure) ends nothing the
//! second time, and consumers skip both.

use std::sync::Arc;

use tracing::{debug, warn};

use super::records::TxnStatus;
use super::{state, Claim, TxnCoordinator, TxnError};
use crate::control_batch::{Marker, MarkerKind};
use crate::internal_batch::now_ms;
use crate::partition::Partition;
use crate::topics::{is_internal, Topics, OFFSETS_TOPIC};
use crate::Broker;

/// Refuses a partition this coordinator could not end a transaction in: unknown,
/// internal (unless `internal_ok`: a group's offsets partition), or led by another
/// broker.
pub(super) fn check_local(
    topics: &Topics,
    topic: &str,
    index: i32,
    internal_ok: bool,
) -> Result<(), TxnError> {
    let unknown = || TxnError::UnknownPartition {
        topic: topic.to_string(),
        partition: index,
    };
    if is_internal(topic) && !internal_ok {
        return Err(unknown());
    }
    let t = topics.get(topic).ok_or_else(unknown)?;
    let p = t.partition(index).ok_or_else(unknown)?;
    if !p.view().is_some_and(|v| v.is_leader) {
        return Err(TxnError::RemotePartition {
            topic: topic.to_string(),
            partition: index,
        });
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

async fn finish(broker: &Broker, id: &str, claim: &Claim) -> Result<(), TxnError> {
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
    for (topic, index) in &v.partitions {
        let Some(p) = partition(&broker.topics, topic, *index) else {
            // Deleted since: nothing of the transaction is left there to end.
            debug!(transactional_id = id, topic = %topic, partition = index, "no marker for a deleted partition");
            continue;
        };
        p.append_marker(v.producer_id, v.producer_epoch, marker)
            .await?;
        if topic == OFFSETS_TOPIC {
            // The group coordinator of that partition settles the offsets the
            // transaction committed there.
            let commit = kind == MarkerKind::Commit;
            broker.groups.end_transaction(*index, v.producer_id, commit);
        }
    }
    let Some(done) = state::complete(&v, now_ms()) else {
        return Ok(());
    };
    TxnCoordinator::persist(&claim.partition, id, Some(&done)).await?;
    claim.entry.set(Some(done));
    Ok(())
}

fn partition(topics: &Topics, topic: &str, index: i32) -> Option<Arc<Partition>> {
    topics.get(topic)?.partition(index).cloned()
}
