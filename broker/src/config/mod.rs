//! Broker configuration: defaults, the TOML file (`strata serve --config FILE`), and the
//! topic-level settings with Kafka's names.
//!
//! The file uses the same keys as the flags (`data-dir`, `kafka-addr`, …) and Kafka's
//! dotted names for topic defaults (`num.partitions`, `retention.ms`, …), quoted or not:
//! `num.partitions = 3` and `"num.partitions" = 3` mean the same. A topic key's default
//! may also be set by its Kafka broker setting (`log.retention.ms`, `message.max.bytes`,
//! `log.message.timestamp.type`; see [`topic_keys`]). Unknown keys are an
//! error, so a typo never silently falls back to a default.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{BrokerError, Result};

pub mod admin;
pub mod audit_log;
pub mod authorizer;
mod cluster;
pub mod listeners;
mod topic;
pub mod topic_keys;
mod txn;
pub use audit_log::AuditLogConfig;
pub use cluster::{
    ClusterSettings, RaftTls, DEFAULT_CHECKPOINT_RECORDS, DEFAULT_CONTROLLER_SEGMENT_BYTES,
    MAX_CONTROLLER_VOTERS,
};
pub use listeners::{ListenerSettings, SecurityProtocol};
pub use topic::{audit_override, ConfigValueError, TopicConfig};
pub use txn::TxnConfig;

/// Kafka's `socket.request.max.bytes`: a larger request frame closes its connection.
pub const DEFAULT_SOCKET_REQUEST_MAX_BYTES: usize = 100 * 1024 * 1024;
/// Kafka's default `replica.lag.time.max.ms`.
pub const DEFAULT_REPLICA_LAG_TIME_MAX: Duration = Duration::from_secs(30);
/// Connections served at once; more wait in the kernel's accept queue.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Kafka's default `connections.max.idle.ms` (10 minutes).
pub const DEFAULT_CONNECTIONS_MAX_IDLE: Duration = Duration::from_secs(600);
/// Connections one client address may hold. Kafka's default is unlimited; Strata's
/// keeps one address (a leaking client, a flood of idle sockets) from taking every one
/// of `max.connections`.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 1_000;
/// Request bytes read and not yet handled, over all connections. Kafka's default is
/// unlimited; Strata's bounds the memory a burst of large requests can pin.
pub const DEFAULT_QUEUED_MAX_REQUEST_BYTES: usize = 512 * 1024 * 1024;
/// Free bytes below which produce is refused (`storage.min.free.bytes`): headroom for
/// the broker's own writes (Raft state, checkpoints, group commits).
pub const DEFAULT_STORAGE_MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;
/// `log.retention.check.interval.ms` unless configured: 30 s (Kafka's is 5 min; a
/// pass only reads segment metadata, so checking more often costs little and frees
/// disk sooner).
pub const DEFAULT_RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// Everything `strata serve` needs. Built from defaults, then the file, then flags.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// Partition directories (`<topic>-<partition>`) and the broker's own files.
    pub data_dir: PathBuf,
    /// The Kafka listeners (`listeners`, or the `kafka-addr` shorthand) and their TLS
    /// settings.
    pub listeners: ListenerSettings,
    /// Admin HTTP (`/health`, `/metrics`).
    pub admin_addr: String,
    /// Who may use the admin port.
    pub admin_api: admin::AdminApiSettings,
    /// `authorizer.class.name`, `super.users`, `allow.everyone.if.no.acl.found`.
    pub authorizer: authorizer::AuthorizerSettings,
    /// This broker's id in Metadata responses.
    pub node_id: i32,
    /// Inter-broker Raft listener; a one-node cluster without it opens no Raft port.
    pub raft_addr: Option<String>,
    /// Every cluster node's Raft address by node id (`peers = "1=h:p,2=h:p"`); empty
    /// for a one-node cluster.
    pub peers: std::collections::BTreeMap<u64, String>,
    /// `cluster.id`: the id every node of the cluster is configured with (empty: none).
    pub cluster_id: String,
    /// Diagnostics filter (`info`, `broker=debug`, …); the binary applies it.
    pub log_level: Option<String>,
    /// Kafka's `socket.request.max.bytes`.
    pub socket_request_max_bytes: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// Kafka's `connections.max.idle.ms`: a connection with no request for this long
    /// (and none in progress) is closed, and so is one whose request frame takes longer
    /// than this to arrive.
    pub connections_max_idle: Duration,
    /// Kafka's `max.connections.per.ip`: more from one address are closed at accept.
    pub max_connections_per_ip: usize,
    /// Kafka's `queued.max.request.bytes`: request bytes read and being handled, over
    /// all connections; reading waits while they would exceed it.
    pub queued_max_request_bytes: usize,
    /// `storage.min.free.bytes` (Redpanda's `storage_min_free_bytes`): below this much
    /// free space on the data directory's filesystem, produce is refused with
    /// KAFKA_STORAGE_ERROR and `/health` reports the broker degraded.
    pub storage_min_free_bytes: u64,
    /// `audit.signing.key.file`: the Ed25519 private key (PEM, PKCS#8) that signs audit
    /// topics' tree heads; unsigned heads without it.
    pub audit_signing_key_file: Option<PathBuf>,
    /// Kafka's `log.retention.check.interval.ms`: how often retention (and the release
    /// of idle segment maps) runs over every partition.
    pub retention_check_interval: Duration,
    /// Kafka's `replica.lag.time.max.ms`: a follower that has not held everything
    /// committed for this long drops out of the ISR.
    pub replica_lag_time_max: Duration,
    /// Records the controller applies between checkpoints ; the log before
    /// the latest checkpoint is deleted.
    pub metadata_snapshot_records: u64,
    /// Segment size of the controller log.
    pub metadata_segment_bytes: u64,
    /// Defaults for topics and automatic creation.
    pub topics: TopicDefaults,
    /// Consumer groups and `__consumer_offsets`.
    pub groups: GroupConfig,
    /// The transaction coordinator.
    pub txns: TxnConfig,
    /// The broker's own audit trail (`audit.log.*`).
    pub audit_log: AuditLogConfig,
    /// The log cleaner (`cleanup.policy=compact`).
    pub cleaner: CleanerSettings,
}

