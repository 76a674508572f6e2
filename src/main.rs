//! The `strata` binary: parses the command line, sets up diagnostics, and hands off to
//! one module per command family under `cli/`. Commands return an [`cli::Outcome`];
//! errors are reported here, once, on stderr.

mod cli;

/// Forged array lengths in Kafka requests must not abort the broker (see the module).
#[global_allocator]
static ALLOCATOR: broker::alloc::LazyHugeAlloc = broker::alloc::LazyHugeAlloc;

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Strata: a Kafka-compatible partitioned commit log.
#[derive(Parser)]
#[command(name = "strata", version, propagate_version = true)]
struct Cli {
    /// Diagnostics on stderr: a level (`warn`, `debug`, …) or a tracing filter
    /// (`log_store=trace`). Default: `warn`, and `info` for `serve` (or the config
    /// file's `log-level`).
    #[arg(
        long,
        global = true,
        env = "RUST_LOG",
        default_value = DEFAULT_LOG_LEVEL,
        value_name = "FILTER"
    )]
    log_level: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect partition logs on disk (offline; safe while a broker runs).
    #[command(subcommand)]
    Log(cli::log::LogCommand),
    /// Run a broker: Kafka protocol, admin HTTP, partition logs.
    Serve(cli::serve::ServeArgs),
    /// Print the version.
    Version,
    /// Create, list, describe, alter and delete topics on a running broker.
    Topic(cli::topic::TopicArgs),
    /// Create, list and delete users' SCRAM credentials (SASL) on a running broker.
    User(cli::user::UserArgs),
    /// Add, list and remove ACLs (as kafka-acls) on a running broker with an authorizer.
    Acl(cli::acl::AclArgs),
    /// Set, remove and describe client quotas (as kafka-configs) on a running broker:
    /// byte rates and request time per user, client id, or both.
    Quota(cli::quota::QuotaArgs),
    /// Write stdin lines to a topic, one record per line.
    Produce(cli::produce::ProduceArgs),
    /// Print a topic's records, from earliest, latest, an offset or a time, or as a
    /// member of a consumer group (--group).
    Consume(cli::consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups on a running broker.
    Group(cli::group::GroupArgs),
    /// List and describe transactional ids (as kafka-transactions) on a running broker.
    Transactions(cli::transactions::TransactionsArgs),
    /// Load-test a broker (any Kafka-compatible one): produce, consume, end to end.
    Bench(cli::bench::BenchArgs),
    /// Inspect and operate a Strata cluster through its brokers' admin HTTP.
    Cluster(cli::cluster::ClusterArgs),
    /// An audit topic's Merkle tree (through a broker's admin HTTP): its head, and
    /// inclusion and consistency proofs, each checked before it is printed.
    Audit(cli::audit::AuditArgs),
    /// Move a partition's replicas to other brokers of a running cluster.
    Partition(cli::partition::PartitionArgs),
    /// Run a local cluster of N brokers on 127.0.0.1 (data under one folder) until
    /// Ctrl-C; --secure for TLS, SASL and ACLs everywhere.
    DevCluster(cli::dev_cluster::DevClusterArgs),
}

const DEFAULT_LOG_LEVEL: &str = "warn";

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    // Whether --log-level or RUST_LOG chose the level (rather than the default).
    let level_given = !matches!(
        matches.value_source("log_level"),
        Some(clap::parser::ValueSource::DefaultValue) | None
    );
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // `serve` reads its level from the config file when no flag or RUST_LOG says.
    let level = match &cli.command {
        Command::Serve(args) if !level_given => {
            args.file_log_level().unwrap_or_else(|| "info".into())
        }
        _ => cli.log_level.clone(),
    };
    let result = init_tracing(&level).and_then(|()| match cli.command {
        Command::Log(cmd) => cmd.run(),
        Command::Serve(args) => args.run(),
        Command::Version => cli::print_version(),
        Command::Topic(args) => args.run(),
        Command::User(args) => args.run(),
        Command::Acl(args) => args.run(),
        Command::Quota(args) => args.run(),
        Command::Produce(args) => args.run(),
        Command::Consume(args) => args.run(),
        Command::Group(args) => args.run(),
        Command::Transactions(args) => args.run(),
        Command::Bench(args) => args.run(),
        Command::Cluster(args) => args.run(),
        Command::Audit(args) => args.run(),
        Command::DevCluster(args) => args.run(),
        Command::Partition(args) => args.run(),
    });
    match result {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => cli::report_error(&e),
    }
}

fn init_tracing(filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .with_context(|| format!("invalid --log-level / RUST_LOG filter {filter:?}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}
