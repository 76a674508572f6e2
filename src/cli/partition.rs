//! `strata partition move TOPIC/P --to 1,2,4`: moves a partition's replicas to other
//! brokers of a cluster while it keeps serving (through a broker's admin HTTP,
//! `POST /cluster/move`, plain or HTTPS), then follows the move until the placement is
//! the new one.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use super::admin_http::{AdminClient, AdminEndpointArgs, Refused, HTTP_TIMEOUT};
use super::cluster::follower_lag;
use super::Outcome;

/// How often the move's progress is read.
const POLL_INTERVAL: Duration = Duration::from_millis(300);

#[derive(clap::Args, Debug)]
pub struct PartitionArgs {
    #[command(subcommand)]
    command: PartitionCommand,
}

#[derive(clap::Subcommand, Debug)]
enum PartitionCommand {
    /// Moves a partition's replicas to the given brokers (the first one becomes its
    /// preferred leader) while producers and consumers keep going: the new brokers
    /// catch up as non-voting learners, then one joint membership change swaps them in.
    Move(MoveArgs),
}

#[derive(clap::Args, Debug)]
struct MoveArgs {
    /// The partition, as TOPIC/PARTITION (e.g. `orders/3`).
    partition: String,
    /// The broker ids that will hold the partition's replicas, comma-separated.
    #[arg(long, value_delimiter = ',', required = true, value_name = "IDS")]
    to: Vec<u64>,
    #[command(flatten)]
    admin: AdminEndpointArgs,
    /// Return once the controller accepted the move instead of following it.
    #[arg(long)]
    no_wait: bool,
    /// Give up following the move after this many seconds (it goes on regardless).
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    timeout: u64,
}

impl PartitionArgs {
    pub fn run(self) -> anyhow::Result<Outcome> {
        match self.command {
            PartitionCommand::Move(a) => move_partition(&a),
        }
    }
}

/// `TOPIC/P` → (topic, p).
pub(super) fn parse_partition(text: &str) -> anyhow::Result<(String, i32)> {
    let Some((topic, index)) = text.rsplit_once('/') else {
        bail!("expected TOPIC/PARTITION, got {text:?}");
    };
    let index: i32 = index
        .parse()
        .ok()
        .filter(|i| *i >= 0)
        .with_context(|| format!("{index:?} is not a partition number"))?;
    if topic.is_empty() {
        bail!("expected TOPIC/PARTITION, got {text:?}");
    }
    Ok((topic.to_string(), index))
}

fn move_partition(args: &MoveArgs) -> anyhow::Result<Outcome> {
    let (topic, index) = parse_partition(&args.partition)?;
    let client = AdminClient::new(&args.admin)?;
    let body = serde_json::json!({"topic": topic, "partition": index, "to": args.to});
    // The controller may take up to 30 s without a quorum before it answers.
    let timeout = HTTP_TIMEOUT + Duration::from_secs(30);
    if let Err(e) = client.post(client.addr(), "/cluster/move", &body.to_string(), timeout) {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            bail!(
                "moving {topic}/{index} refused ({}): {}",
                refused.status,
                refused.message
            );
        }
        return Err(e);
    }
    let to = join(&args.to);
    if args.no_wait {
        println!("Moving {topic}/{index} to brokers {to}; `strata cluster status` shows it.");
        return Ok(Outcome::Clean);
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}  [{elapsed}]") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout);
    loop {
        match progress(&client, &topic, index) {
            Ok(Progress::Done(replicas)) if replicas == args.to => break,
            Ok(Progress::Done(replicas)) => {
                bar.finish_and_clear();
                bail!(
                    "{topic}/{index} is on brokers {} now, not {to} (another move replaced this one?)",
                    join(&replicas)
                );
            }
            Ok(Progress::Moving(what)) => {
                bar.set_message(format!("moving {topic}/{index}: {what}"))
            }
            // A broker restarting or a leader changing mid-move: keep following.
            Err(e) => bar.set_message(format!("moving {topic}/{index}: ({e:#})")),
        }
        if Instant::now() >= deadline {
            bar.finish_and_clear();
            bail!(
                "{topic}/{index} is still moving after {}s; it goes on in the cluster (`strata cluster status`)",
                args.timeout
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    bar.finish_and_clear();
    println!(
        "Moved {topic}/{index} to brokers {to} in {:.1}s.",
        started.elapsed().as_secs_f64()
    );
    Ok(Outcome::Clean)
}

enum Progress {
    /// No move under way: the replicas.
    Done(Vec<u64>),
    /// A line saying how far the move is.
    Moving(String),
}

fn ids(v: Option<&Value>) -> Vec<u64> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn join(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// Where the move stands: the controller placement from `--admin`, and the leader's
/// view of its group (voters, learners, how far behind each is) from the leader.
fn progress(client: &AdminClient, topic: &str, index: i32) -> anyhow::Result<Progress> {
    let view = client.get(client.addr(), "/cluster")?;
    let placed = view
        .get("placement")
        .and_then(Value::as_array)
        .and_then(|ps| {
            ps.iter().find(|p| {
                p.get("topic").and_then(Value::as_str) == Some(topic)
                    && p.get("partition").and_then(Value::as_i64) == Some(i64::from(index))
            })
        })
        .cloned()
        .with_context(|| format!("{topic}/{index} is not in the placement"))?;
    let replicas = ids(placed.get("replicas"));
    if placed.get("target").is_none_or(Value::is_null) {
        return Ok(Progress::Done(replicas));
    }
    let mut what = format!(
        "{} -> {}",
        join(&replicas),
        join(&ids(placed.get("target")))
    );
    let leader = placed.get("leader").and_then(Value::as_u64).unwrap_or(0);
    let leader_admin = view
        .get("brokers")
        .and_then(Value::as_array)
        .and_then(|bs| {
            bs.iter()
                .find(|b| b.get("id").and_then(Value::as_u64) == Some(leader))
        })
        .and_then(|b| b.get("admin_addr").and_then(Value::as_str))
        .map(str::to_string);
    let group = placed.get("group").and_then(Value::as_u64);
    if let Some(leader_admin) = leader_admin.filter(|a| !a.is_empty()) {
        let led = client.get(&leader_admin, "/cluster")?;
        let mine = led
            .get("partitions")
            .and_then(Value::as_array)
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p.get("group").and_then(Value::as_u64) == group)
            });
        if let Some(p) = mine {
            let behind = follower_lag(p);
            what.push_str(&format!(
                "; leader {leader}, voters {}, learners {}{}, entries behind {}",
                join(&ids(p.get("voters"))),
                join(&ids(p.get("learners"))),
                if p.get("joint").and_then(Value::as_bool) == Some(true) {
                    " (joint)"
                } else {
                    ""
                },
                if behind.is_empty() {
                    "-".to_string()
                } else {
                    behind.join(",")
                }
            ));
        }
    }
    Ok(Progress::Moving(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_parse_and_nonsense_is_refused() {
        assert_eq!(parse_partition("orders/3").unwrap(), ("orders".into(), 3));
        assert_eq!(parse_partition("a.b-c/0").unwrap(), ("a.b-c".into(), 0));
        for bad in ["orders", "orders/", "/3", "orders/-1", "orders/x"] {
            assert!(parse_partition(bad).is_err(), "{bad}");
        }
    }
}
