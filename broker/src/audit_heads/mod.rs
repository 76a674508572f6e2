//! Logged tree heads of audit topics, and the alarm when a replica's tree is not the
//! group's.
//!
//! Every [`AUDIT_TICK`], for each audit partition it leads, the broker's task signs the
//! committed tree head (with `audit.signing.key.file`'s key; unsigned without one) and
//! logs it through Raft as a non-data entry, when the tree grew since the last logged
//! head and `audit.head.interval.ms` passed since that head's timestamp and since this
//! broker last logged one. `POST /audit/{topic}/{partition}/log-head` logs one at once.
//! Each replica checks a head against its own tree as it appends it (`log_store`'s
//! `audit_heads.rs`), and again over every logged head when it opens the log.
//!
//! A disagreement means some replica's batches were changed behind Raft's back: this
//! one's, or those of the leader that signed the head. A replica that disagrees, and a
//! leader after each head it logs, poll the other voters ([`poll`]) and the majority
//! decides. A replica whose tree is not the group's is taken out of service: it answers
//! KAFKA_STORAGE_ERROR (and 503 on the admin port), hands its leadership over when it
//! leads, `strata_audit_diverged_partitions` counts it, and `/health` reports the broker
//! degraded, naming the partition and why, until the broker restarts. It goes on
//! replicating, so the group keeps its quorum; the operator replaces its data. A head
//! the majority disagrees with is counted in `strata_audit_bad_heads_total` and logged.
//!
//! The task never waits on a partition: proposals, polls and leadership transfers run
//! as their own tasks, one at a time per partition.

mod poll;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log_store::merkle::{to_hex as hex, LoggedHead, TreeHead};
use log_store::{AuditDivergence, AuditHead, LogError};
use serde_json::{json, Value};
use tracing::{error, warn};

use crate::partition::{Partition, PartitionError};
use crate::shutdown::Shutdown;
use crate::Broker;
pub use poll::answer as answer_root_call;
use poll::Verdict;

/// How often audit partitions are looked at.
pub const AUDIT_TICK: Duration = Duration::from_millis(100);
/// The `/health` condition of a divergence.
const DIVERGED: &str = "audit tree divergence";

use crate::internal_batch::now_ms;

/// `head` of `p`, stamped `timestamp_ms` and signed with the broker's key when it has
/// one.
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

/// Logs `logged` through `p`'s Raft group, counting the outcome.
pub async fn log_head(
    broker: &Broker,
    p: &Partition,
    logged: &LoggedHead,
) -> Result<(), PartitionError> {
    let logged = p.log_audit_head(logged).await;
    match &logged {
        Ok(()) => {
            broker.metrics.audit_heads_logged.inc();
        }
        Err(e) => {
            broker.metrics.audit_head_failures.inc();
            warn!(topic = p.topic(), partition = p.index(), error = %e, "audit head not logged");
        }
    }
    logged
}

type Key = (String, i32);

/// What the task remembers of one partition.
#[derive(Debug, Default)]
struct Watched {
    /// The Raft index of the last head polled about.
    polled: u64,
    /// When this broker last logged a head.
    logged_at: Option<Instant>,
    /// Why the replica is out of service.
    diverged: Option<String>,
}

