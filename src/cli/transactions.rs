//! `strata transactions list | describe`: the transactional ids of a running cluster
//! (as `kafka-transactions.sh`), over the Kafka protocol: every broker lists the ids it
//! coordinates (ListTransactions); `describe` asks each id's coordinator
//! (DescribeTransactions). With an authorizer, only ids the caller may DESCRIBE show.

use std::io::{self, Write};
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use client::transaction::admin::{
    describe_transactions, list_transactions, ListFilter, TransactionDescription,
    TransactionListing,
};

use super::table::{non_empty, Format, Table};
use super::topic::{block_on, BrokersArg};
use super::Outcome;

#[derive(Args)]
pub struct TransactionsArgs {
    #[command(flatten)]
    brokers: BrokersArg,
    #[command(subcommand)]
    command: TransactionsCommand,
}

#[derive(Subcommand)]
enum TransactionsCommand {
    /// Every transactional id, with its state, producer id and coordinator.
    List(ListArgs),
    /// The state of transactional ids: producer id and epoch, timeout, start time of
    /// the running transaction and its partitions.
    Describe(DescribeArgs),
}

#[derive(Args)]
struct ListArgs {
    /// Only ids in this state (Empty, Ongoing, PrepareCommit, PrepareAbort,
    /// CompleteCommit, CompleteAbort); repeatable.
    #[arg(long = "state", value_name = "STATE", value_parser = non_empty)]
    states: Vec<String>,
    /// Only this producer id; repeatable.
    #[arg(long = "producer-id", value_name = "ID")]
    producer_ids: Vec<i64>,
    /// Only transactions running at least this long: how to find one that hangs.
    #[arg(long, value_name = "MS")]
    min_duration_ms: Option<u64>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Args)]
struct DescribeArgs {
    /// The transactional ids.
    #[arg(required = true, value_parser = non_empty)]
    ids: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

impl TransactionsArgs {
    pub fn run(self) -> Result<Outcome> {
        block_on(async move {
            let cluster = self.brokers.connect().await?;
            let mut out = io::stdout().lock();
            match self.command {
                TransactionsCommand::List(a) => {
                    let filter = ListFilter {
                        states: a.states,
                        producer_ids: a.producer_ids,
                        min_duration: a.min_duration_ms.map(Duration::from_millis),
                    };
                    let listed = list_transactions(&cluster, &filter).await?;
                    print_listing(&listed, a.format, &mut out)?;
                }
                TransactionsCommand::Describe(a) => {
                    let described = describe_transactions(&cluster, &a.ids).await?;
                    print_descriptions(&described, a.format, &mut out)?;
                }
            }
            Ok(Outcome::Clean)
        })
    }
}

fn print_listing(
    listed: &[TransactionListing],
    format: Format,
    out: &mut impl Write,
) -> Result<()> {
    match format {
        Format::Table => {
            let mut table =
                Table::new(&["TRANSACTIONAL_ID", "STATE", "PRODUCER_ID", "COORDINATOR"]);
            for t in listed {
                table.row(vec![
                    t.transactional_id.clone(),
                    t.state.clone(),
                    t.producer_id.to_string(),
                    t.coordinator.to_string(),
                ]);
            }
            table.print(out)?;
        }
        Format::Json => {
            for t in listed {
                let line = serde_json::json!({
                    "transactional_id": t.transactional_id,
                    "state": t.state,
                    "producer_id": t.producer_id,
                    "coordinator": t.coordinator,
                });
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(())
}

fn print_descriptions(
    described: &[TransactionDescription],
    format: Format,
    out: &mut impl Write,
) -> Result<()> {
    let partitions = |t: &TransactionDescription| -> Vec<String> {
        t.partitions
            .iter()
            .map(|tp| format!("{}-{}", tp.topic, tp.partition))
            .collect()
    };
    match format {
        Format::Table => {
            let mut table = Table::new(&[
                "TRANSACTIONAL_ID",
                "STATE",
                "PRODUCER_ID",
                "EPOCH",
                "TIMEOUT_MS",
                "START_TIME_MS",
                "COORDINATOR",
                "PARTITIONS",
            ]);
            for t in described {
                table.row(vec![
                    t.transactional_id.clone(),
                    t.state.clone(),
                    t.producer_id.to_string(),
                    t.producer_epoch.to_string(),
                    t.timeout_ms.to_string(),
                    t.start_time_ms.to_string(),
                    t.coordinator.to_string(),
                    partitions(t).join(","),
                ]);
            }
            table.print(out)?;
        }
        Format::Json => {
            for t in described {
                let line = serde_json::json!({
                    "transactional_id": t.transactional_id,
                    "state": t.state,
                    "producer_id": t.producer_id,
                    "producer_epoch": t.producer_epoch,
                    "timeout_ms": t.timeout_ms,
                    "start_time_ms": t.start_time_ms,
                    "coordinator": t.coordinator,
                    "partitions": partitions(t),
                });
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(())
}
