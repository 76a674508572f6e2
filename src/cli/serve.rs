//! `strata serve`: runs a broker until SIGINT or SIGTERM, then shuts down in order
//! (stop accepting, finish in-flight requests, flush, write clean-shutdown markers) and
//! exits 0.
//!
//! Settings come from the defaults, then `--config FILE` (TOML, the same keys as the
//! flags), then the flags.

use std::path::PathBuf;

use anyhow::Context;
use broker::BrokerConfig;

use super::Outcome;

/// Flags of `strata serve`. Each overrides the same key of the config file.
#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML configuration file (keys as the flags: `data-dir`, `kafka-addr`, …, and
    /// Kafka's topic defaults such as `num.partitions`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Partition logs and the broker's own files [default: ./strata-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Kafka protocol listener [default: 127.0.0.1:9092].
    #[arg(long, value_name = "HOST:PORT")]
    kafka_addr: Option<String>,
    /// Address clients are told to connect to [default: the bound address].
    #[arg(long, value_name = "HOST:PORT")]
    advertised_kafka_addr: Option<String>,
    /// Admin HTTP listener: /health, /metrics [default: 127.0.0.1:9644].
    #[arg(long, value_name = "HOST:PORT")]
    admin_addr: Option<String>,
    /// This broker's id, 1 or more [default: 1].
    #[arg(long, value_name = "ID")]
    node_id: Option<i32>,
    /// Inter-broker Raft listener; without it and --peers, no Raft port is opened.
    #[arg(long, value_name = "HOST:PORT")]
    raft_addr: Option<String>,
    /// Every cluster node's Raft address, this one's included: `1=H:P,2=H:P,3=H:P`
    /// [default: this node alone, a one-node cluster].
    #[arg(long, value_name = "ID=HOST:PORT,...")]
    peers: Option<String>,
    /// num.partitions: partitions of automatically created topics [default: 1].
    #[arg(long, value_name = "N")]
    num_partitions: Option<i32>,
    /// auto.create.topics.enable [default: true].
    #[arg(long, value_name = "BOOL")]
    auto_create_topics: Option<bool>,
    /// retention.ms default; -1 keeps data forever [default: 604800000, 7 days].
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    retention_ms: Option<i64>,
    /// retention.bytes default per partition; -1 is unlimited [default: -1].
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    retention_bytes: Option<i64>,
    /// segment.bytes default [default: 1073741824].
    #[arg(long, value_name = "BYTES")]
    segment_bytes: Option<u64>,
    /// max.message.bytes default: the largest batch accepted [default: 1048588].
    #[arg(long, value_name = "BYTES")]
    max_message_bytes: Option<u32>,
}

impl ServeArgs {
    /// The broker configuration: defaults, then the file, then the flags.
    pub fn config(&self) -> anyhow::Result<BrokerConfig> {
        let mut config = match &self.config {
            Some(path) => BrokerConfig::from_file(path)?,
            None => BrokerConfig::default(),
        };
        let mut set = |key: &str, value: Option<String>| -> anyhow::Result<()> {
            if let Some(v) = value {
                config
                    .set(key, &v)
                    .with_context(|| format!("--{}", key.replace('.', "-")))?;
            }
            Ok(())
        };
        let s = |v: &Option<String>| v.clone();
        set(
            "data-dir",
            self.data_dir.as_ref().map(|p| p.display().to_string()),
        )?;
        set("kafka-addr", s(&self.kafka_addr))?;
        set("advertised-kafka-addr", s(&self.advertised_kafka_addr))?;
        set("admin-addr", s(&self.admin_addr))?;
        set("node-id", self.node_id.map(|v| v.to_string()))?;
        set("raft-addr", s(&self.raft_addr))?;
        set("peers", s(&self.peers))?;
        set("num.partitions", self.num_partitions.map(|v| v.to_string()))?;
        set(
            "auto.create.topics.enable",
            self.auto_create_topics.map(|v| v.to_string()),
        )?;
        set("retention.ms", self.retention_ms.map(|v| v.to_string()))?;
        set(
            "retention.bytes",
            self.retention_bytes.map(|v| v.to_string()),
        )?;
        set("segment.bytes", self.segment_bytes.map(|v| v.to_string()))?;
        set(
            "max.message.bytes",
            self.max_message_bytes.map(|v| v.to_string()),
        )?;
        Ok(config)
    }

    /// The `log-level` key of the config file, if the file sets one.
    pub fn file_log_level(&self) -> Option<String> {
        let path = self.config.as_ref()?;
        BrokerConfig::from_file(path).ok()?.log_level
    }

    pub fn run(self) -> anyhow::Result<Outcome> {
        let config = self.config()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("strata")
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(serve(config))?;
        Ok(Outcome::Clean)
    }
}

async fn serve(config: BrokerConfig) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    // Handlers first: a SIGTERM or SIGINT during start-up (opening logs, replaying
    // `__consumer_offsets`) is held and answered with an orderly stop once serving,
    // instead of killing the process half-way.
    let signals = Signals::install()?;
    let running = broker::run(config)
        .await
        .with_context(|| format!("starting the broker on {}", data_dir.display()))?;
    eprintln!(
        "strata {} serving Kafka on {}, admin on http://{}, data in {}",
        env!("CARGO_PKG_VERSION"),
        running.kafka_addr,
        running.admin_addr,
        data_dir.display()
    );
    let failed = running.failed();
    let failure = tokio::select! {
        () = signals.wait() => None,
        () = failed => running.failure(),
    };
    eprintln!("strata: shutting down");
    running.shutdown();
    let stopped = running.wait().await.context("shutting down");
    // Fail-stop: a broker that lost a task or a partition's storage exits non-zero, so a
    // supervisor restarts it and clients move to the other replicas meanwhile.
    if let Some(reason) = failure {
        anyhow::bail!("stopped after a failure it cannot recover from:\n{reason}");
    }
    stopped?;
    Ok(())
}

/// SIGTERM and SIGINT, caught from installation on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// Resolves at the first signal since installation.
    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
