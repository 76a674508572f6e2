//! `strata cluster status | rebalance-leaders`, against the brokers' admin HTTP (plain
//! or HTTPS, see `admin_http`).
//!
//! `status` asks one broker's `GET /cluster` for the brokers and the partition
//! placement, then every broker's for its own replicas: a partition's leader knows each
//! follower's matched Raft index, so the lag printed is the leader's.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use serde_json::Value;

use super::admin_http::{AdminClient, AdminEndpointArgs, HTTP_TIMEOUT};
use super::table::Table;
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ClusterCommand {
    /// Brokers, the controller leader, and every partition's leader, replicas, ISR,
    /// high watermark and follower lag.
    Status(AdminArgs),
    /// Moves partition leaderships so every broker leads about as many of each topic's
    /// partitions.
    RebalanceLeaders(AdminArgs),
}

#[derive(clap::Args, Debug)]
struct AdminArgs {
    #[command(flatten)]
    endpoint: AdminEndpointArgs,
    /// Print the raw JSON instead of tables.
    #[arg(long)]
    json: bool,
}

fn num(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// A list of node ids as `1,2,3`; `-` when absent or empty (keeps columns aligned).
fn ids(v: Option<&Value>) -> String {
    let text = v
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_u64)
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    if text.is_empty() {
        "-".into()
    } else {
        text
    }
}

impl ClusterArgs {
    pub fn run(self) -> anyhow::Result<Outcome> {
        match self.command {
            ClusterCommand::Status(a) => status(&a),
            ClusterCommand::RebalanceLeaders(a) => rebalance(&a),
        }
    }
}

/// A string field of `v`; empty when absent.
fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// An array field of `v`; empty when absent.
fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn status(args: &AdminArgs) -> anyhow::Result<Outcome> {
    let client = AdminClient::new(&args.endpoint)?;
    let first = client.get(client.addr(), "/cluster")?;
    let brokers = list(&first, "brokers");
    let views = broker_views(&client, brokers);
    if args.json {
        let all: BTreeMap<String, Value> = views
            .iter()
            .map(|(id, v)| (id.to_string(), v.clone().unwrap_or(Value::Null)))
            .collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(Outcome::Clean);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Controller leader: {}",
        match num(&first, "controller_leader") {
            0 => "none".to_string(),
            n => n.to_string(),
        }
    )?;
    broker_table(brokers, &views).print(&mut out)?;
    writeln!(out)?;
    partition_table(list(&first, "placement"), &led_partitions(&views)).print(&mut out)?;
    writeln!(
        out,
        "\nLAG is follower:entries behind, from the leader; a leader marked ? did not answer."
    )?;
    Ok(Outcome::Clean)
}

/// Each broker's own `/cluster` view by broker id; `None` for a broker without an
/// admin address or that did not answer (reported, not fatal).
fn broker_views(client: &AdminClient, brokers: &[Value]) -> BTreeMap<u64, Option<Value>> {
    let mut views = BTreeMap::new();
    for b in brokers {
        let admin = text(b, "admin_addr");
        let view = if admin.is_empty() {
            None
        } else {
            client.get(admin, "/cluster").ok()
        };
        views.insert(num(b, "id"), view);
    }
    views
}

/// The brokers' table: addresses, whether each answered, and how many partitions it
/// leads by its own view.
fn broker_table(brokers: &[Value], views: &BTreeMap<u64, Option<Value>>) -> Table {
    let mut table = Table::new(&["BROKER", "KAFKA", "ADMIN", "STATE", "LEADS"]);
    for b in brokers {
        let id = num(b, "id");
        let view = views.get(&id).and_then(Option::as_ref);
        let leads = view
            .and_then(|v| v.get("partitions").and_then(Value::as_array))
            .map(|ps| ps.iter().filter(|p| num(p, "leader") == id).count());
        table.row(vec![
            id.to_string(),
            text(b, "kafka_addr").to_string(),
            text(b, "admin_addr").to_string(),
            if view.is_some() { "up" } else { "unreachable" }.to_string(),
            leads.map_or("-".into(), |n| n.to_string()),
        ]);
    }
    table
}

/// The leader's own entry for each partition, by (topic, partition), where the
/// leader answered.
fn led_partitions(views: &BTreeMap<u64, Option<Value>>) -> BTreeMap<(String, u64), Value> {
    let mut led = BTreeMap::new();
    for (id, view) in views {
        let Some(parts) = view
            .as_ref()
            .and_then(|v| v.get("partitions"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for p in parts.iter().filter(|p| num(p, "leader") == *id) {
            led.insert(
                (text(p, "topic").to_string(), num(p, "partition")),
                p.clone(),
            );
        }
    }
    led
}

/// The partitions' table: each partition of `placement`, with the leader's view of
/// it where the leader answered (`led`).
fn partition_table(placement: &[Value], led: &BTreeMap<(String, u64), Value>) -> Table {
    let mut table = Table::new(&[
        "TOPIC",
        "PARTITION",
        "LEADER",
        "TERM",
        "REPLICAS",
        "ISR",
        "HIGH-WATERMARK",
        "LAG",
    ]);
    for p in placement {
        let topic = text(p, "topic").to_string();
        let index = num(p, "partition");
        let [leader, term, isr, hw, lag] = leader_columns(p, led.get(&(topic.clone(), index)));
        table.row(vec![
            topic,
            index.to_string(),
            leader,
            term,
            ids(p.get("replicas")),
            isr,
            hw,
            lag,
        ]);
    }
    table
}

/// A partition's leader, term, ISR, high watermark and follower lag: from its
/// leader's own entry, or (leader marked `?`) only what the placement `p` tells.
fn leader_columns(p: &Value, leader_view: Option<&Value>) -> [String; 5] {
    match leader_view {
        Some(l) => [
            num(l, "leader").to_string(),
            num(l, "term").to_string(),
            ids(l.get("isr")),
            num(l, "high_watermark").to_string(),
            follower_lag(l).join(","),
        ],
        None => [
            match num(p, "leader") {
                0 => "none".to_string(),
                n => format!("{n}?"),
            },
            num(p, "term").to_string(),
            "-".into(),
            "-".into(),
            "-".into(),
        ],
    }
}

/// `follower:entries-behind` for each follower in a leader's `/cluster` partition entry.
pub(super) fn follower_lag(leader_view: &Value) -> Vec<String> {
    let last = num(leader_view, "last_index");
    leader_view
        .get("matched")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|pair| {
                    let f = pair.get(0)?.as_u64()?;
                    let matched = pair.get(1)?.as_u64()?;
                    Some(format!("{f}:{}", last.saturating_sub(matched)))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn rebalance(args: &AdminArgs) -> anyhow::Result<Outcome> {
    let client = AdminClient::new(&args.endpoint)?;
    let text = client.post(
        client.addr(),
        "/cluster/rebalance-leaders",
        "{}",
        HTTP_TIMEOUT,
    )?;
    let plan: Value = serde_json::from_str(&text).context("the broker did not answer JSON")?;
    if args.json {
        println!("{plan}");
        return Ok(Outcome::Clean);
    }
    let transfers = plan
        .get("transfers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if transfers.is_empty() {
        println!("Leaderships are already balanced.");
        return Ok(Outcome::Clean);
    }
    for t in &transfers {
        println!(
            "group {}: leader {} -> {}",
            num(t, "group"),
            num(t, "from"),
            num(t, "to")
        );
    }
    println!(
        "{} transfer(s) requested; `strata cluster status` shows them as they complete.",
        transfers.len()
    );
    Ok(Outcome::Clean)
}
