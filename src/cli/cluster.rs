//! `strata cluster status | rebalance-leaders` (against the brokers' admin HTTP) and
//! `strata dev-cluster` (a local cluster of `strata serve` processes for trying things
//! out and for tests).
//!
//! `status` asks one broker's `GET /cluster` for the brokers and the partition
//! placement, then every broker's for its own replicas: a partition's leader knows each
//! follower's matched Raft index, so the lag printed is the leader's.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use super::table::Table;
use super::Outcome;

/// How long one admin HTTP request may take.
pub(super) const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

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

/// The admin HTTP address of a broker started with the defaults.
pub(super) const ADMIN_DEFAULT: &str = "127.0.0.1:9644";

#[derive(clap::Args, Debug)]
struct AdminArgs {
    /// Any broker's admin HTTP address.
    #[arg(
        long,
        env = "STRATA_ADMIN",
        default_value = ADMIN_DEFAULT,
        value_name = "HOST:PORT"
    )]
    admin: String,
    /// Print the raw JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// Environment variables with the admin port's credentials (a broker with
/// `admin.api.require.auth`): a bearer token, else a SCRAM user and password (HTTP
/// Basic).
pub(super) const ADMIN_TOKEN_ENV: &str = "STRATA_ADMIN_TOKEN";
pub(super) const ADMIN_USER_ENV: &str = "STRATA_ADMIN_USER";
pub(super) const ADMIN_PASSWORD_ENV: &str = "STRATA_ADMIN_PASSWORD";

/// `request` with the admin credentials of the environment, if it has any.
pub(super) fn with_credentials(request: ureq::Request) -> ureq::Request {
    use base64::Engine as _;
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    if let Some(token) = var(ADMIN_TOKEN_ENV) {
        return request.set("Authorization", &format!("Bearer {token}"));
    }
    match (var(ADMIN_USER_ENV), var(ADMIN_PASSWORD_ENV)) {
        (Some(user), Some(password)) => {
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request.set("Authorization", &format!("Basic {basic}"))
        }
        _ => request,
    }
}

pub(super) fn get(admin: &str, path: &str) -> anyhow::Result<Value> {
    let url = format!("http://{admin}{path}");
    let text = with_credentials(ureq::get(&url))
        .timeout(HTTP_TIMEOUT)
        .call()
        .with_context(|| format!("GET {url}"))?
        .into_string()
        .with_context(|| format!("reading {url}"))?;
    serde_json::from_str(&text).with_context(|| format!("{url} did not answer JSON"))
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
    let first = get(&args.admin, "/cluster")?;
    let brokers = list(&first, "brokers");
    let views = broker_views(brokers);
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
fn broker_views(brokers: &[Value]) -> BTreeMap<u64, Option<Value>> {
    let mut views = BTreeMap::new();
    for b in brokers {
        let admin = text(b, "admin_addr");
        let view = if admin.is_empty() {
            None
        } else {
            get(admin, "/cluster").ok()
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
    let url = format!("http://{}/cluster/rebalance-leaders", args.admin);
    let text = with_credentials(ureq::post(&url))
        .timeout(HTTP_TIMEOUT)
        .set("Content-Type", "application/json")
        .send_string("{}")
        .with_context(|| format!("POST {url}"))?
        .into_string()?;
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

/// `strata dev-cluster`: N brokers on 127.0.0.1 with consecutive ports, data under one
/// folder, until Ctrl-C or SIGTERM (then each is stopped with SIGTERM, in order).
#[derive(clap::Args, Debug)]
pub struct DevClusterArgs {
    /// Brokers to start (node ids 1..=N).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    nodes: u16,
    /// Folder for the brokers' data (`node-<id>/`) and logs (`node-<id>.log`).
    #[arg(long, default_value = "./strata-dev", value_name = "DIR")]
    dir: PathBuf,
    /// Node i listens for Kafka on BASE+i-1, for Raft on BASE+100+i-1 and for admin
    /// HTTP on BASE+200+i-1.
    #[arg(long, default_value_t = 19092, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1024..=65000))]
    base_port: u16,
}

impl DevClusterArgs {
    pub fn run(self) -> anyhow::Result<Outcome> {
        let exe = std::env::current_exe().context("finding the strata binary")?;
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let port = |offset: u16, i: u16| self.base_port + offset + i - 1;
        let peers: Vec<String> = (1..=self.nodes)
            .map(|i| format!("{i}=127.0.0.1:{}", port(100, i)))
            .collect();
        let peers = peers.join(",");
        let mut children: Vec<(u16, Child)> = Vec::new();
        for i in 1..=self.nodes {
            let log_path = self.dir.join(format!("node-{i}.log"));
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("creating {}", log_path.display()))?;
            let mut command = Process::new(&exe);
            command
                .arg("serve")
                .args(["--node-id", &i.to_string()])
                .args(["--kafka-addr", &format!("127.0.0.1:{}", port(0, i))])
                .args(["--raft-addr", &format!("127.0.0.1:{}", port(100, i))])
                .args(["--admin-addr", &format!("127.0.0.1:{}", port(200, i))])
                .args(["--peers", &peers])
                .arg("--data-dir")
                .arg(self.dir.join(format!("node-{i}")))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            match command.spawn() {
                Ok(child) => children.push((i, child)),
                Err(e) => {
                    stop_all(&mut children);
                    return Err(e).context("starting strata serve");
                }
            }
        }
        let brokers: Vec<String> = (1..=self.nodes)
            .map(|i| format!("127.0.0.1:{}", port(0, i)))
            .collect();
        eprintln!(
            "strata dev-cluster: {} brokers; Kafka bootstrap {}; admin http://127.0.0.1:{}/cluster; data and logs in {}",
            self.nodes,
            brokers.join(","),
            port(200, 1),
            self.dir.display()
        );
        eprintln!(
            "  try: strata cluster status --admin 127.0.0.1:{}",
            port(200, 1)
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let result = runtime.block_on(watch(&mut children));
        stop_all(&mut children);
        result.map(|()| Outcome::Clean)
    }
}

/// Waits for SIGINT/SIGTERM. A broker that exits meanwhile (killed to watch a
/// failover, say) is reported and the others keep running; when none is left the
/// command ends with an error.
async fn watch(children: &mut Vec<(u16, Child)>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = poll.tick() => {}
        }
        children.retain_mut(|(id, c)| match c.try_wait() {
            Ok(Some(status)) => {
                eprintln!(
                    "strata dev-cluster: broker {id} exited ({status}); the others keep running"
                );
                false
            }
            _ => true,
        });
        if children.is_empty() {
            bail!("every broker exited; see their logs");
        }
    }
}

/// SIGTERM to every broker still running, then waits for each (10 s, then SIGKILL).
fn stop_all(children: &mut Vec<(u16, Child)>) {
    for (_, c) in children.iter() {
        if let Ok(pid) = i32::try_from(c.id()) {
            // SAFETY: kill(2) with a pid we spawned and a valid signal number.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
    for (id, mut c) in children.drain(..) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    eprintln!("strata dev-cluster: broker {id} did not stop; killing it");
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}
