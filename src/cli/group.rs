//! `strata group …`: list, describe, reset and delete consumer groups on a running
//! broker, over the Kafka protocol (the commands `kafka-consumer-groups` offers).
//!
//! `reset` is a dry run unless `--execute`; it commits only while the group has no
//! members (state Empty or Dead), as `kafka-consumer-groups` insists, because a live
//! member would overwrite the new offsets with its own positions.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args, Subcommand};
use client::error::{GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP};
use client::group::admin::GroupDescription;
use client::offsets::{list_offset, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use client::{Cluster, GroupAdmin, TopicPartition};

use super::table::Table;
use super::timestamp::{parse_iso8601, parse_iso8601_duration};
use super::topic::{block_on, BrokersArg};
use super::Outcome;

#[derive(Args)]
pub struct GroupArgs {
    #[command(flatten)]
    brokers: BrokersArg,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Subcommand)]
enum GroupCommand {
    /// List consumer groups: id, state and protocol type.
    List,
    /// Show a group's state and members, and per partition its committed offset,
    /// the log end offset and the lag between them.
    Describe {
        /// The group id.
        group: String,
    },
    /// Move a group's committed offsets for one topic (a dry run unless --execute).
    Reset(ResetArgs),
    /// Delete a group and its committed offsets (refused while it has members).
    Delete {
        /// The group id.
        group: String,
    },
}

#[derive(Args)]
#[command(group(
    ArgGroup::new("target")
        .required(true)
        .multiple(false)
        .args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by", "by_duration"])
))]
struct ResetArgs {
    /// The group id.
    group: String,
    /// The topic whose offsets move.
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// Only these partitions (comma-separated; default: all).
    #[arg(long, value_name = "P[,P…]", value_delimiter = ',')]
    partitions: Vec<i32>,
    /// To the log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end offset.
    #[arg(long)]
    to_latest: bool,
    /// To this offset.
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// To the first record at or after this time (ISO-8601, e.g. 2024-05-01T12:00:00Z;
    /// a time after the last record means the log end).
    #[arg(long, value_name = "TIME", value_parser = parse_datetime)]
    to_datetime: Option<i64>,
    /// By N records from the committed offset (negative moves back).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// To the first record at or after now minus this ISO-8601 duration (PT1H, P1D).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    by_duration: Option<i64>,
    /// Commit the new offsets (default: only show them).
    #[arg(long)]
    execute: bool,
}

fn parse_datetime(s: &str) -> Result<i64, String> {
    parse_iso8601(s)
        .ok_or_else(|| format!("expected an ISO-8601 time such as 2024-05-01T12:00:00Z, got {s:?}"))
}

fn parse_duration(s: &str) -> Result<i64, String> {
    parse_iso8601_duration(s).ok_or_else(|| {
        format!("expected an ISO-8601 duration such as PT1H, PT30M or P1D, got {s:?}")
    })
}

/// Where `reset` moves each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    /// ms since the epoch.
    Time(i64),
    ShiftBy(i64),
}

impl ResetArgs {
    fn target(&self, now_ms: i64) -> Result<Target> {
        Ok(if self.to_earliest {
            Target::Earliest
        } else if self.to_latest {
            Target::Latest
        } else if let Some(o) = self.to_offset {
            Target::Offset(o)
        } else if let Some(t) = self.to_datetime {
            Target::Time(t)
        } else if let Some(n) = self.shift_by {
            Target::ShiftBy(n)
        } else if let Some(d) = self.by_duration {
            Target::Time(now_ms.saturating_sub(d))
        } else {
            bail!("give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by, --by-duration")
        })
    }

    /// The partitions of `--topic` that move: those of `--partitions` (each checked
    /// against the topic's partition count), or every one.
    async fn partitions_of_topic(&self, cluster: &Cluster) -> Result<Vec<TopicPartition>> {
        let metadata = cluster
            .refresh_metadata(Some(std::slice::from_ref(&self.topic)), false)
            .await?;
        let count = metadata.partition_count(&self.topic)?;
        let indexes: Vec<i32> = if self.partitions.is_empty() {
            (0..count).collect()
        } else {
            let mut ps = self.partitions.clone();
            ps.sort_unstable();
            ps.dedup();
            if let Some(p) = ps.iter().find(|p| !(0..count).contains(*p)) {
                bail!(
                    "topic {} has no partition {p} ({count} partitions)",
                    self.topic
                );
            }
            ps
        };
        Ok(indexes
            .into_iter()
            .map(|p| TopicPartition::new(self.topic.clone(), p))
            .collect())
    }
}

impl GroupArgs {
    pub fn run(self) -> Result<Outcome> {
        block_on(async move {
            let cluster = self.brokers.connect().await?;
            let admin = GroupAdmin::new(cluster.clone());
            let mut out = io::stdout().lock();
            match self.command {
                GroupCommand::List => list(&admin, &mut out).await?,
                GroupCommand::Describe { group } => {
                    describe(&cluster, &admin, &group, &mut out).await?
                }
                GroupCommand::Reset(args) => reset(&cluster, &admin, &args, &mut out).await?,
                GroupCommand::Delete { group } => delete(&admin, &group, &mut out).await?,
            }
            out.flush()?;
            Ok(Outcome::Clean)
        })
    }
}