/// The task's memory, shared with the work it spawns.
#[derive(Debug, Default)]
struct State {
    watched: HashMap<Key, Watched>,
    /// Partitions with a proposal, poll or transfer under way.
    busy: HashSet<Key>,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Looks at every audit partition each [`AUDIT_TICK`] until shutdown.
pub async fn run(broker: Arc<Broker>, mut shutdown: Shutdown) {
    let state = Shared::default();
    let mut tick = tokio::time::interval(AUDIT_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        sweep(&broker, &state);
    }
}

/// What one partition needs now.
enum Work {
    Poll {
        size: u64,
        root: log_store::merkle::Hash,
        raft_index: u64,
    },
    HandOver,
    Log(LoggedHead),
}

/// One look at every audit partition: starts the work each needs, reports divergences.
fn sweep(broker: &Arc<Broker>, state: &Shared) {
    let now = now_ms();
    let mut seen = HashSet::new();
    for topic in broker.topics.all().into_iter().filter(|t| t.config.audit) {
        let interval = topic.config.audit_head_interval_ms;
        for p in &topic.partitions {
            let key = (p.topic().to_string(), p.index());
            seen.insert(key.clone());
            let work = {
                let mut s = lock(state);
                if s.busy.contains(&key) {
                    continue;
                }
                let w = s.watched.entry(key.clone()).or_default();
                next_work(broker, p, w, interval, now)
            };
            if let Some(work) = work {
                lock(state).busy.insert(key.clone());
                let (b, p, s) = (broker.clone(), p.clone(), state.clone());
                tokio::spawn(async move {
                    perform(&b, &p, &s, &key, work).await;
                    lock(&s).busy.remove(&key);
                });
            }
        }
    }
    let mut s = lock(state);
    s.watched.retain(|k, _| seen.contains(k));
    let diverged: Vec<String> = s
        .watched
        .iter()
        .filter_map(|((t, i), w)| w.diverged.as_ref().map(|why| format!("{t}/{i}: {why}")))
        .collect();
    drop(s);
    report_divergences(broker, diverged);
}

/// The work `p` needs now, if any.
fn next_work(
    broker: &Broker,
    p: &Partition,
    w: &mut Watched,
    interval_ms: i64,
    now: i64,
) -> Option<Work> {
    let leads = p.view().is_some_and(|v| v.is_leader);
    if w.diverged.is_some() {
        return leads.then_some(Work::HandOver);
    }
    let new = |d: &AuditDivergence| d.raft_index > w.polled || d.changed_offset.is_some();
    if let Some(d) = p.audit_disagreement().filter(new) {
        let Some(root) = d.logged_root else {
            // The head's own entry, or a batch the scrub checked, was changed on this
            // disk: no poll needed.
            w.diverged = Some(d.to_string());
            p.set_tree_diverged(true);
            return None;
        };
        return Some(Work::Poll {
            size: d.tree_size,
            root,
            raft_index: d.raft_index,
        });
    }
    if !leads {
        return None;
    }
    let last = p.last_logged_head();
    if let Some(m) = last.filter(|m| m.raft_index > w.polled) {
        return Some(Work::Poll {
            size: m.tree_size,
            root: m.root,
            raft_index: m.raft_index,
        });
    }
    let head = due_head(
        p,
        last.map(|m| m.timestamp_ms),
        w.logged_at,
        interval_ms,
        now,
    )?;
    w.logged_at = Some(Instant::now());
    Some(Work::Log(signed(broker, p, &head, now)))
}

/// The committed head to log now: the tree grew, and the interval passed since the
/// last head's timestamp (unless that lies ahead of this clock) and since this broker
/// last logged one.
fn due_head(
    p: &Partition,
    last_timestamp: Option<i64>,
    logged_at: Option<Instant>,
    interval_ms: i64,
    now: i64,
) -> Option<AuditHead> {
    let interval = Duration::from_millis(interval_ms.max(0) as u64);
    if logged_at.is_some_and(|at| at.elapsed() < interval) {
        return None;
    }
    if last_timestamp.is_some_and(|t| t <= now && now - t < interval_ms) {
        return None;
    }
    match p.audit_head_to_log() {
        Ok((head, _)) => head,
        // A replica restarted from a Raft snapshot keeps no tree: it logs no heads.
        Err(PartitionError::Log(LogError::NoAuditTree(_))) => None,
        Err(e) => {
            warn!(topic = p.topic(), partition = p.index(), error = %e, "audit head not computed");
            None
        }
    }
}

async fn perform(broker: &Broker, p: &Partition, state: &Shared, key: &Key, work: Work) {
    match work {
        Work::Log(head) => {
            let _ = log_head(broker, p, &head).await;
        }
        Work::HandOver => {
            broker.cluster.hand_over(p.group()).await;
        }
        Work::Poll {
            size,
            root,
            raft_index,
        } => {
            let verdict = poll::poll(broker, p, size, root, raft_index).await;
            let mut s = lock(state);
            let w = s.watched.entry(key.clone()).or_default();
            w.polled = raft_index;
            match verdict {
                Verdict::Agrees => p.set_tree_diverged(false),
                Verdict::HeadWrong(why) => {
                    p.set_tree_diverged(false);
                    broker.metrics.audit_bad_heads.inc();
                    error!(
                        topic = p.topic(),
                        partition = p.index(),
                        why,
                        "a logged audit head is not the group's"
                    );
                }
                Verdict::Diverged(why) => {
                    error!(
                        topic = p.topic(),
                        partition = p.index(),
                        why,
                        "audit tree diverged: out of service"
                    );
                    w.diverged = Some(why);
                    p.set_tree_diverged(true);
                }
            }
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
