//! Prometheus metrics served on the admin port (`GET /metrics`).
//!
//! Request counters and latency histograms are updated on the request path; partition
//! offsets and sizes are read from the partitions when scraped, so they cost nothing
//! between scrapes.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub api: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

/// An authorization denial: what was asked for.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DenialLabels {
    pub resource_type: String,
    pub operation: String,
}

/// A client quota's measurement: the quota key and the user and client id it is shared
/// by ("" for a side the quota does not name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuotaLabels {
    pub quota: String,
    pub user: String,
    pub client_id: String,
}

/// A TLS listener's handshakes and certificate reloads, by outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsLabels {
    pub listener: String,
    pub outcome: String,
}

/// SASL authentications, by listener, mechanism and outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SaslLabels {
    pub listener: String,
    pub mechanism: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub api: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: String,
}

/// Transactions coordinated here, by state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TxnStateLabels {
    pub state: String,
}

/// A transaction's end: `commit` or `abort`, and who decided (`client`; for aborts also
/// `fenced`, a new producer instance, or `timeout`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TxnEndLabels {
    pub outcome: String,
    pub reason: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~13 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
}

/// Consumer groups that get per-group series (any client can create groups; the first
/// this many by id are exported).
pub const MAX_GROUPS_IN_METRICS: usize = 10_000;