/// Kafka's `log.cleaner.*` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerSettings {
    /// `log.cleaner.enable`.
    pub enabled: bool,
    /// `log.cleaner.backoff.ms`: pause between passes over the compacted partitions.
    pub backoff: Duration,
    /// `log.cleaner.dedupe.buffer.size`: memory for one cleaning's key map.
    pub dedupe_buffer_bytes: u64,
    /// `log.cleaner.io.max.bytes.per.second`: I/O of all cleanings; `None` is unlimited.
    pub io_max_bytes_per_second: Option<u64>,
}

impl Default for CleanerSettings {
    fn default() -> Self {
        let d = log_store::CleanerConfig::default();
        CleanerSettings {
            enabled: true,
            backoff: Duration::from_secs(15),
            dedupe_buffer_bytes: d.dedupe_buffer_bytes,
            io_max_bytes_per_second: d.io_max_bytes_per_second,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            data_dir: PathBuf::from("./strata-data"),
            listeners: ListenerSettings::default(),
            admin_addr: "127.0.0.1:9644".into(),
            admin_api: admin::AdminApiSettings::default(),
            authorizer: authorizer::AuthorizerSettings::default(),
            node_id: 1,
            raft_addr: None,
            peers: std::collections::BTreeMap::new(),
            cluster_id: String::new(),
            log_level: None,
            socket_request_max_bytes: DEFAULT_SOCKET_REQUEST_MAX_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connections_max_idle: DEFAULT_CONNECTIONS_MAX_IDLE,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            queued_max_request_bytes: DEFAULT_QUEUED_MAX_REQUEST_BYTES,
            storage_min_free_bytes: DEFAULT_STORAGE_MIN_FREE_BYTES,
            audit_signing_key_file: None,
            retention_check_interval: DEFAULT_RETENTION_CHECK_INTERVAL,
            replica_lag_time_max: DEFAULT_REPLICA_LAG_TIME_MAX,
            metadata_snapshot_records: DEFAULT_CHECKPOINT_RECORDS,
            metadata_segment_bytes: DEFAULT_CONTROLLER_SEGMENT_BYTES,
            topics: TopicDefaults::default(),
            groups: GroupConfig::default(),
            txns: TxnConfig::default(),
            audit_log: AuditLogConfig::default(),
            cleaner: CleanerSettings::default(),
        }
    }
}

