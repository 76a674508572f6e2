//! `strata consume TOPIC`: prints records of one partition or all, from a chosen start,
//! one line each, formatted by `--format` or as JSON. Stops after `--count` records, or
//! follows the topic until Ctrl-C (exit 0).
//!
//! With `--group G` it reads as a member of consumer group G instead: the group assigns
//! the partitions and remembers how far it read (commits as it goes, and on exit commits
//! exactly what was printed), so the next run resumes there; `--from` then only says
//! where to start partitions the group has no offset for.
//!
//! With `--audit-key HEX` (an audit topic) every batch is proven, before any of its
//! records is printed, to be the next leaf of a tree head signed with that key
//! (`client::audit`, proofs from `--admin`); `--trusted-head FILE` pins a head kept from
//! before. A batch that fails stops the command with status 1.

use std::io::{self, BufWriter, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use client::audit::AuditCheck;
use client::consumer::{FetchConfig, Isolation, PartitionConsumer, StartOffset};
use client::{ConsumerRecord, GroupConfig, GroupConsumer, OffsetReset};
use tokio::sync::mpsc;

use super::admin_http::{AdminClient, AdminEndpointArgs};
use super::audit_source::AdminProofs;
use super::json::JsonObject;
use super::timestamp::{iso8601_utc, parse_iso8601};
use super::topic::{block_on, BrokersArg};
use super::Outcome;

/// Fetched record lists that may wait between partition readers and the printer.
const QUEUE_FETCHES: usize = 16;

const FORMAT_HELP: &str = "Placeholders: {topic} {partition} {offset} {timestamp} (ms) \
{time} (ISO-8601 UTC) {key} {value} {headers} (k=v,…); escapes \\n \\t \\\\. \
A null key or value prints as nothing. `json` prints one JSON object per record.";

#[derive(Args)]
#[command(after_help = FORMAT_HELP)]
pub struct ConsumeArgs {
    #[command(flatten)]
    brokers: BrokersArg,
    /// Topic to read.
    topic: String,
    /// Where to start: earliest, latest, an offset, or a time (ISO-8601 such as
    /// 2024-05-01T12:00:00Z, or @MS since the epoch): the first record at or after it.
    #[arg(long, default_value = "earliest", value_name = "WHERE", value_parser = parse_from,
          allow_hyphen_values = true)]
    from: StartOffset,
    /// Read only this partition (default: all).
    #[arg(long, value_name = "P", conflicts_with = "group")]
    partition: Option<i32>,
    /// Read as a member of this consumer group: partitions are shared with the
    /// group's other members and progress is committed. `--from` (earliest or latest)
    /// then only applies to partitions without a committed offset.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// With --group: a static member id (`group.instance.id`).
    #[arg(long, value_name = "ID", requires = "group")]
    group_instance_id: Option<String>,
    /// Exit after printing this many records (default: follow until Ctrl-C).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Output line format, or `json`.
    #[arg(long, default_value = "{value}", value_name = "FORMAT")]
    format: String,
    /// Longest time the broker holds a fetch waiting for new records.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    max_wait_ms: u64,
    /// Kafka's isolation.level: read_committed reads up to the last stable offset and
    /// skips the records of aborted transactions; read_uncommitted reads everything up
    /// to the high watermark.
    #[arg(long, default_value = "read_uncommitted", value_name = "LEVEL", value_parser = parse_isolation)]
    isolation: Isolation,
    /// Prove every batch against tree heads signed with this Ed25519 public key (hex)
    /// before printing its records; the proofs come from --admin.
    #[arg(long, value_name = "HEX", conflicts_with = "group")]
    audit_key: Option<String>,
    /// With --audit-key: a head kept from before (`strata audit head --json`). Batches
    /// it covers are proven against it, and newer heads must extend it.
    #[arg(long, value_name = "FILE", requires = "audit_key")]
    trusted_head: Option<std::path::PathBuf>,
    #[command(flatten)]
    admin: AdminEndpointArgs,
}

/// `--isolation`: read_committed | read_uncommitted.
pub(super) fn parse_isolation(s: &str) -> Result<Isolation, String> {
    match s {
        "read_committed" => Ok(Isolation::ReadCommitted),
        "read_uncommitted" => Ok(Isolation::ReadUncommitted),
        _ => Err(format!(
            "expected read_committed or read_uncommitted, got {s:?}"
        )),
    }
}

