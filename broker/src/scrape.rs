//! What `GET /metrics` reports of the broker's state, read when scraped: each
//! partition's offsets (the last stable offset on leaders), size and Raft position,
//! followers' lag, under-replicated partitions, the Raft transport's message counts,
//! each consumer group's state, members and lag, and the transactions coordinated here.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::{
    escape_label_value, FollowerLabels, GroupLabels, GroupPartitionLabels, GroupStateLabels,
    Metrics, OutcomeLabels, PartitionLabels, TxnStateLabels, MAX_GROUPS_IN_METRICS,
};
use crate::Broker;

/// The Prometheus text exposition of every metric, the state gauges read now.
pub fn render(broker: &Broker) -> String {
    broker.metrics.render(|m| {
        partitions(m, broker);
        raft_transport(m, broker);
        groups(m, broker);
        transactions(m, broker);
    })
}

/// Saturates a count into a gauge's `i64`.
fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The Raft transport's counts since start.
fn raft_transport(m: &Metrics, broker: &Broker) {
    use std::sync::atomic::Ordering::Relaxed;
    let s = broker.cluster.transport_stats();
    let counts = [
        ("sent", &s.sent),
        ("received", &s.received),
        ("dropped", &s.dropped),
        ("bad_frame", &s.bad_frames),
        ("refused", &s.refused),
        ("spoofed", &s.spoofed),
    ];
    m.raft_refused_connections
        .set(gauge_value(s.refused_connections.load(Relaxed)));
    for (outcome, count) in counts {
        m.raft_messages
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .set(gauge_value(count.load(Relaxed)));
    }
}

fn partitions(m: &Metrics, broker: &Broker) {
    let cluster = &broker.cluster;
    m.under_replicated
        .set(gauge_value(cluster.under_replicated() as u64));
    for p in broker.topics.partitions() {
        let Ok(o) = p.offsets() else { continue };
        let labels = PartitionLabels {
            topic: p.topic().to_string(),
            partition: p.index().to_string(),
        };
        let set = |f: &Family<PartitionLabels, Gauge>, v: u64| {
            f.get_or_create(&labels).set(gauge_value(v));
        };
        set(&m.log_start, o.log_start);
        set(&m.log_end, o.log_end);
        set(&m.flushed, o.flushed);
        set(&m.high_watermark, o.high_watermark);
        set(&m.size_bytes, o.size_bytes);
        if let Some(lso) = p.last_stable_offset_if_loaded() {
            set(&m.last_stable_offset, lso);
            set(&m.lso_lag, o.high_watermark.saturating_sub(lso));
        }
        let Some(v) = p.view() else { continue };
        set(&m.raft_term, v.term);
        set(&m.raft_commit_index, v.committed_index);
        set(&m.raft_leader, u64::from(v.is_leader));
        let Some(isr) = cluster.isr(p.group()) else {
            continue;
        };
        for &(follower, lag) in &isr.lag {
            m.follower_lag
                .get_or_create(&FollowerLabels {
                    topic: labels.topic.clone(),
                    partition: labels.partition.clone(),
                    follower: follower.to_string(),
                })
                .set(gauge_value(lag));
        }
    }
}

/// Transactional ids coordinated here by the state of their transaction.
fn transactions(m: &Metrics, broker: &Broker) {
    for (state, count) in broker.txns.state_counts() {
        m.transactions
            .get_or_create(&TxnStateLabels {
                state: state.to_string(),
            })
            .set(gauge_value(count as u64));
    }
}

/// Per-group gauges, rebuilt at each scrape so deleted groups disappear.
fn groups(m: &Metrics, broker: &Broker) {
    let mut all = broker.groups.metrics();
    all.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    all.truncate(MAX_GROUPS_IN_METRICS);
    for mut g in all {
        // Group ids are arbitrary client strings; the text format needs them escaped.
        g.group_id = escape_label_value(&g.group_id);
        let group = GroupLabels {
            group: g.group_id.clone(),
        };
        m.group_state
            .get_or_create(&GroupStateLabels {
                group: g.group_id.clone(),
                state: g.state.name().to_string(),
            })
            .set(1);
        m.group_members.get_or_create(&group).set(g.members as i64);
        m.group_generation
            .get_or_create(&group)
            .set(i64::from(g.generation));
        for ((topic, partition), committed) in g.committed {
            let labels = GroupPartitionLabels {
                group: g.group_id.clone(),
                topic: topic.clone(),
                partition: partition.to_string(),
            };
            m.group_committed.get_or_create(&labels).set(committed);
            let hw = broker
                .topics
                .get(&topic)
                .and_then(|t| t.partition(partition).cloned())
                .map(|p| p.high_watermark());
            if let Some(hw) = hw {
                m.group_lag
                    .get_or_create(&labels)
                    .set(gauge_value(hw).saturating_sub(committed).max(0));
            }
        }
    }
}