/// Consumer-group settings, Kafka's names and defaults (except the partition count of
/// `__consumer_offsets`, see `offsets_topic_partitions`).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    /// `offsets.topic.num.partitions`: fixed once the topic exists (a group's place is a
    /// hash modulo this). Kafka's default is 50; ours is 16, as Redpanda's, since a single
    /// node gains nothing from more.
    pub offsets_topic_partitions: i32,
    /// `offsets.topic.segment.bytes`.
    pub offsets_topic_segment_bytes: u64,
    /// `offsets.retention.minutes` (or, finer, Strata's `offsets.retention.ms`; the
    /// later of the two in the config wins): committed offsets of an empty group are
    /// removed this long after it became empty.
    pub offsets_retention: Duration,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval: Duration,
    /// `offset.metadata.max.bytes`: larger commit metadata is OFFSET_METADATA_TOO_LARGE.
    pub offset_metadata_max_bytes: usize,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: the first rebalance of an empty group waits this
    /// long for more members.
    pub initial_rebalance_delay: Duration,
    /// `group.max.size`: members per group.
    pub max_size: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            offsets_topic_partitions: 16,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            offsets_retention: Duration::from_secs(7 * 24 * 3600),
            offsets_retention_check_interval: Duration::from_secs(600),
            offset_metadata_max_bytes: 4096,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay: Duration::from_millis(3_000),
            max_size: 10_000,
        }
    }
}

/// Broker-wide topic defaults, Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicDefaults {
    /// `num.partitions`: partitions of an automatically created topic (and of
    /// CreateTopics asking for -1).
    pub num_partitions: i32,
    /// `auto.create.topics.enable`: Metadata and Produce for an unknown topic create it.
    pub auto_create_topics: bool,
    /// Settings every topic starts from (`retention.ms`, `segment.bytes`, …).
    pub log: TopicConfig,
    /// The topic keys whose default the broker's configuration sets (by the topic
    /// key's name or its broker setting's, e.g. `log.retention.ms`): DescribeConfigs
    /// reports them as STATIC_BROKER_CONFIG rather than DEFAULT_CONFIG.
    pub explicit: BTreeSet<&'static str>,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults {
            num_partitions: 1,
            auto_create_topics: true,
            log: TopicConfig::default(),
            explicit: BTreeSet::new(),
        }
    }
}

/// Flattens nested tables into dotted keys: `num.partitions = 3` is `{num = {partitions = 3}}`
/// to TOML, and the same setting as `"num.partitions" = 3`.
fn flatten(prefix: &str, table: toml::Table, out: &mut BTreeMap<String, toml::Value>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            v => {
                out.insert(key, v);
            }
        }
    }
}

fn as_string(key: &str, v: &toml::Value) -> Result<String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(BrokerError::Config(format!(
            "{key}: expected a string or number, found {}",
            other.type_str()
        ))),
    }
}