/// `--from`: earliest | latest | OFFSET | @MS | ISO-8601 time.
fn parse_from(s: &str) -> Result<StartOffset, String> {
    match s {
        "earliest" | "beginning" => return Ok(StartOffset::Earliest),
        "latest" | "end" => return Ok(StartOffset::Latest),
        _ => {}
    }
    if let Some(ms) = s.strip_prefix('@') {
        return ms
            .parse()
            .map(StartOffset::Timestamp)
            .map_err(|_| format!("expected @MILLISECONDS, got {s:?}"));
    }
    if let Ok(offset) = s.parse::<i64>() {
        if offset < 0 {
            return Err(format!("offsets are not negative: {s}"));
        }
        return Ok(StartOffset::Offset(offset));
    }
    parse_iso8601(s).map(StartOffset::Timestamp).ok_or_else(|| {
        format!("expected earliest, latest, an offset, @MS or an ISO-8601 time, got {s:?}")
    })
}

/// What partition readers send the printer.
type Fetched = client::Result<Vec<ConsumerRecord>>;

impl ConsumeArgs {
    pub fn run(self) -> Result<Outcome> {
        block_on(self.consume())
    }

    /// The audit check of partition `p`, with `--audit-key`.
    fn audit_check(&self, p: i32) -> Result<Option<AuditCheck<AdminProofs>>> {
        let Some(key) = &self.audit_key else {
            return Ok(None);
        };
        let key = log_store::merkle::bytes_from_hex(key)
            .filter(|k| k.len() == 32)
            .context("--audit-key: an Ed25519 public key is 32 bytes in hex")?;
        let trusted = match &self.trusted_head {
            Some(path) => Some(super::audit_source::read_head(path)?),
            None => None,
        };
        let source = AdminProofs::new(AdminClient::new(&self.admin)?);
        let check = AuditCheck::new(source, &self.topic, p, key, trusted)
            .map_err(|e| anyhow::anyhow!("--trusted-head: {}", e.reason))?;
        Ok(Some(check))
    }

    async fn consume(self) -> Result<Outcome> {
        if self.group.is_some() {
            return self.consume_as_group().await;
        }
        let cluster = self.brokers.connect().await?;
        let metadata = match cluster.metadata().topic(&self.topic) {
            Ok(_) => cluster.metadata(),
            Err(_) => {
                cluster
                    .refresh_metadata(Some(std::slice::from_ref(&self.topic)), false)
                    .await?
            }
        };
        let count = metadata.partition_count(&self.topic)?;
        let partitions: Vec<i32> = match self.partition {
            Some(p) if (0..count).contains(&p) => vec![p],
            Some(p) => bail!(
                "topic {} has no partition {p} ({count} partitions)",
                self.topic
            ),
            None => (0..count).collect(),
        };
        let config = FetchConfig {
            max_wait: Duration::from_millis(self.max_wait_ms),
            isolation: self.isolation,
            ..FetchConfig::default()
        };
        let (tx, mut rx) = mpsc::channel::<Fetched>(QUEUE_FETCHES);
        for p in partitions {
            let consumer =
                PartitionConsumer::new(cluster.clone(), &self.topic, p, self.from, config.clone())
                    .await
                    .with_context(|| format!("starting to read {}-{p}", self.topic))?;
            let check = self.audit_check(p)?;
            tokio::spawn(read_partition(consumer, check, tx.clone()));
        }
        drop(tx);
        let printer = Printer::new(&self.format);
        let mut out = BufWriter::new(io::stdout().lock());
        let mut printed = 0u64;
        if self.count == Some(0) {
            return Ok(Outcome::Clean);
        }
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            let fetched = tokio::select! {
                fetched = rx.recv() => fetched,
                _ = &mut ctrl_c => break,
            };
            let Some(fetched) = fetched else { break };
            if let Err(e @ client::Error::AuditRefused { .. }) = &fetched {
                out.flush()?;
                eprintln!("{e}");
                return Ok(Outcome::Damaged);
            }
            for record in fetched? {
                printer.print(&record, &mut out)?;
                printed += 1;
                if self.count.is_some_and(|n| printed >= n) {
                    out.flush()?;
                    return Ok(Outcome::Clean);
                }
            }
            out.flush()?;
        }
        out.flush()?;
        Ok(Outcome::Clean)
    }
}

/// How long one group poll waits for records before checking for Ctrl-C again.
const GROUP_POLL_WAIT: Duration = Duration::from_secs(1);

