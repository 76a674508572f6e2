//! The `strata` binary: parses the command line, sets up diagnostics, and hands off to
//! one module per command family under `cli/`. Commands return an [`cli::Outcome`];
//! errors are reported here, once, on stderr.

mod cli;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Strata: a Kafka-compatible partitioned commit log.
#[derive(Parser)]
#[command(name = "strata", version, propagate_version = true)]
struct Cli {
    /// Diagnostics on stderr: a level (`warn`, `debug`, …) or a tracing filter
    /// (`log_store=trace`).
    #[arg(
        long,
        global = true,
        env = "RUST_LOG",
        default_value = "warn",
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
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = init_tracing(&cli.log_level).and_then(|()| match cli.command {
        Command::Log(cmd) => cmd.run(),
        Command::Version => cli::print_version(),
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
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}
