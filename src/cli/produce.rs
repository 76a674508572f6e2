//! `strata produce TOPIC`: one record per line of stdin (the line ending stripped), an
//! optional key before `--key-separator`, then a summary on stderr. Exits 0 only when
//! every record was acknowledged (with acks=0: sent).

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use client::{Acks, Compression, Delivery, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::mpsc;

use super::topic::{block_on, BrokersArg};
use super::Outcome;

/// Records whose acknowledgement may be outstanding before reading more of stdin.
const MAX_PENDING_RECORDS: usize = 10_000;
/// Lines read ahead of the producer.
const READ_AHEAD_LINES: usize = 1024;

#[derive(Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    brokers: BrokersArg,
    /// Topic to write to.
    topic: String,
    /// Split each line at the first SEP: key before, value after. Lines without SEP
    /// are an error.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Write every record to this partition (default: by key hash, or spread).
    #[arg(long, value_name = "P")]
    partition: Option<i32>,
    /// Acknowledgement: 0 (none), 1 (leader), all (replicated; enables idempotence).
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: Acks,
    /// Batch compression.
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    compression: CompressionArg,
    /// How long a batch waits for more records.
    #[arg(long, default_value_t = 5, value_name = "MS")]
    linger_ms: u64,
    /// Bytes per batch before it is sent.
    #[arg(long, default_value_t = 16 * 1024, value_name = "BYTES")]
    batch_size: usize,
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl From<CompressionArg> for Compression {
    fn from(c: CompressionArg) -> Compression {
        match c {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        }
    }
}

pub(super) fn parse_acks(s: &str) -> Result<Acks, String> {
    match s {
        "0" => Ok(Acks::None),
        "1" => Ok(Acks::Leader),
        "all" | "-1" => Ok(Acks::All),
        _ => Err(format!("expected 0, 1 or all, got {s:?}")),
    }
}

/// Counts for the summary.
#[derive(Default)]
struct Tally {
    acknowledged: u64,
    per_partition: BTreeMap<i32, u64>,
    failed: u64,
    first_error: Option<client::Error>,
}

impl Tally {
    async fn settle(&mut self, delivery: Delivery) {
        match delivery.await {
            Ok(meta) => {
                self.acknowledged += 1;
                *self.per_partition.entry(meta.partition).or_default() += 1;
            }
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

impl ProduceArgs {
    pub fn run(self) -> Result<Outcome> {
        block_on(self.produce())
    }

    async fn produce(self) -> Result<Outcome> {
        let started = Instant::now();
        let cluster = self.brokers.connect().await?;
        // Fail fast on a topic that does not exist and is not auto-created, or that the
        // caller may not see (TOPIC_AUTHORIZATION_FAILED), rather than after the delivery
        // timeout. (A just-created topic may still lack a leader: that error is retried
        // by the producer.)
        let metadata = cluster
            .refresh_metadata(Some(std::slice::from_ref(&self.topic)), true)
            .await?;
        match metadata.topic(&self.topic) {
            Err(e @ client::Error::UnknownTopic { .. }) => return Err(e.into()),
            Err(e) if !e.is_retriable() => return Err(e.into()),
            _ => {}
        }
        let producer = Producer::new(cluster, self.producer_config())
            .await
            .context("starting the producer")?;
        let mut tally = Tally::default();
        let input_error = self.send_stdin(&producer, &mut tally).await?;
        producer.close().await?;
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            self.summary(&tally, started)
        );
        if let Some(e) = input_error {
            return Err(e);
        }
        if let Some(e) = tally.first_error {
            return Err(anyhow!(e).context(format!("{} records were not written", tally.failed)));
        }
        Ok(Outcome::Clean)
    }

    /// The producer settings the flags ask for.
    fn producer_config(&self) -> ProducerConfig {
        ProducerConfig {
            acks: self.acks,
            idempotent: self.acks == Acks::All,
            linger: Duration::from_millis(self.linger_ms),
            batch_size_bytes: self.batch_size.max(1),
            compression: self.compression.into(),
            ..ProducerConfig::default()
        }
    }

    /// Sends a record per stdin line and waits for every outcome, counted in `tally`.
    /// A line that makes no record ends the input; its error is returned, to report
    /// after the summary of the records sent before it.
    async fn send_stdin(
        &self,
        producer: &Producer,
        tally: &mut Tally,
    ) -> Result<Option<anyhow::Error>> {
        // One allocation shared by every record.
        let topic: Arc<str> = self.topic.as_str().into();
        let mut pending: VecDeque<Delivery> = VecDeque::new();
        let mut lines = read_lines();
        let mut line_number = 0u64;
        let mut input_error = None;
        while let Some(line) = lines.recv().await {
            let mut line = line.context("reading stdin")?;
            line_number += 1;
            strip_line_ending(&mut line);
            let record = match self.record(&topic, line) {
                Ok(r) => r,
                Err(e) => {
                    input_error = Some(e.context(format!("stdin line {line_number}")));
                    break;
                }
            };
            if pending.len() >= MAX_PENDING_RECORDS {
                if let Some(d) = pending.pop_front() {
                    tally.settle(d).await;
                }
            }
            pending.push_back(producer.enqueue(record).await?);
        }
        producer.flush().await?;
        for d in pending {
            tally.settle(d).await;
        }
        Ok(input_error)
    }

    /// The summary line: records acknowledged (or sent, with acks=0) per partition,
    /// the time taken since `started`, and the failures.
    fn summary(&self, tally: &Tally, started: Instant) -> String {
        let partitions: Vec<String> = tally
            .per_partition
            .iter()
            .map(|(p, n)| format!("{p}: {n}"))
            .collect();
        let verb = if self.acks == Acks::None {
            "sent"
        } else {
            "acknowledged"
        };
        let mut summary = format!(
            "strata: {} records {verb} to {} in {:.3} s",
            tally.acknowledged,
            self.topic,
            started.elapsed().as_secs_f64()
        );
        if !partitions.is_empty() {
            summary.push_str(&format!(" (partition {})", partitions.join(", ")));
        }
        if tally.failed > 0 {
            summary.push_str(&format!(", {} failed", tally.failed));
        }
        summary
    }

    /// The record for one input line; key and value are slices of the line, not copies.
    fn record(&self, topic: &Arc<str>, line: Vec<u8>) -> Result<ProducerRecord> {
        let line = Bytes::from(line);
        let mut record = ProducerRecord {
            topic: Arc::clone(topic),
            partition: self.partition,
            ..ProducerRecord::default()
        };
        match self.key_separator.as_deref() {
            None => record.value = Some(line),
            Some(sep) => {
                let sep = sep.as_bytes();
                let Some(at) = find(&line, sep) else {
                    bail!("no key separator {:?}", String::from_utf8_lossy(sep));
                };
                record.key = Some(line.slice(..at));
                record.value = Some(line.slice(at + sep.len()..));
            }
        }
        Ok(record)
    }
}

/// Stdin, line by line, read on a thread of its own (blocking reads) and handed over
/// through a bounded channel.
fn read_lines() -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(READ_AHEAD_LINES);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            let item = match stdin.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => Ok(line),
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    rx
}

/// Drops a trailing `\n` or `\r\n`.
fn strip_line_ending(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

/// The first position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        assert_eq!(find(b"k::v::w", b"::"), Some(1));
        assert_eq!(find(b"kv", b":"), None);
        assert_eq!(find(b"kv", b""), None);
        let mut l = b"abc\r\n".to_vec();
        strip_line_ending(&mut l);
        assert_eq!(l, b"abc");
        let mut l = b"abc\r".to_vec();
        strip_line_ending(&mut l);
        assert_eq!(l, b"abc\r");
    }

    #[test]
    fn acks_parse() {
        assert_eq!(parse_acks("all"), Ok(Acks::All));
        assert_eq!(parse_acks("-1"), Ok(Acks::All));
        assert_eq!(parse_acks("0"), Ok(Acks::None));
        assert!(parse_acks("2").is_err());
    }
}