impl ConsumeArgs {
    async fn consume_as_group(self) -> Result<Outcome> {
        let Some(group) = self.group.clone() else {
            bail!("no --group given");
        };
        let reset = match self.from {
            StartOffset::Earliest => OffsetReset::Earliest,
            StartOffset::Latest => OffsetReset::Latest,
            _ => bail!(
                "with --group, --from takes earliest or latest (where partitions without a \
                 committed offset start); move the group with `strata group reset`"
            ),
        };
        let cluster = self.brokers.connect().await?;
        if cluster.metadata().topic(&self.topic).is_err() {
            cluster
                .refresh_metadata(Some(std::slice::from_ref(&self.topic)), false)
                .await?;
        }
        cluster.metadata().topic(&self.topic)?;
        let mut config = GroupConfig::new(group.clone());
        config.auto_offset_reset = reset;
        config.group_instance_id = self.group_instance_id.clone();
        config.fetch.max_wait = Duration::from_millis(self.max_wait_ms);
        config.fetch.isolation = self.isolation;
        let mut consumer = GroupConsumer::new(cluster, config)?;
        consumer.subscribe([self.topic.clone()])?;
        let result = self.print_group(&mut consumer).await;
        // Commits exactly what was printed (positions never pass returned records),
        // then leaves the group so its partitions move to the other members at once.
        let closed = consumer
            .close()
            .await
            .with_context(|| format!("committing and leaving group {group}"));
        result?;
        closed?;
        Ok(Outcome::Clean)
    }

    /// Prints records as the group assigns them, until `--count` or Ctrl-C.
    async fn print_group(&self, consumer: &mut GroupConsumer) -> Result<()> {
        let printer = Printer::new(&self.format);
        let mut out = BufWriter::new(io::stdout().lock());
        let mut printed = 0u64;
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            if let Some(n) = self.count {
                if printed >= n {
                    break;
                }
                let left = usize::try_from(n - printed).unwrap_or(usize::MAX);
                consumer.set_max_poll_records(
                    left.min(client::group::consumer::DEFAULT_MAX_POLL_RECORDS),
                )?;
            }
            let polled = tokio::select! {
                polled = consumer.poll(GROUP_POLL_WAIT) => polled,
                _ = &mut ctrl_c => break,
            };
            for record in polled.with_context(|| {
                format!("reading {} as group {}", self.topic, consumer.group_id())
            })? {
                printer.print(&record, &mut out)?;
                printed += 1;
            }
            out.flush()?;
        }
        out.flush()?;
        Ok(())
    }
}

/// Polls one partition forever (each batch proven first, with `check`), handing each
/// non-empty fetch to the printer; stops on the first error (after passing it on) or
/// when the printer is gone.
async fn read_partition(
    mut consumer: PartitionConsumer,
    mut check: Option<AuditCheck<AdminProofs>>,
    tx: mpsc::Sender<Fetched>,
) {
    loop {
        let fetched = match &mut check {
            Some(check) => consumer.poll_checked(check).await,
            None => consumer.poll().await,
        };
        let failed = fetched.is_err();
        if matches!(&fetched, Ok(records) if records.is_empty()) {
            continue;
        }
        if tx.send(fetched).await.is_err() || failed {
            return;
        }
    }
}

/// A parsed `--format`.
enum Printer {
    Json,
    Template(Vec<Piece>),
}

enum Piece {
    Text(String),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Time,
    Key,
    Value,
    Headers,
}

impl Printer {
    fn new(format: &str) -> Printer {
        if format == "json" {
            return Printer::Json;
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => text.push('\n'),
                    Some('t') => text.push('\t'),
                    Some('\\') => text.push('\\'),
                    Some(other) => {
                        text.push('\\');
                        text.push(other);
                    }
                    None => text.push('\\'),
                },
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for n in chars.by_ref() {
                        if n == '}' {
                            closed = true;
                            break;
                        }
                        name.push(n);
                    }
                    let piece = match name.as_str() {
                        _ if !closed => None,
                        "topic" => Some(Piece::Topic),
                        "partition" => Some(Piece::Partition),
                        "offset" => Some(Piece::Offset),
                        "timestamp" => Some(Piece::Timestamp),
                        "time" => Some(Piece::Time),
                        "key" => Some(Piece::Key),
                        "value" => Some(Piece::Value),
                        "headers" => Some(Piece::Headers),
                        _ => None,
                    };
                    match piece {
                        Some(p) => {
                            if !text.is_empty() {
                                pieces.push(Piece::Text(std::mem::take(&mut text)));
                            }
                            pieces.push(p);
                        }
                        // Unknown placeholders print as written.
                        None => {
                            text.push('{');
                            text.push_str(&name);
                            if closed {
                                text.push('}');
                            }
                        }
                    }
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Printer::Template(pieces)
    }

