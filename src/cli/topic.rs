//! `strata topic …`: create, list, describe, alter and delete topics on a running
//! broker, over the Kafka protocol (so it works against any Kafka-compatible broker).
//!
//! Also holds what the client commands share: the `--brokers` and `--command-config`
//! flags and connecting.

use std::future::Future;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use client::admin::{ConfigChange, NewTopic};
use client::{Admin, ClientConfig, Cluster};

use super::{command_config, Outcome};

/// `--brokers` and `--command-config`, shared by every command that talks to a broker.
#[derive(Args, Debug, Clone)]
pub struct BrokersArg {
    /// Brokers to bootstrap from, comma-separated.
    #[arg(
        long,
        global = true,
        env = "STRATA_BROKERS",
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT[,HOST:PORT…]"
    )]
    pub brokers: String,
    /// Client security settings (TLS, SASL) in a Java-properties file, under Kafka's
    /// names: security.protocol, ssl.ca.location, sasl.mechanism, sasl.username, … (the
    /// password may come from STRATA_SASL_PASSWORD instead).
    #[arg(
        long,
        global = true,
        env = "STRATA_COMMAND_CONFIG",
        value_name = "FILE"
    )]
    pub command_config: Option<PathBuf>,
}

impl BrokersArg {
    /// The client configuration: the brokers, and the security of `--command-config`
    /// (plain TCP without one).
    pub fn client_config(&self) -> Result<ClientConfig> {
        let mut config = ClientConfig::new(&self.brokers);
        if let Some(path) = &self.command_config {
            config.connection.security = command_config::load(path)?;
        }
        Ok(config)
    }

    /// Connects and loads metadata; the error names the brokers tried.
    pub async fn connect(&self) -> Result<Arc<Cluster>> {
        Cluster::connect(self.client_config()?)
            .await
            .with_context(|| format!("connecting to {}", self.brokers))
    }
}

/// Runs `work` on a single-threaded runtime: the client commands do little CPU work.
pub fn block_on<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(work)
}

/// `KEY=VALUE` → (`KEY`, `VALUE`).
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

#[derive(Args)]
pub struct TopicArgs {
    #[command(flatten)]
    brokers: BrokersArg,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Partitions [default: the broker's num.partitions].
        #[arg(long, value_name = "N")]
        partitions: Option<i32>,
        /// Replicas per partition [default: the broker's default].
        #[arg(long, value_name = "R")]
        replication_factor: Option<i16>,
        /// A topic config, e.g. `retention.ms=86400000` (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topic names, one per line.
    List {
        /// Also list internal topics (`__consumer_offsets`).
        #[arg(long)]
        include_internal: bool,
    },
    /// Show a topic's partitions (leader, replicas, ISR, offsets) and its configs.
    Describe {
        name: String,
        /// Show every config, not only those set on the topic.
        #[arg(long)]
        all_configs: bool,
    },
    /// Change a topic's configs and/or grow its partition count.
    Alter {
        name: String,
        /// Set a config (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Remove a topic config so the default applies again (repeatable).
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
        /// New total partition count (can only grow).
        #[arg(long, value_name = "N")]
        partitions: Option<i32>,
    },
    /// Delete a topic and its data.
    Delete { name: String },
}

impl TopicArgs {
    pub fn run(self) -> Result<Outcome> {
        block_on(async move {
            let admin = Admin::new(self.brokers.connect().await?);
            let mut out = io::stdout().lock();
            match self.command {
                TopicCommand::Create {
                    name,
                    partitions,
                    replication_factor,
                    configs,
                } => {
                    let topic = NewTopic {
                        name: name.clone(),
                        partitions: partitions.unwrap_or(-1),
                        replication_factor: replication_factor.unwrap_or(-1),
                        configs,
                    };
                    admin.create_topic(&topic).await?;
                    writeln!(out, "Created topic {name}.")?;
                }
                TopicCommand::List { include_internal } => {
                    for name in admin.list_topics(include_internal).await? {
                        writeln!(out, "{name}")?;
                    }
                }
                TopicCommand::Describe { name, all_configs } => {
                    describe(&admin, &name, all_configs, &mut out).await?;
                }
                TopicCommand::Alter {
                    name,
                    configs,
                    delete_configs,
                    partitions,
                } => {
                    if configs.is_empty() && delete_configs.is_empty() && partitions.is_none() {
                        bail!("nothing to alter: give --config, --delete-config or --partitions");
                    }
                    let mut changes: Vec<ConfigChange> = configs
                        .into_iter()
                        .map(|(k, v)| ConfigChange::Set(k, v))
                        .collect();
                    changes.extend(delete_configs.into_iter().map(ConfigChange::Delete));
                    if !changes.is_empty() {
                        admin.alter_configs(&name, &changes).await?;
                    }
                    if let Some(count) = partitions {
                        admin.create_partitions(&name, count).await?;
                    }
                    writeln!(out, "Altered topic {name}.")?;
                }
                TopicCommand::Delete { name } => {
                    admin.delete_topic(&name).await?;
                    writeln!(out, "Deleted topic {name}.")?;
                }
            }
            out.flush()?;
            Ok(Outcome::Clean)
        })
    }
}

/// `Topic: t  PartitionCount: 2  ReplicationFactor: 1  Configs: k=v`, then one line per
/// partition, tab-separated as Kafka's `kafka-topics --describe` prints them.
async fn describe(
    admin: &Admin,
    name: &str,
    all_configs: bool,
    out: &mut impl Write,
) -> Result<()> {
    let topic = admin.describe_topic(name).await?;
    let configs = admin.describe_configs(name).await.unwrap_or_default();
    let shown: Vec<String> = configs
        .iter()
        .filter(|c| all_configs || c.source == "topic")
        .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("<sensitive>")))
        .collect();
    let replication = topic
        .partitions
        .first()
        .map_or(0, |p| p.info.replicas.len());
    writeln!(
        out,
        "Topic: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
        topic.name,
        topic.partitions.len(),
        replication,
        shown.join(",")
    )?;
    let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let offset = |o: Option<i64>| o.map_or_else(|| "?".to_string(), |o| o.to_string());
    for p in &topic.partitions {
        let leader = p
            .info
            .leader
            .map_or_else(|| "none".to_string(), |l| l.to_string());
        // Replicas on brokers that are down, as kafka-topics.sh shows them (only when
        // there are some).
        let offline = if p.info.offline_replicas.is_empty() {
            String::new()
        } else {
            format!("\tOffline: {}", ids(&p.info.offline_replicas))
        };
        writeln!(
            out,
            "\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}{offline}\tEarliestOffset: {}\tLatestOffset: {}",
            p.info.partition,
            leader,
            ids(&p.info.replicas),
            ids(&p.info.isr),
            offset(p.earliest_offset),
            offset(p.latest_offset),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_key_value("a=b=c"),
            Ok(("a".to_string(), "b=c".to_string()))
        );
        assert_eq!(parse_key_value("a="), Ok(("a".to_string(), String::new())));
        assert!(parse_key_value("=b").is_err());
        assert!(parse_key_value("ab").is_err());
    }
}