impl BrokerConfig {
    /// Reads a TOML configuration file over the defaults.
    pub fn from_file(path: &Path) -> Result<BrokerConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| BrokerError::io(path, e))?;
        let mut config = BrokerConfig::default();
        config.apply_toml(&text).map_err(|e| match e {
            BrokerError::Config(m) => BrokerError::Config(format!("{}: {m}", path.display())),
            other => other,
        })?;
        Ok(config)
    }

    /// Applies the keys of a TOML document.
    pub fn apply_toml(&mut self, text: &str) -> Result<()> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| BrokerError::Config(e.to_string()))?;
        let mut keys = BTreeMap::new();
        flatten("", table, &mut keys);
        for (key, value) in &keys {
            self.set(key, &as_string(key, value)?)?;
        }
        Ok(())
    }

    /// The cluster this node belongs to. Without `peers` it is a one-node cluster:
    /// this node alone, with a Raft listener only when `raft-addr` is set. A node needs
    /// `raft-addr` unless `peers` lists it alone.
    pub fn cluster(&self) -> Result<ClusterSettings> {
        let node_id = u64::try_from(self.node_id)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| BrokerError::Config("node-id must be 1 or more".into()))?;
        let mut peers = self.peers.clone();
        if peers.is_empty() {
            peers.insert(node_id, self.raft_addr.clone().unwrap_or_default());
        }
        if !peers.contains_key(&node_id) {
            return Err(BrokerError::Config(format!(
                "peers does not list this node ({node_id})"
            )));
        }
        if self.raft_addr.is_none() && peers.len() > 1 {
            return Err(BrokerError::Config(
                "peers lists other nodes but raft-addr is not set: this node needs --raft-addr HOST:PORT"
                    .into(),
            ));
        }
        Ok(ClusterSettings {
            node_id,
            raft_addr: self.raft_addr.clone(),
            peers,
            checkpoint_records: self.metadata_snapshot_records,
            controller_segment_bytes: self.metadata_segment_bytes,
            cluster_id: self.cluster_id.clone(),
            raft_tls: self
                .listeners
                .raft_tls()
                .map_err(BrokerError::Config)?
                .map(|t| RaftTls {
                    keystore: t.keystore,
                    // `raft_tls` requires a trust store.
                    truststore: t.truststore.unwrap_or_default(),
                }),
        })
    }

    /// Sets one key (file key or Kafka name) from its string form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let parse_err = |what: &str| BrokerError::Config(format!("{key}: {value:?} is not {what}"));
        if let Some(set) = self.listeners.set(key, value) {
            return set.map_err(BrokerError::Config);
        }
        if let Some(set) = self.admin_api.set(key, value) {
            return set.map_err(BrokerError::Config);
        }
        if self.txns.set(key, value)? || self.audit_log.set(key, value)? {
            return Ok(());
        }
        if let Some(set) = self.authorizer.set(key, value) {
            return set.map_err(BrokerError::Config);
        }
        match key {
            "data-dir" => self.data_dir = PathBuf::from(value),
            "admin-addr" => self.admin_addr = value.to_string(),
            "raft-addr" => self.raft_addr = Some(value.to_string()),
            "peers" => {
                self.peers = ClusterSettings::parse_peers(value)
                    .map_err(|why| BrokerError::Config(format!("peers: {why}")))?
            }
            "log-level" => self.log_level = Some(value.to_string()),
            "cluster.id" => {
                let ok = value.len() <= 255
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !ok {
                    return Err(parse_err("an id of letters, digits, - and _ (255 at most)"));
                }
                self.cluster_id = value.to_string()
            }
            "node-id" => {
                self.node_id =
                    at_least::<i32>(value, 1).ok_or_else(|| parse_err("a node id (1 or more)"))?
            }
            "socket.request.max.bytes" => {
                self.socket_request_max_bytes = at_least::<usize>(value, 1024)
                    .ok_or_else(|| parse_err("a size of at least 1024 bytes"))?
            }
            "replica.lag.time.max.ms" => {
                self.replica_lag_time_max = at_least::<u64>(value, 1)
                    .map(Duration::from_millis)
                    .ok_or_else(|| parse_err("a time in milliseconds of at least 1"))?
            }
            "metadata.snapshot.records" => {
                self.metadata_snapshot_records = at_least::<u64>(value, 1)
                    .ok_or_else(|| parse_err("a record count of at least 1"))?
            }
            "metadata.log.segment.bytes" => {
                self.metadata_segment_bytes = at_least::<u64>(value, 4096)
                    .ok_or_else(|| parse_err("a size of at least 4096 bytes"))?
            }
            "max.connections" => {
                self.max_connections =
                    at_least::<usize>(value, 1).ok_or_else(|| parse_err("a count of at least 1"))?
            }
            "max.connections.per.ip" => {
                self.max_connections_per_ip =
                    at_least::<usize>(value, 1).ok_or_else(|| parse_err("a count of at least 1"))?
            }
            "connections.max.idle.ms" => {
                self.connections_max_idle = at_least::<u64>(value, 1)
                    .map(Duration::from_millis)
                    .ok_or_else(|| parse_err("milliseconds, at least 1"))?
            }
            "audit.signing.key.file" => {
                self.audit_signing_key_file = Some(PathBuf::from(value));
            }
            "storage.min.free.bytes" => {
                self.storage_min_free_bytes =
                    value.parse().map_err(|_| parse_err("a number of bytes"))?
            }
            "queued.max.request.bytes" => {
                self.queued_max_request_bytes = match value.trim() {
                    "-1" => tokio::sync::Semaphore::MAX_PERMITS,
                    v => v
                        .parse()
                        .ok()
                        .filter(|&n: &usize| n >= 1024)
                        .ok_or_else(|| parse_err("-1 (unlimited) or at least 1024 bytes"))?,
                }
            }
            "num.partitions" => {
                self.topics.num_partitions = at_least::<i32>(value, 1)
                    .ok_or_else(|| parse_err("a partition count of at least 1"))?
            }
            "log.cleaner.enable" => {
                self.cleaner.enabled = value.parse().map_err(|_| parse_err("true or false"))?
            }
            "log.retention.check.interval.ms" => {
                self.retention_check_interval = Duration::from_millis(
                    at_least::<u64>(value, 1)
                        .ok_or_else(|| parse_err("a positive number of milliseconds"))?,
                )
            }
            "log.cleaner.backoff.ms" => {
                self.cleaner.backoff = Duration::from_millis(
                    at_least::<u64>(value, 1)
                        .ok_or_else(|| parse_err("a positive number of milliseconds"))?,
                )
            }
            "log.cleaner.dedupe.buffer.size" => {
                self.cleaner.dedupe_buffer_bytes = value
                    .parse()
                    .ok()
                    .filter(|&n: &u64| n >= 1024 * 1024)
                    .ok_or_else(|| parse_err("a size of at least 1 MiB"))?
            }
            "log.cleaner.io.max.bytes.per.second" => {
                // Kafka's default is Double.MAX_VALUE: anything beyond u64 is unlimited.
                self.cleaner.io_max_bytes_per_second = match value.parse::<f64>() {
                    Ok(v) if v >= u64::MAX as f64 => None,
                    Ok(v) if v >= 1.0 => Some(v as u64),
                    _ => return Err(parse_err("a positive number of bytes per second")),
                }
            }
            "offsets.topic.num.partitions" => {
                self.groups.offsets_topic_partitions = value
                    .parse()
                    .ok()
                    .filter(|n: &i32| (1..=1000).contains(n))
                    .ok_or_else(|| parse_err("a partition count from 1 to 1000"))?
            }
            "offsets.topic.segment.bytes" => {
                self.groups.offsets_topic_segment_bytes = value
                    .parse()
                    .ok()
                    .filter(|&n: &u64| n >= 1024 * 1024)
                    .ok_or_else(|| parse_err("a size of at least 1 MiB"))?
            }
            "offsets.retention.minutes" => {
                let minutes: u64 = at_least::<u64>(value, 1)
                    .ok_or_else(|| parse_err("a number of minutes (1 or more)"))?;
                self.groups.offsets_retention = Duration::from_secs(minutes.saturating_mul(60));
            }
            "offsets.retention.ms" => {
                self.groups.offsets_retention = Duration::from_millis(
                    at_least::<u64>(value, 1000)
                        .ok_or_else(|| parse_err("milliseconds, at least 1000"))?,
                );
            }
            "offsets.retention.check.interval.ms" => {
                self.groups.offsets_retention_check_interval = Duration::from_millis(
                    at_least::<u64>(value, 1)
                        .ok_or_else(|| parse_err("a positive number of milliseconds"))?,
                )
            }
            "offset.metadata.max.bytes" => {
                self.groups.offset_metadata_max_bytes = value
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n <= 1024 * 1024)
                    .ok_or_else(|| parse_err("a size of at most 1 MiB"))?
            }
            "group.min.session.timeout.ms" => {
                self.groups.min_session_timeout_ms = at_least::<i32>(value, 1)
                    .ok_or_else(|| parse_err("a positive number of milliseconds"))?
            }
            "group.max.session.timeout.ms" => {
                self.groups.max_session_timeout_ms = at_least::<i32>(value, 1)
                    .ok_or_else(|| parse_err("a positive number of milliseconds"))?
            }
            "group.initial.rebalance.delay.ms" => {
                self.groups.initial_rebalance_delay = Duration::from_millis(
                    value
                        .parse()
                        .ok()
                        .filter(|&n: &u64| n <= 300_000)
                        .ok_or_else(|| parse_err("0 to 300000 milliseconds"))?,
                )
            }
            "group.max.size" => {
                self.groups.max_size = at_least::<usize>(value, 1)
                    .ok_or_else(|| parse_err("a member count of at least 1"))?
            }
            "auto.create.topics.enable" | "auto.create.topics" => {
                self.topics.auto_create_topics =
                    value.parse().map_err(|_| parse_err("true or false"))?
            }
            "log.retention.hours"
            | "log.retention.minutes"
            | "log.roll.hours"
            | "log.roll.jitter.hours" => self.set_topic_default_in_units(key, value)?,
            _ if topic_keys::topic_key(key).is_some() => self.set_topic_default(key, value)?,
            _ if topic_keys::topic_key_for_broker_setting(key).is_some() => {
                self.set_topic_default(key, value)?
            }
            _ => return Err(BrokerError::Config(format!("unknown setting {key:?}"))),
        }
        Ok(())
    }
}

