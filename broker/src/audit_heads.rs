//! Logged tree heads of audit topics, and the alarm when a replica's tree disagrees with
//! one.
//!
//! Every [`AUDIT_TICK`], for each audit partition it leads, the broker's task signs the
//! committed tree head (with `audit.signing.key.file`'s key; unsigned without one) and
//! logs it through Raft as a non-data entry, when the tree grew since the last logged
//! head and `audit.head.interval.ms` passed since that head's timestamp. `POST
//! /audit/{topic}/{partition}/log-head` logs one at once. Each replica checks a head
//! against its own tree as it appends it (`log_store`'s `audit_heads.rs`), and again
//! over every logged head when it opens the log.
//!
//! A replica whose tree disagrees with a logged head holds batches that are not the ones
//! replicated (a disk edited behind Raft's back). It is taken out of service: it answers
//! KAFKA_STORAGE_ERROR (and 503 on the admin port), hands its leadership over when it
//! leads, `strata_audit_diverged_partitions` counts it, and `/health` reports the broker
//! degraded, naming the partition and the head. It goes on replicating, so it keeps the
//! entries it may be asked for; the operator replaces its data (remove the partition's
//! directory and restart: it rejoins and is sent a snapshot).

use std::sync::Arc;
use std::time::Duration;

use log_store::merkle::{to_hex as hex, LoggedHead, TreeHead};
use log_store::AuditHead;
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tracing::warn;

use crate::partition::Partition;
use crate::shutdown::Shutdown;
use crate::Broker;

/// How often audit partitions are looked at.
pub const AUDIT_TICK: Duration = Duration::from_millis(100);

/// The `/health` condition of a divergence.
const DIVERGED: &str = "audit tree divergence";

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `head` of `topic`/`partition`, stamped `timestamp_ms` and signed with the broker's
/// key when it has one.
pub fn signed(broker: &Broker, p: &Partition, head: &AuditHead, timestamp_ms: i64) -> LoggedHead {
    let head = TreeHead {
        topic: p.topic().to_string(),
        partition: p.index(),
        tree_size: head.size,
        root: head.root,
        last_offset: head.last_offset,
        timestamp_ms,
    };
    let signature = broker.audit_signer.as_ref().map(|s| s.sign(&head));
    LoggedHead { head, signature }
}

/// A head as the admin port shows it (hashes and signature in hex).
pub fn head_json(logged: &LoggedHead) -> Value {
    let h = &logged.head;
    json!({
        "topic": h.topic, "partition": h.partition, "tree_size": h.tree_size,
        "root_hash": hex(&h.root), "last_offset": h.last_offset,
        "timestamp_ms": h.timestamp_ms,
        "signature": logged.signature.as_ref().map(|s| hex(s)),
    })
}

/// Looks at every audit partition each [`AUDIT_TICK`] until shutdown.
pub async fn run(broker: Arc<Broker>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(AUDIT_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        sweep(&broker).await;
    }
}

/// One look: divergences reported (and their leaderships handed over), due heads logged.
async fn sweep(broker: &Arc<Broker>) {
    let now = now_ms();
    let mut diverged = Vec::new();
    let mut logging = JoinSet::new();
    for topic in broker.topics.all().into_iter().filter(|t| t.config.audit) {
        for p in &topic.partitions {
            let leads = p.view().is_some_and(|v| v.is_leader);
            if let Some(d) = p.refresh_audit_divergence() {
                diverged.push(format!("{}/{}: {d}", p.topic(), p.index()));
                if leads {
                    broker.cluster.hand_over(p.group()).await;
                }
                continue;
            }
            if !leads {
                continue;
            }
            if let Some(head) = due_head(p, topic.config.audit_head_interval_ms, now) {
                let logged = signed(broker, p, &head, now);
                let (b, p) = (broker.clone(), p.clone());
                logging.spawn(async move { log_head(&b, &p, &logged).await });
            }
        }
    }
    report_divergences(broker, diverged);
    while logging.join_next().await.is_some() {}
}

/// The committed head to log now, if the tree grew and the interval passed.
fn due_head(p: &Partition, interval_ms: i64, now: i64) -> Option<AuditHead> {
    match p.audit_head_to_log() {
        Ok((Some(head), last)) => last
            .is_none_or(|m| now.saturating_sub(m.timestamp_ms) >= interval_ms)
            .then_some(head),
        Ok((None, _)) => None,
        Err(e) => {
            warn!(topic = p.topic(), partition = p.index(), error = %e, "audit head not computed");
            None
        }
    }
}

/// Logs `logged` through `p`'s Raft group, counting the outcome.
pub async fn log_head(broker: &Broker, p: &Partition, logged: &LoggedHead) -> bool {
    match p.log_audit_head(logged).await {
        Ok(()) => {
            broker.metrics.audit_heads_logged.inc();
            true
        }
        Err(e) => {
            broker.metrics.audit_head_failures.inc();
            warn!(topic = p.topic(), partition = p.index(), error = %e, "audit head not logged");
            false
        }
    }
}

fn report_divergences(broker: &Broker, diverged: Vec<String>) {
    let m = &broker.metrics;
    m.audit_diverged_partitions.set(diverged.len() as i64);
    let reason = (!diverged.is_empty()).then(|| {
        format!(
            "audit tree divergence, out of service: {}",
            diverged.join("; ")
        )
    });
    m.health.set_degraded(DIVERGED, reason);
}
