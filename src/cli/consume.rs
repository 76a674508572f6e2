//! `strata consume TOPIC`: prints records of one partition or all, from a chosen start,
//! one line each, formatted by `--format` or as JSON. Stops after `--count` records, or
//! follows the topic until Ctrl-C (exit 0).

use std::io::{self, BufWriter, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use client::consumer::{FetchConfig, PartitionConsumer, StartOffset};
use client::ConsumerRecord;
use tokio::sync::mpsc;

use super::json::JsonObject;
use super::timestamp::iso8601_utc;
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
    #[arg(long, value_name = "P")]
    partition: Option<i32>,
    /// Exit after printing this many records (default: follow until Ctrl-C).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Output line format, or `json`.
    #[arg(long, default_value = "{value}", value_name = "FORMAT")]
    format: String,
    /// Longest time the broker holds a fetch waiting for new records.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    max_wait_ms: u64,
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

/// Milliseconds since the epoch of `YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|±HH:MM]` (a space
/// may replace `T`; no zone means UTC).
fn parse_iso8601(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let mut d = date.splitn(3, '-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    // Split off the zone: Z, or +HH:MM / -HH:MM after the time.
    let (time, offset_minutes) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let zone = &rest[i + 1..];
        let (h, m) = zone.split_once(':').unwrap_or((zone, "0"));
        let minutes = h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?;
        let sign = if rest.as_bytes()[i] == b'-' { -1 } else { 1 };
        (&rest[..i], sign * minutes)
    } else {
        (rest, 0)
    };
    let mut ms_of_day = 0;
    if !time.is_empty() {
        let mut parts = time.splitn(3, ':');
        let hour: i64 = parts.next()?.parse().ok()?;
        let minute: i64 = parts.next()?.parse().ok()?;
        let (second, milli) = match parts.next() {
            None => (0, 0),
            Some(sec) => {
                let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
                let second: i64 = whole.parse().ok()?;
                let digits: String = frac.chars().take(3).collect();
                if !frac.chars().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                let milli = if digits.is_empty() {
                    0
                } else {
                    format!("{digits:0<3}").parse::<i64>().ok()?
                };
                (second, milli)
            }
        };
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        ms_of_day = ((hour * 60 + minute) * 60 + second) * 1000 + milli;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400_000 + ms_of_day - offset_minutes * 60_000)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date: Howard Hinnant's
/// `days_from_civil`, the inverse of `timestamp::civil_from_days`.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// What partition readers send the printer.
type Fetched = client::Result<Vec<ConsumerRecord>>;

impl ConsumeArgs {
    pub fn run(self) -> Result<Outcome> {
        block_on(self.consume())
    }

    async fn consume(self) -> Result<Outcome> {
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
            ..FetchConfig::default()
        };
        let (tx, mut rx) = mpsc::channel::<Fetched>(QUEUE_FETCHES);
        for p in partitions {
            let consumer =
                PartitionConsumer::new(cluster.clone(), &self.topic, p, self.from, config.clone())
                    .await
                    .with_context(|| format!("starting to read {}-{p}", self.topic))?;
            tokio::spawn(read_partition(consumer, tx.clone()));
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

/// Polls one partition forever, handing each non-empty fetch to the printer; stops on
/// the first error (after passing it on) or when the printer is gone.
async fn read_partition(mut consumer: PartitionConsumer, tx: mpsc::Sender<Fetched>) {
    loop {
        let fetched = consumer.poll().await;
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
    use crate::cli::timestamp::iso8601_utc;

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

    #[test]
    fn iso8601_round_trips_with_the_renderer() {
        for ms in [0, 951_782_400_000, 1_700_000_000_004, 4_107_542_400_000, -1] {
            assert_eq!(parse_iso8601(&iso8601_utc(ms)), Some(ms), "{ms}");
        }
        assert_eq!(parse_iso8601("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_iso8601("1970-01-01T01:00"), Some(3_600_000));
        assert_eq!(parse_iso8601("1970-01-01 00:00:01.5"), Some(1_500));
        assert_eq!(parse_iso8601("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_iso8601("1970-01-01T00:00:00-00:30"), Some(1_800_000));
        assert_eq!(parse_iso8601("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_iso8601("2023-13-01"), None);
        assert_eq!(parse_iso8601("2023-01-01T25:00"), None);
        assert_eq!(parse_iso8601("2023-01-01T00:00:00.x"), None);
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