impl BrokerConfig {
    /// Kafka's broker settings that give a time default in hours or minutes
    /// (`log.retention.hours = 168`). As in Kafka, the `.ms` form wins over minutes and
    /// minutes over hours: a file's keys are applied in sorted order, which puts
    /// `hours` < `minutes` < `ms`.
    fn set_topic_default_in_units(&mut self, key: &str, value: &str) -> Result<()> {
        let (ms_key, unit_ms) = match key {
            "log.retention.hours" => ("log.retention.ms", 3_600_000),
            "log.retention.minutes" => ("log.retention.ms", 60_000),
            "log.roll.hours" => ("log.roll.ms", 3_600_000),
            _ => ("log.roll.jitter.ms", 3_600_000),
        };
        let n: i64 = value
            .trim()
            .parse()
            .map_err(|_| BrokerError::Config(format!("{key}: {value:?} is not an integer")))?;
        // -1 (unlimited) stays -1; anything else is converted, saturating.
        let ms = if n < 0 { n } else { n.saturating_mul(unit_ms) };
        self.set_topic_default(ms_key, &ms.to_string())
    }

    /// Sets the default of a topic key, named as the topic key or as its broker setting
    /// (`retention.ms` or `log.retention.ms`).
    fn set_topic_default(&mut self, key: &str, value: &str) -> Result<()> {
        let spec = topic_keys::topic_key(key)
            .or_else(|| topic_keys::topic_key_for_broker_setting(key))
            .ok_or_else(|| BrokerError::Config(format!("unknown setting {key:?}")))?;
        let log = &mut self.topics.log;
        log.set(spec.name, value)
            .and_then(|()| log.check())
            .map_err(|e| BrokerError::Config(e.to_string()))?;
        self.topics.explicit.insert(spec.name);
        Ok(())
    }
}

/// `value` as a number no lower than `min`; `None` when it is not one.
fn at_least<T: std::str::FromStr + PartialOrd>(value: &str, min: T) -> Option<T> {
    value.parse().ok().filter(|n| *n >= min)
}

#[cfg(test)]
mod tests;