/// Escapes a label value for the Prometheus text format (prometheus-client writes label
/// values as they are): backslash, double quote and newline.
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Every metric the broker exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Failures the broker cannot recover from (see [`crate::health`]).
    pub health: crate::health::Health,
    /// Requests by API and the first error code in the response (`NONE` when none).
    pub requests: Family<RequestLabels, Counter>,
    /// Error codes by API: every partition- or topic-level error counts once.
    pub errors: Family<RequestLabels, Counter>,
    pub latency: Family<ApiLabels, Histogram, fn() -> Histogram>,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub connections_open: Gauge,
    pub connections_total: Counter,
    /// Connections closed at accept (`max.connections.per.ip`) or for idling
    /// (`connections.max.idle.ms`).
    pub connections_refused: Counter,
    pub connections_idle_closed: Counter,
    /// TLS handshakes on the SSL listeners (`ok`, `failed`, `timeout`).
    pub tls_handshakes: Family<TlsLabels, Counter>,
    /// Certificate reloads of the SSL listeners (`ok`, `failed`).
    pub tls_reloads: Family<TlsLabels, Counter>,
    /// SASL authentications (`ok`, `failed`).
    pub sasl_authentications: Family<SaslLabels, Counter>,
    /// Admin HTTP requests refused (`unauthenticated`, `forbidden`).
    pub admin_refused: Family<OutcomeLabels, Counter>,
    /// Operations the authorizer denied.
    pub authorization_denials: Family<DenialLabels, Counter>,
    /// ACL changes (`created`, `deleted`), one per ACL.
    pub acl_changes: Family<OutcomeLabels, Counter>,
    /// Usage measured against client quotas: bytes, or percent-seconds of handler time.
    pub quota_usage: Family<QuotaLabels, Counter<f64, AtomicU64>>,
    /// Throttle time given to clients over their quotas, in seconds.
    pub quota_throttle: Family<QuotaLabels, Counter<f64, AtomicU64>>,
    /// Free bytes on the data directory's filesystem, as last measured.
    pub disk_free_bytes: Gauge,
    /// Produced batches appended, and retries answered without appending.
    pub appended_batches: Counter,
    pub duplicate_batches: Counter,
    /// Log cleaner (compaction) work.
    pub cleanings: Counter,
    pub cleaner_failures: Counter,
    pub cleaner_bytes_read: Counter,
    pub cleaner_bytes_written: Counter,
    pub cleaner_records_removed: Counter,
    /// Producer-state rebuilds by a new leader, the bytes of log they read, and the
    /// segment sidecars (producer snapshots, transaction indexes) written to spare them.
    pub state_rebuilds: Counter,
    pub state_rebuild_read_bytes: Counter,
    pub sidecars_written: Counter,
    /// Audit tree heads logged by this broker's leaders, heads it could not log, and
    /// the partitions here whose audit tree disagrees with a logged head (an alarm).
    pub audit_heads_logged: Counter,
    pub audit_head_failures: Counter,
    /// Logged heads a majority of the replicas' trees disagree with.
    pub audit_bad_heads: Counter,
    pub audit_diverged_partitions: Gauge,
    /// The audit trail's events by outcome: `written`, `dropped` (the buffer was full),
    /// `failed` (not written after every try).
    pub audit_log_events: Family<OutcomeLabels, Counter>,
    /// Transactions decided by their coordinator here.
    pub transaction_ends: Family<TxnEndLabels, Counter>,
    // The state gauges (`pub(crate)`) are refilled at each scrape by `crate::scrape`.
    pub(crate) log_start: Family<PartitionLabels, Gauge>,
    pub(crate) log_end: Family<PartitionLabels, Gauge>,
    pub(crate) flushed: Family<PartitionLabels, Gauge>,
    pub(crate) high_watermark: Family<PartitionLabels, Gauge>,
    pub(crate) size_bytes: Family<PartitionLabels, Gauge>,
    /// Raft leadership changes seen by this node's replicas.
    pub leader_changes: Counter,
    pub(crate) raft_term: Family<PartitionLabels, Gauge>,
    pub(crate) raft_commit_index: Family<PartitionLabels, Gauge>,
    pub(crate) raft_leader: Family<PartitionLabels, Gauge>,
    pub(crate) follower_lag: Family<FollowerLabels, Gauge>,
    pub(crate) raft_messages: Family<OutcomeLabels, Gauge>,
    pub(crate) raft_refused_connections: Gauge,
    pub(crate) under_replicated: Gauge,
    pub(crate) group_state: Family<GroupStateLabels, Gauge>,
    pub(crate) group_members: Family<GroupLabels, Gauge>,
    pub(crate) group_generation: Family<GroupLabels, Gauge>,
    pub(crate) group_committed: Family<GroupPartitionLabels, Gauge>,
    pub(crate) group_lag: Family<GroupPartitionLabels, Gauge>,
    pub(crate) last_stable_offset: Family<PartitionLabels, Gauge>,
    pub(crate) lso_lag: Family<PartitionLabels, Gauge>,
    pub(crate) transactions: Family<TxnStateLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FollowerLabels {
    pub topic: String,
    pub partition: String,
    pub follower: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupStateLabels {
    pub group: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupPartitionLabels {
    pub group: String,
    pub topic: String,
    pub partition: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("strata")),
            health: crate::health::Health::default(),
            requests: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            connections_open: Gauge::default(),
            connections_total: Counter::default(),
            connections_refused: Counter::default(),
            connections_idle_closed: Counter::default(),
            tls_handshakes: Family::default(),
            tls_reloads: Family::default(),
            sasl_authentications: Family::default(),
            admin_refused: Family::default(),
            authorization_denials: Family::default(),
            acl_changes: Family::default(),
            quota_usage: Family::default(),
            quota_throttle: Family::default(),
            disk_free_bytes: Gauge::default(),
            appended_batches: Counter::default(),
            duplicate_batches: Counter::default(),
            cleanings: Counter::default(),
            cleaner_failures: Counter::default(),
            cleaner_bytes_read: Counter::default(),
            cleaner_bytes_written: Counter::default(),
            cleaner_records_removed: Counter::default(),
            state_rebuilds: Counter::default(),
            state_rebuild_read_bytes: Counter::default(),
            sidecars_written: Counter::default(),
            audit_heads_logged: Counter::default(),
            audit_head_failures: Counter::default(),
            audit_bad_heads: Counter::default(),
            audit_diverged_partitions: Gauge::default(),
            audit_log_events: Family::default(),
            transaction_ends: Family::default(),
            last_stable_offset: Family::default(),
            lso_lag: Family::default(),
            transactions: Family::default(),
            log_start: Family::default(),
            log_end: Family::default(),
            flushed: Family::default(),
            high_watermark: Family::default(),
            leader_changes: Counter::default(),
            raft_term: Family::default(),
            raft_commit_index: Family::default(),
            raft_leader: Family::default(),
            follower_lag: Family::default(),
            raft_messages: Family::default(),
            raft_refused_connections: Gauge::default(),
            under_replicated: Gauge::default(),
            size_bytes: Family::default(),
            group_state: Family::default(),
            group_members: Family::default(),
            group_generation: Family::default(),
            group_committed: Family::default(),
            group_lag: Family::default(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|p| p.into_inner());
            r.register(
                "broker_failures",
                "Task panics and storage failures that stopped this broker",
                m.health.failures.clone(),
            );
            r.register(
                "kafka_requests",
                "Kafka requests by API and first error code",
                m.requests.clone(),
            );
            r.register(
                "kafka_errors",
                "Kafka error codes returned, by API",
                m.errors.clone(),
            );
            r.register(
                "kafka_request_duration_seconds",
                "Time from a request's arrival to its response being ready",
                m.latency.clone(),
            );
            r.register(
                "kafka_request_bytes",
                "Bytes of Kafka request frames received",
                m.bytes_in.clone(),
            );
            r.register(
                "kafka_response_bytes",
                "Bytes of Kafka response frames sent",
                m.bytes_out.clone(),
            );
            r.register(
                "kafka_connections_open",
                "Kafka client connections open now",
                m.connections_open.clone(),
            );
            r.register(
                "kafka_connections",
                "Kafka client connections accepted",
                m.connections_total.clone(),
            );
            r.register(
                "disk_free_bytes",
                "Free bytes on the data directory's filesystem (checked every second)",
                m.disk_free_bytes.clone(),
            );
            r.register(
                "kafka_connections_refused",
                "Connections closed at accept: max.connections.per.ip reached",
                m.connections_refused.clone(),
            );
            r.register(
                "kafka_connections_idle_closed",
                "Connections closed after connections.max.idle.ms without a request",
                m.connections_idle_closed.clone(),
            );
            r.register(
                "tls_handshakes",
                "TLS handshakes on the SSL listeners, by listener and outcome",
                m.tls_handshakes.clone(),
            );
            r.register(
                "tls_certificate_reloads",
                "Loads of an SSL listener's PEM files after a change or SIGHUP, by outcome",
                m.tls_reloads.clone(),
            );
            r.register(
                "sasl_authentications",
                "SASL authentications, by listener, mechanism and outcome",
                m.sasl_authentications.clone(),
            );
            r.register(
                "admin_requests_refused",
                "Admin HTTP requests refused: unauthenticated (no or wrong credentials) or \
                 forbidden (a change by a user who is not a super user)",
                m.admin_refused.clone(),
            );
            r.register(
                "authorization_denials",
                "Operations the authorizer denied, by resource type and operation",
                m.authorization_denials.clone(),
            );
            r.register(
                "acl_changes",
                "ACLs created and deleted (outcome created or deleted), one per ACL",
                m.acl_changes.clone(),
            );
            r.register(
                "client_quota_usage",
                "Usage measured against a client quota (quota, user, client_id): bytes for \
                 the byte rates, percent-seconds of handler time for request_percentage",
                m.quota_usage.clone(),
            );
            r.register(
                "client_quota_throttle_seconds",
                "Throttle time given to clients over a quota (quota, user, client_id)",
                m.quota_throttle.clone(),
            );
            r.register(
                "produced_batches_appended",
                "Produced record batches appended to a log",
                m.appended_batches.clone(),
            );
            r.register(
                "produced_batches_duplicate",
                "Idempotent retries answered with the original offsets, not appended",
                m.duplicate_batches.clone(),
            );
            r.register(
                "partition_log_start_offset",
                "First offset a consumer can read",
                m.log_start.clone(),
            );
            r.register(
                "partition_log_end_offset",
                "Offset the next batch will get",
                m.log_end.clone(),
            );
            r.register(
                "partition_flushed_offset",
                "Offsets below this one are on disk (fdatasync done); with write.caching \
                 the high watermark may lead it by up to flush.ms",
                m.flushed.clone(),
            );
            r.register(
                "partition_high_watermark",
                "End of the committed log; consumers read up to here",
                m.high_watermark.clone(),
            );
            r.register(
                "partition_last_stable_offset",
                "On the leader: the high watermark held back by transactions not yet \
                 stable; read_committed consumers read up to here",
                m.last_stable_offset.clone(),
            );
            r.register(
                "partition_lso_lag",
                "On the leader: high watermark minus last stable offset (offsets held back \
                 from read_committed consumers by open transactions)",
                m.lso_lag.clone(),
            );
            r.register(
                "transactions",
                "Transactional ids coordinated here, by the state of their transaction",
                m.transactions.clone(),
            );
            r.register(
                "transactions_ended",
                "Transactions decided here, by outcome (commit, abort) and reason (client; \
                 fenced: a new producer instance; timeout)",
                m.transaction_ends.clone(),
            );
            r.register(
                "partition_size_bytes",
                "Bytes of the partition's segments",
                m.size_bytes.clone(),
            );
            r.register(
                "raft_leader_changes",
                "Leader changes seen by this node's partition replicas",
                m.leader_changes.clone(),
            );
            r.register(
                "raft_term",
                "Raft term of this node's replica of the partition (its leader epoch)",
                m.raft_term.clone(),
            );
            r.register(
                "raft_commit_index",
                "Last committed Raft index of this node's replica",
                m.raft_commit_index.clone(),
            );
            r.register(
                "raft_is_leader",
                "1 where this node leads the partition's Raft group",
                m.raft_leader.clone(),
            );
            r.register(
                "raft_follower_lag_entries",
                "On the leader: Raft entries each follower is missing",
                m.follower_lag.clone(),
            );
            r.register(
                "raft_transport_messages",
                "Raft messages since start by outcome: sent, received, dropped (queue full \
                 or peer unreachable), bad_frame (checksum, size, decoding), refused (a \
                 message no honest replica sends), spoofed (a sender other than the \
                 connection's node)",
                m.raft_messages.clone(),
            );
            r.register(
                "raft_transport_connections_refused",
                "Raft port connections refused at the handshake (another cluster, an unknown \
                 node, plaintext or an untrusted certificate on a TLS port), since start",
                m.raft_refused_connections.clone(),
            );
            r.register(
                "under_replicated_partitions",
                "Partitions this node leads with fewer in-sync replicas than replicas",
                m.under_replicated.clone(),
            );
            r.register(
                "log_cleanings",
                "Compaction passes that rewrote segments",
                m.cleanings.clone(),
            );
            r.register(
                "log_cleaner_failures",
                "Compaction passes that failed",
                m.cleaner_failures.clone(),
            );
            r.register(
                "producer_state_rebuilds",
                "Producer and transaction state rebuilds by a new partition leader",
                m.state_rebuilds.clone(),
            );
            r.register(
                "producer_state_rebuild_read_bytes",
                "Log bytes read by producer state rebuilds (the rest came from segment sidecars)",
                m.state_rebuild_read_bytes.clone(),
            );
            r.register(
                "segment_sidecars_written",
                "Producer snapshots and transaction indexes written beside closed segments",
                m.sidecars_written.clone(),
            );
            r.register(
                "audit_heads_logged",
                "Signed audit tree heads logged by partition leaders on this broker",
                m.audit_heads_logged.clone(),
            );
            r.register(
                "audit_head_failures",
                "Audit tree heads a leader here could not log",
                m.audit_head_failures.clone(),
            );
            r.register(
                "audit_bad_heads",
                "Logged audit heads that a majority of the replicas' trees disagree with",
                m.audit_bad_heads.clone(),
            );
            r.register(
                "audit_diverged_partitions",
                "Audit partitions here whose tree disagrees with a logged head (out of service)",
                m.audit_diverged_partitions.clone(),
            );
            r.register(
                "audit_log_events",
                "Events of the broker's audit trail, by outcome (written, dropped, failed)",
                m.audit_log_events.clone(),
            );
            r.register(
                "log_cleaner_read_bytes",
                "Bytes the log cleaner read",
                m.cleaner_bytes_read.clone(),
            );
            r.register(
                "log_cleaner_written_bytes",
                "Bytes the log cleaner wrote",
                m.cleaner_bytes_written.clone(),
            );
            r.register(
                "log_cleaner_removed_records",
                "Records (superseded values and expired tombstones) compaction removed",
                m.cleaner_records_removed.clone(),
            );
            r.register(
                "group_state",
                "1 for a consumer group's current state (Empty, PreparingRebalance, CompletingRebalance, Stable)",
                m.group_state.clone(),
            );
            r.register(
                "group_members",
                "Members of a consumer group",
                m.group_members.clone(),
            );
            r.register(
                "group_generation",
                "A consumer group's generation: it grows by one per completed rebalance",
                m.group_generation.clone(),
            );
            r.register(
                "group_committed_offset",
                "A consumer group's committed offset of a partition",
                m.group_committed.clone(),
            );
            r.register(
                "group_lag",
                "High watermark minus the group's committed offset (0 when ahead)",
                m.group_lag.clone(),
            );
        }
        m
    }

    /// The Prometheus text exposition of every metric. The state gauges are cleared,
    /// then `refresh` fills them (one scrape at a time: the registry stays locked).
    pub fn render(&self, refresh: impl FnOnce(&Metrics)) -> String {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        for family in [
            &self.log_start,
            &self.log_end,
            &self.flushed,
            &self.high_watermark,
            &self.size_bytes,
            &self.raft_term,
            &self.raft_commit_index,
            &self.raft_leader,
        ] {
            family.clear();
        }
        self.follower_lag.clear();
        self.group_state.clear();
        self.group_members.clear();
        self.group_generation.clear();
        self.group_committed.clear();
        self.group_lag.clear();
        refresh(self);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// Counts one compaction pass.
    pub fn record_cleaning(&self, o: &log_store::CleanOutcome) {
        if o.applied {
            self.cleanings.inc();
        }
        self.cleaner_bytes_read.inc_by(o.bytes_read);
        self.cleaner_bytes_written.inc_by(o.bytes_written);
        if o.applied {
            self.cleaner_records_removed
                .inc_by(o.records_removed + o.tombstones_removed);
        }
    }
}