async fn list(admin: &GroupAdmin, out: &mut impl Write) -> Result<()> {
    let groups = admin.list_groups().await.context("listing groups")?;
    let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE"]);
    for g in groups {
        table.row(vec![
            g.group_id,
            g.state.unwrap_or_else(|| "?".into()),
            if g.protocol_type.is_empty() {
                "-".into()
            } else {
                g.protocol_type
            },
        ]);
    }
    table.print(out)?;
    Ok(())
}

async fn describe(
    cluster: &Cluster,
    admin: &GroupAdmin,
    group: &str,
    out: &mut impl Write,
) -> Result<()> {
    let description = admin
        .describe_group(group)
        .await
        .with_context(|| format!("describing group {group}"))?;
    let committed = admin
        .committed_offsets(group, None)
        .await
        .with_context(|| format!("fetching the committed offsets of group {group}"))?;
    if description.state == client::group::admin::STATE_DEAD && committed.is_empty() {
        bail!("group {group} does not exist");
    }
    writeln!(
        out,
        "Group: {group}\tState: {}\tProtocol: {}\tMembers: {}",
        description.state,
        protocol(&description),
        description.members.len()
    )?;
    writeln!(out)?;
    let members = member_table(&description);
    if members.is_empty() {
        writeln!(out, "No active members.")?;
    } else {
        members.print(out)?;
    }
    writeln!(out)?;
    let offsets = offset_table(cluster, &committed, &owners(&description)).await;
    if offsets.is_empty() {
        writeln!(out, "No committed offsets.")?;
    } else {
        offsets.print(out)?;
    }
    Ok(())
}

/// The group's protocol as `type/name` (`consumer/range`); `-` when it has none.
fn protocol(description: &GroupDescription) -> String {
    match (
        description.protocol_type.as_str(),
        description.protocol.as_str(),
    ) {
        ("", _) => "-".to_string(),
        (t, "") => t.to_string(),
        (t, p) => format!("{t}/{p}"),
    }
}

/// The members' table: ids, client, host and assigned partitions.
fn member_table(description: &GroupDescription) -> Table {
    let mut members = Table::new(&[
        "MEMBER-ID",
        "INSTANCE-ID",
        "CLIENT-ID",
        "HOST",
        "PARTITIONS",
    ]);
    for m in &description.members {
        let partitions = match &m.assignment_error {
            Some(e) => format!("? ({e})"),
            None if m.assignment.is_empty() => "-".into(),
            None => m
                .assignment
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        };
        members.row(vec![
            m.member_id.clone(),
            m.group_instance_id.clone().unwrap_or_else(|| "-".into()),
            m.client_id.clone(),
            m.client_host.clone(),
            partitions,
        ]);
    }
    members
}

/// The member each assigned partition belongs to.
fn owners(description: &GroupDescription) -> BTreeMap<TopicPartition, String> {
    let mut owner = BTreeMap::new();
    for m in &description.members {
        for tp in &m.assignment {
            owner.insert(tp.clone(), m.member_id.clone());
        }
    }
    owner
}

/// The offsets' table: for each partition committed to or assigned, the committed
/// offset, the log end offset, the lag between them and the owning member.
async fn offset_table(
    cluster: &Cluster,
    committed: &BTreeMap<TopicPartition, i64>,
    owner: &BTreeMap<TopicPartition, String>,
) -> Table {
    let partitions: BTreeSet<&TopicPartition> = committed.keys().chain(owner.keys()).collect();
    let mut offsets = Table::new(&[
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "MEMBER-ID",
    ]);
    for tp in partitions {
        let end = list_offset(cluster, &tp.topic, tp.partition, LATEST_TIMESTAMP)
            .await
            .ok()
            .map(|o| o.offset);
        let current = committed.get(tp).copied();
        let lag = match (current, end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            _ => "-".into(),
        };
        offsets.row(vec![
            tp.topic.clone(),
            tp.partition.to_string(),
            current.map_or_else(|| "-".into(), |c| c.to_string()),
            end.map_or_else(|| "?".into(), |e| e.to_string()),
            lag,
            owner.get(tp).cloned().unwrap_or_else(|| "-".into()),
        ]);
    }
    offsets
}

/// Where a partition moves: `target` resolved against its log and committed offset,
/// clamped to [log start, log end].
async fn new_offset(
    cluster: &Cluster,
    tp: &TopicPartition,
    current: Option<i64>,
    target: Target,
) -> Result<i64> {
    let offset = |timestamp: i64| async move {
        list_offset(cluster, &tp.topic, tp.partition, timestamp)
            .await
            .map(|o| o.offset)
            .with_context(|| format!("listing offsets of {tp}"))
    };
    let start = offset(EARLIEST_TIMESTAMP).await?;
    let end = offset(LATEST_TIMESTAMP).await?;
    let wanted = match target {
        Target::Earliest => start,
        Target::Latest => end,
        Target::Offset(o) => o,
        Target::Time(ms) => match offset(ms).await? {
            // No record at or after the time: the log end.
            -1 => end,
            o => o,
        },
        Target::ShiftBy(n) => match current {
            Some(c) => c.saturating_add(n),
            None => bail!("cannot shift {tp}: the group has no committed offset for it"),
        },
    };
    Ok(wanted.clamp(start, end.max(start)))
}