    fn print(&self, r: &ConsumerRecord, out: &mut impl Write) -> io::Result<()> {
        match self {
            Printer::Json => writeln!(out, "{}", json_line(r)),
            Printer::Template(pieces) => {
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => out.write_all(t.as_bytes())?,
                        Piece::Topic => out.write_all(r.topic.as_bytes())?,
                        Piece::Partition => write!(out, "{}", r.partition)?,
                        Piece::Offset => write!(out, "{}", r.offset)?,
                        Piece::Timestamp => write!(out, "{}", r.timestamp_ms)?,
                        Piece::Time => out.write_all(iso8601_utc(r.timestamp_ms).as_bytes())?,
                        Piece::Key => out.write_all(r.key.as_deref().unwrap_or_default())?,
                        Piece::Value => out.write_all(r.value.as_deref().unwrap_or_default())?,
                        Piece::Headers => out.write_all(headers_text(r).as_bytes())?,
                    }
                }
                out.write_all(b"\n")
            }
        }
    }
}

fn lossy(b: Option<&[u8]>) -> Option<String> {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
}

/// `k=v,k2=v2` (a null header value prints as just the key).
fn headers_text(r: &ConsumerRecord) -> String {
    r.headers
        .iter()
        .map(|h| match lossy(h.value.as_deref()) {
            Some(v) => format!("{}={v}", h.key),
            None => h.key.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `{"topic":…,"partition":…,"offset":…,"timestamp":…,"key":…,"value":…,"headers":{…}}`
/// with keys, values and header values as (lossy UTF-8) strings or null.
fn json_line(r: &ConsumerRecord) -> String {
    let headers = r
        .headers
        .iter()
        .fold(JsonObject::new(), |o, h| {
            o.opt_str(&h.key, lossy(h.value.as_deref()).as_deref())
        })
        .finish();
    let outer = JsonObject::new()
        .str("topic", &r.topic)
        .int("partition", r.partition)
        .int("offset", r.offset)
        .int("timestamp", r.timestamp_ms)
        .opt_str("key", lossy(r.key.as_deref()).as_deref())
        .opt_str("value", lossy(r.value.as_deref()).as_deref())
        .finish();
    // `finish` always closes with `}`: reopen it to nest the headers object.
    let body = outer.strip_suffix('}').unwrap_or(&outer);
    format!("{body},\"headers\":{headers}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_accepts_names_offsets_and_times() {
        assert_eq!(parse_from("earliest"), Ok(StartOffset::Earliest));
        assert_eq!(parse_from("latest"), Ok(StartOffset::Latest));
        assert_eq!(parse_from("42"), Ok(StartOffset::Offset(42)));
        assert_eq!(
            parse_from("@1700000000004"),
            Ok(StartOffset::Timestamp(1_700_000_000_004))
        );
        assert_eq!(
            parse_from("2023-11-14T22:13:20.004Z"),
            Ok(StartOffset::Timestamp(1_700_000_000_004))
        );
        assert!(parse_from("-3").is_err());
        assert!(parse_from("yesterday").is_err());
    }

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 1,
            offset: 7,
            timestamp_ms: 1_700_000_000_004,
            timestamp_type: client::record::TimestampType::Creation,
            key: Some("k".into()),
            value: Some("v\"1".into()),
            headers: vec![
                client::Header {
                    key: "h".into(),
                    value: Some("x".into()),
                },
                client::Header {
                    key: "n".into(),
                    value: None,
                },
            ],
        }
    }

    #[test]
    fn formats_fill_placeholders() {
        let mut out = Vec::new();
        Printer::new("{partition}:{offset}\\t{key}={value} [{headers}] {time} {bogus")
            .print(&record(), &mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1:7\tk=v\"1 [h=x,n] 2023-11-14T22:13:20.004Z {bogus\n"
        );
        let mut out = Vec::new();
        Printer::new("json").print(&record(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"topic\":\"t\",\"partition\":1,\"offset\":7,\"timestamp\":1700000000004,\
             \"key\":\"k\",\"value\":\"v\\\"1\",\"headers\":{\"h\":\"x\",\"n\":null}}\n"
        );
    }
}
