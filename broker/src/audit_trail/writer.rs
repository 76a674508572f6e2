//! Writes the audit trail's events to `__strata_audit_log`: one task per broker drains
//! the buffer into batches (one JSON record per event) and appends each to the topic's
//! partition 0 on its leader: here, or on another broker through a call between brokers
//! (`calls`, authenticated peers only), answered once it committed there. The topic is created on first use (one partition, `audit.enabled=true`,
//! replication factor `audit.log.replication.factor` or up to 3). A batch that cannot be
//! written after [`ATTEMPTS`] tries is counted `failed`; while it is retried, new events
//! wait in the buffer (and past it are dropped and counted).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{count, Event};
use crate::calls::{call, done_or_why, read_done_or_why, AUDIT_EVENTS};
use crate::shutdown::Shutdown;
pub use crate::topics::AUDIT_LOG_TOPIC;
use crate::Broker;

/// Events per batch, at most.
const MAX_BATCH_EVENTS: usize = 500;
/// Tries of one batch before its events count as failed.
const ATTEMPTS: u32 = 8;
/// How long a batch waits for its commit.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Drains the buffer until shutdown (or until every sender is gone).
pub async fn run(broker: Arc<Broker>, mut events: mpsc::Receiver<Event>, mut shutdown: Shutdown) {
    loop {
        let first = tokio::select! {
            e = events.recv() => match e {
                Some(e) => e,
                None => return,
            },
            _ = shutdown.wait() => return,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_EVENTS {
            match events.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        write(&broker, &batch, &mut shutdown).await;
    }
}

/// Writes `events` as one batch, retrying with a growing pause.
async fn write(broker: &Broker, events: &[Event], shutdown: &mut Shutdown) {
    let n = events.len() as u64;
    let records = events
        .iter()
        .map(|e| {
            (
                None,
                Some(Bytes::from(e.to_json(broker.node_id).to_string())),
            )
        })
        .collect();
    let batch = match crate::internal_batch::encode(records, crate::internal_batch::now_ms()) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            warn!(error = %e, "audit events not encoded");
            return count(&broker.metrics, "failed", n);
        }
    };
    let mut pause = Duration::from_millis(50);
    for attempt in 1..=ATTEMPTS {
        match append(broker, batch.clone()).await {
            Ok(()) => return count(&broker.metrics, "written", n),
            Err(e) => debug!(attempt, error = %e, "audit events not written yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.wait() => break,
        }
        pause = (pause * 2).min(Duration::from_secs(2));
    }
    warn!(
        events = n,
        "audit events could not be written to {AUDIT_LOG_TOPIC}"
    );
    count(&broker.metrics, "failed", n);
}

/// Appends `batch` on the audit topic's leader, creating the topic first if need be.
async fn append(broker: &Broker, batch: Bytes) -> Result<(), String> {
    let topic = match broker.topics.get(AUDIT_LOG_TOPIC) {
        Some(t) => t,
        None => create(broker).await?,
    };
    let p = topic
        .partition(0)
        .ok_or("the audit topic has no partition 0")?;
    let view = p.view();
    let leader = broker
        .cluster
        .leader_of(p.group(), view)
        .ok_or("the audit topic has no leader yet")?;
    if view.is_some_and(|v| v.is_leader) {
        return append_here(broker, batch).await;
    }
    let payload = Bytes::from([&[AUDIT_EVENTS][..], &batch[..]].concat());
    let answer = call(broker, leader, payload, COMMIT_TIMEOUT).await?;
    read_done_or_why(leader, &answer)
}

/// Answers a peer's [`AUDIT_EVENTS`] call (its body: the batch).
pub async fn answer_events_call(broker: &Broker, batch: Bytes) -> Bytes {
    done_or_why(append_here(broker, batch).await)
}

async fn create(broker: &Broker) -> Result<Arc<crate::topics::Topic>, String> {
    let configured = broker.audit_trail.config().replication_factor;
    let brokers = broker.cluster.state().brokers.len().max(1);
    let factor = if configured > 0 {
        configured
    } else {
        brokers.min(3) as i16
    };
    let overrides = BTreeMap::from([("audit.enabled".to_string(), "true".to_string())]);
    let created = broker
        .cluster
        .create_topic(&broker.topics, AUDIT_LOG_TOPIC, 1, factor, overrides)
        .await;
    match created {
        Ok(t) => Ok(t),
        // Another broker created it meanwhile.
        Err(_) if broker.topics.get(AUDIT_LOG_TOPIC).is_some() => broker
            .topics
            .get(AUDIT_LOG_TOPIC)
            .ok_or_else(|| "the audit topic vanished".to_string()),
        Err(e) => Err(format!("creating {AUDIT_LOG_TOPIC}: {e}")),
    }
}

/// Appends `batch` to the audit topic on this broker, its leader, and returns once it
/// is committed. Refuses a topic that is not an audit topic (a client made one first).
pub async fn append_here(broker: &Broker, batch: Bytes) -> Result<(), String> {
    let topic = broker
        .topics
        .get(AUDIT_LOG_TOPIC)
        .ok_or("no audit topic here yet")?;
    if !topic.config.audit {
        return Err(format!(
            "{AUDIT_LOG_TOPIC} exists but is not an audit topic"
        ));
    }
    let p = topic
        .partition(0)
        .ok_or("the audit topic has no partition 0")?;
    let appended = p.append_own(batch).await.map_err(|e| e.to_string())?;
    p.wait_durable(appended.last_offset, COMMIT_TIMEOUT)
        .await
        .map_err(|e| e.to_string())
}