async fn reset(
    cluster: &Cluster,
    admin: &GroupAdmin,
    args: &ResetArgs,
    out: &mut impl Write,
) -> Result<()> {
    let group = &args.group;
    let target = args.target(now_ms())?;
    let partitions = args.partitions_of_topic(cluster).await?;
    let description = admin
        .describe_group(group)
        .await
        .with_context(|| format!("describing group {group}"))?;
    let committed = admin
        .committed_offsets(group, Some(&partitions))
        .await
        .with_context(|| format!("fetching the committed offsets of group {group}"))?;
    let plan = show_plan(cluster, &partitions, &committed, target, out).await?;
    if !args.execute {
        out.flush()?;
        print_dry_run_note(&description);
        return Ok(());
    }
    if !description.is_inactive() {
        bail!(
            "refusing to reset group {group}: {}. Stop its consumers first; a live member would overwrite the new offsets",
            active(&description)
        );
    }
    admin
        .commit_offsets(group, &plan)
        .await
        .with_context(|| format!("committing the new offsets of group {group}"))?;
    writeln!(
        out,
        "Committed new offsets for {} partition(s) of group {group}.",
        plan.len()
    )?;
    Ok(())
}

/// Resolves each partition's new offset and prints them next to the committed ones;
/// returns the new offsets.
async fn show_plan(
    cluster: &Cluster,
    partitions: &[TopicPartition],
    committed: &BTreeMap<TopicPartition, i64>,
    target: Target,
    out: &mut impl Write,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let mut plan: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let mut table = Table::new(&["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]);
    for tp in partitions {
        let current = committed.get(tp).copied();
        let new = new_offset(cluster, tp, current, target).await?;
        table.row(vec![
            tp.topic.clone(),
            tp.partition.to_string(),
            current.map_or_else(|| "-".into(), |c| c.to_string()),
            new.to_string(),
        ]);
        plan.insert(tp.clone(), new);
    }
    table.print(out)?;
    Ok(plan)
}

/// Tells on stderr that a dry run changed nothing, and what `--execute` needs.
fn print_dry_run_note(description: &GroupDescription) {
    let note = if description.is_inactive() {
        String::new()
    } else {
        format!(
            " (and the group must have no members: {})",
            active(description)
        )
    };
    eprintln!("Dry run: nothing changed. Run again with --execute to commit these offsets{note}.");
}

/// `it has 2 active member(s) (state Stable)`.
fn active(description: &GroupDescription) -> String {
    format!(
        "it has {} active member(s) (state {})",
        description.members.len(),
        description.state
    )
}

async fn delete(admin: &GroupAdmin, group: &str, out: &mut impl Write) -> Result<()> {
    match admin.delete_group(group).await {
        Ok(()) => {
            writeln!(out, "Deleted group {group}.")?;
            Ok(())
        }
        Err(e) if e.kafka_code() == Some(NON_EMPTY_GROUP) => {
            bail!("cannot delete group {group}: it has active members (NON_EMPTY_GROUP); stop its consumers first")
        }
        Err(e) if e.kafka_code() == Some(GROUP_ID_NOT_FOUND) => {
            bail!("cannot delete group {group}: no such group (GROUP_ID_NOT_FOUND)")
        }
        Err(e) => Err(e).with_context(|| format!("deleting group {group}")),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ResetArgs,
    }

    fn parse(args: &[&str]) -> Result<ResetArgs, clap::Error> {
        let mut all = vec!["reset", "g", "--topic", "t"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| c.args)
    }

    #[test]
    fn exactly_one_target() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--to-earliest", "--to-latest"]).is_err());
        assert_eq!(
            parse(&["--to-earliest"]).unwrap().target(0).unwrap(),
            Target::Earliest
        );
        assert_eq!(
            parse(&["--shift-by", "-10"]).unwrap().target(0).unwrap(),
            Target::ShiftBy(-10)
        );
        assert_eq!(
            parse(&["--to-offset", "7"]).unwrap().target(0).unwrap(),
            Target::Offset(7)
        );
        assert_eq!(
            parse(&["--by-duration", "PT1H"])
                .unwrap()
                .target(7_200_000)
                .unwrap(),
            Target::Time(3_600_000)
        );
        assert_eq!(
            parse(&["--to-datetime", "1970-01-01T00:00:01Z"])
                .unwrap()
                .target(0)
                .unwrap(),
            Target::Time(1000)
        );
        assert!(parse(&["--by-duration", "1 hour"]).is_err());
        assert!(parse(&["--to-datetime", "yesterday"]).is_err());
        let p = parse(&["--to-latest", "--partitions", "0,2", "--execute"]).unwrap();
        assert_eq!(p.partitions, vec![0, 2]);
        assert!(p.execute);
    }
}
