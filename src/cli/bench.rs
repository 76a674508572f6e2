//! `strata bench produce | consume | e2e`: a load generator on the client crate, for
//! any Kafka-compatible broker (`--brokers`).
//!
//! - `produce`: `--producers` producers (each with connections of its own) send
//!   `--size`-byte records; latency is send → acknowledgement per record.
//! - `consume`: `--consumers` consumers read the topic from the beginning, its
//!   partitions split among them (each partition read by a partition consumer, on a
//!   connection of its own, as `strata consume` does); throughput only.
//! - `e2e`: both at once, consumers starting at the end of the log; latency is the
//!   record's age on arrival: now − the microsecond the producer was handed the record,
//!   which the first 8 bytes of each value carry (CreateTime, in milliseconds, for
//!   values shorter than that); the producer's clock is the consumer's.
//!
//! Runs stop after `--messages` records (default 1 000 000) or `--duration`. The topic
//! is created when absent and deleted afterwards with `--cleanup`. A progress bar on
//! stderr shows the current rate; stdout gets a table, or with `--json` exactly one
//! JSON object (see [`report`]).

mod load;
mod report;

use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::{Args, Subcommand};
use client::admin::NewTopic;
use client::consumer::{FetchConfig, Isolation, PartitionConsumer, StartOffset};
use client::error::TOPIC_ALREADY_EXISTS;
use client::offsets::{list_offset, LATEST_TIMESTAMP};
use client::{Acks, Admin, Producer, ProducerConfig, TransactionConfig, TransactionalProducer};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinSet;

use super::produce::{parse_acks, CompressionArg};
use super::topic::BrokersArg;
use super::Outcome;
use load::{
    Dating, Produced, ProducerPlan, ProducerStats, Progress, ReadLimit, ReaderStats, Sender,
    STAMP_BYTES,
};
use report::{Latency, Params, Report};

/// Records per run when neither `--messages` nor `--duration` is given.
const DEFAULT_MESSAGES: u64 = 1_000_000;
/// How long a new topic may take to appear in every broker's metadata (a cluster's
/// brokers apply the controller's records a moment after the one that answered).
const TOPIC_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the progress bar and the stop conditions are looked at.
const TICK: Duration = Duration::from_millis(100);
/// Readers give up when nothing new arrived for this long after the producers are done
/// (acks=0 loses records silently) or, in `consume`, at all.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a reader's fetch may wait at the broker: also how quickly it sees a stop.
const READ_MAX_WAIT: Duration = Duration::from_millis(100);
/// Largest `--size`: a record must fit the producer's request size with room to spare.
const MAX_VALUE_BYTES: usize = 900 * 1024;
/// Producer request size unless `--batch-bytes` needs more (Java's max.request.size).
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Produce records as fast as possible (or at --rate); latency is send → ack.
    Produce(BenchOptions),
    /// Read the topic from the beginning; throughput only.
    Consume(BenchOptions),
    /// Produce and consume at once; latency is a record's age when it is read.
    E2e(BenchOptions),
}

#[derive(Args, Clone)]
struct BenchOptions {
    #[command(flatten)]
    brokers: BrokersArg,
    /// Topic to use; created when absent.
    #[arg(long, default_value = "strata-bench")]
    topic: String,
    /// Partitions of the topic when it is created [default: the broker's].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    partitions: Option<i32>,
    /// Producer instances, each with connections of its own (produce, e2e).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    producers: u64,
    /// Consumers, among which the partitions are split (consume, e2e)
    /// [default: one per partition].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    consumers: Option<u64>,
    /// Records in total [default: 1000000 unless --duration].
    #[arg(long, value_name = "N", conflicts_with = "duration",
          value_parser = clap::value_parser!(u64).range(1..))]
    messages: Option<u64>,
    /// Run for this long instead: 30s, 500ms, 2m, or seconds.
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Record value size in bytes (no key). In e2e, a value's first 8 bytes carry the
    /// microsecond it was sent.
    #[arg(long, default_value_t = 100, value_name = "BYTES")]
    size: usize,
    /// Acknowledgement: 0, 1 or all (all enables idempotence).
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: Acks,
    /// Batch compression.
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    compression: CompressionArg,
    /// How long a batch waits for more records.
    #[arg(long, default_value_t = 5, value_name = "MS")]
    linger_ms: u64,
    /// Bytes per batch before it is sent while none of its partition is in flight (a
    /// batch waiting behind one in flight grows up to 1 MiB).
    #[arg(long, default_value_t = 16 * 1024, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024))]
    batch_bytes: u64,
    /// Total records per second, spread over the producers and paced (for latency at
    /// a fixed load) [default: as fast as possible].
    #[arg(long, value_name = "MSGS_PER_SEC", value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
    /// Produce in transactions, each producer committing every MS (acks=all; producer
    /// n has the transactional.id `strata-bench-<n>`) (produce, e2e). Latency is still
    /// send to acknowledgement.
    #[arg(long, value_name = "MS", conflicts_with = "rate",
          value_parser = clap::value_parser!(u64).range(1..))]
    transaction_ms: Option<u64>,
    /// The readers' isolation.level: read_committed or read_uncommitted (consume, e2e).
    #[arg(long, default_value = "read_uncommitted", value_name = "LEVEL",
          value_parser = super::consume::parse_isolation)]
    isolation: Isolation,
    /// Print exactly one JSON object on stdout, and no progress bar.
    #[arg(long)]
    json: bool,
    /// Delete the topic afterwards.
    #[arg(long)]
    cleanup: bool,
}

/// `30s`, `500ms`, `2m`, `1h`, or a number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("expected a duration such as 30s, 500ms or 2m, got {s:?}");
    let (number, unit_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000)
    } else {
        (s, 1000)
    };
    let n: u64 = number.trim().parse().map_err(|_| bad())?;
    let ms = n.checked_mul(unit_ms).ok_or_else(bad)?;
    if ms == 0 {
        return Err("the duration must be positive".into());
    }
    Ok(Duration::from_millis(ms))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Produce,
    Consume,
    E2e,
}

impl BenchArgs {
    pub fn run(self) -> Result<Outcome> {
        let (mode, options) = match self.command {
            BenchCommand::Produce(o) => (Mode::Produce, o),
            BenchCommand::Consume(o) => (Mode::Consume, o),
            BenchCommand::E2e(o) => (Mode::E2e, o),
        };
        options.check(mode)?;
        // Producer tasks, their background tasks and readers run in parallel.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let report = runtime.block_on(options.run(mode))?;
        let mut out = io::stdout().lock();
        if options.json {
            writeln!(out, "{}", report.json())?;
        } else {
            report.print_table(&mut out)?;
        }
        out.flush()?;
        if report.failed > 0 {
            bail!("{} of the records were not acknowledged", report.failed);
        }
        Ok(Outcome::Clean)
    }
}

impl BenchOptions {
    /// Flag combinations that cannot work, refused before connecting.
    fn check(&self, mode: Mode) -> Result<()> {
        if self.size > MAX_VALUE_BYTES {
            bail!(
                "--size {} is above the largest record size, {MAX_VALUE_BYTES} bytes",
                self.size
            );
        }
        if mode == Mode::Consume && self.rate.is_some() {
            bail!("--rate paces producers; `bench consume` does not produce");
        }
        if mode == Mode::Produce && self.consumers.is_some() {
            bail!(
                "--consumers is for `bench consume` and `bench e2e`; `bench produce` does not read"
            );
        }
        if let Some(rate) = self.rate.filter(|r| *r < self.producers) {
            bail!(
                "--rate {rate} is below one record per second per producer ({} producers)",
                self.producers
            );
        }
        Ok(())
    }

    /// Records to produce, or for `consume` to read (`None`: until `--duration`, or
    /// for `consume`, what the topic holds now).
    fn messages_target(&self, mode: Mode) -> Option<u64> {
        match (self.messages, self.duration) {
            (None, _) if mode == Mode::Consume => None,
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_MESSAGES),
        }
    }

    fn producer_config(&self) -> ProducerConfig {
        let batch_bytes = usize::try_from(self.batch_bytes).unwrap_or(usize::MAX);
        let max_request_bytes = MAX_REQUEST_BYTES.max(batch_bytes.saturating_add(64 * 1024));
        let defaults = ProducerConfig::default();
        ProducerConfig {
            acks: self.acks,
            idempotent: self.acks == Acks::All,
            linger: Duration::from_millis(self.linger_ms),
            batch_size_bytes: batch_bytes,
            max_request_bytes,
            buffer_bytes: defaults
                .buffer_bytes
                .max(max_request_bytes.saturating_mul(2)),
            compression: self.compression.into(),
            allow_auto_create_topics: false,
            ..defaults
        }
    }

    async fn run(&self, mode: Mode) -> Result<Report> {
        let cluster = self.brokers.connect().await?;
        let admin = Admin::new(Arc::clone(&cluster));
        let partitions = self.ensure_topic(&admin, mode).await?;
        let consumers = match mode {
            Mode::Produce => 0,
            _ => {
                let n = self.consumers.unwrap_or(partitions as u64);
                if n > partitions as u64 {
                    bail!(
                        "--consumers {n} exceeds the {partitions} partitions of {}: each \
                         partition is read by one consumer",
                        self.topic
                    );
                }
                n as usize
            }
        };
        let params = Params {
            topic: self.topic.clone(),
            partitions,
            producers: if mode == Mode::Consume {
                0
            } else {
                self.producers as usize
            },
            consumers,
            value_bytes: self.size,
            acks: match self.acks {
                Acks::None => "0",
                Acks::Leader => "1",
                Acks::All => "all",
            },
            compression: compression_name(self.compression),
            linger_ms: self.linger_ms,
            batch_bytes: self.batch_bytes as usize,
            rate_msgs_per_sec: self.rate,
            transaction_ms: self.transaction_ms,
            isolation: match self.isolation {
                Isolation::ReadCommitted => "read_committed",
                Isolation::ReadUncommitted => "read_uncommitted",
            },
            messages: self.messages_target(mode),
            duration: self.duration,
        };
        let result = match mode {
            Mode::Produce => self.run_produce(params).await,
            Mode::Consume => self.run_consume(params).await,
            Mode::E2e => self.run_e2e(params).await,
        };
        if self.cleanup {
            let deleted = admin
                .delete_topic(&self.topic)
                .await
                .with_context(|| format!("deleting topic {}", self.topic));
            if result.is_ok() {
                deleted?;
            }
        }
        result
    }

    /// The topic's partition count, creating the topic first when it does not exist.
    async fn ensure_topic(&self, admin: &Admin, mode: Mode) -> Result<i32> {
        let cluster = admin.cluster();
        let metadata = cluster
            .refresh_metadata(Some(std::slice::from_ref(&self.topic)), false)
            .await?;
        match metadata.partition_count(&self.topic) {
            Ok(count) => {
                if let Some(asked) = self.partitions.filter(|n| *n != count) {
                    // Not fatal: the figures say which count they ran with.
                    let _ = writeln!(
                        io::stderr(),
                        "strata: topic {} exists with {count} partitions; --partitions \
                         {asked} applies only when the topic is created",
                        self.topic
                    );
                }
                return Ok(count);
            }
            Err(client::Error::UnknownTopic { .. }) if mode != Mode::Consume => {}
            Err(client::Error::UnknownTopic { .. }) => {
                bail!("topic {} does not exist: nothing to consume", self.topic)
            }
            Err(e) => return Err(e.into()),
        }
        let topic = NewTopic {
            name: self.topic.clone(),
            partitions: self.partitions.unwrap_or(-1),
            replication_factor: -1,
            configs: Vec::new(),
        };
        match admin.create_topic(&topic).await {
            Ok(()) => {}
            // Someone else created it meanwhile: use it.
            Err(e) if e.kafka_code().is_some_and(|c| c == TOPIC_ALREADY_EXISTS) => {}
            Err(e) => return Err(anyhow!(e).context(format!("creating topic {}", self.topic))),
        }
        // In a cluster the other brokers learn of the topic a moment after the one that
        // created it answered, and its partitions elect leaders: ask until every
        // partition has one (as Kafka clients wait for metadata to propagate).
        let deadline = Instant::now() + TOPIC_PROPAGATION_TIMEOUT;
        loop {
            let metadata = cluster
                .refresh_metadata(Some(std::slice::from_ref(&self.topic)), false)
                .await;
            let ready = metadata.map(|m| {
                // Usable once every partition has a leader.
                let count = m.partition_count(&self.topic)?;
                (0..count)
                    .try_for_each(|p| m.leader(&self.topic, p).map(|_| ()))
                    .map(|()| count)
            });
            match ready {
                Ok(Ok(count)) => return Ok(count),
                Ok(Err(e)) if Instant::now() >= deadline => return Err(e.into()),
                Err(e) if Instant::now() >= deadline => return Err(e.into()),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Starts the producers (each connected and ready) as tasks of `set`.
    async fn start_producers(
        &self,
        progress: &Arc<Progress>,
        stamp_values: bool,
        set: &mut JoinSet<Result<ProducerStats>>,
    ) -> Result<Instant> {
        let total = self.messages_target(Mode::Produce);
        let n = self.producers;
        let mut producers = Vec::new();
        for i in 0..n {
            producers.push(self.producer(i).await?);
        }
        let value = Bytes::from(vec![b'x'; self.size]);
        let start = Instant::now();
        let deadline = self.duration.and_then(|d| start.checked_add(d));
        for (i, producer) in (0..n).zip(producers) {
            // The first `total % n` producers send one record more.
            let messages = total.map(|t| t / n + u64::from(i < t % n));
            let plan = ProducerPlan {
                topic: self.topic.as_str().into(),
                value: value.clone(),
                messages,
                deadline,
                rate_per_sec: self.rate.map(|r| r as f64 / n as f64),
                start,
                stamp_values,
            };
            let progress = Arc::clone(progress);
            match producer {
                Sender::Plain(p) => set.spawn(load::produce(p, plan, progress)),
                Sender::Transactional(p, every) => {
                    set.spawn(load::produce_transactional(*p, plan, every, progress))
                }
            };
        }
        Ok(start)
    }

    /// Producer `i`, connected and ready: transactional with `--transaction-ms`.
    async fn producer(&self, i: u64) -> Result<Sender> {
        let cluster = self.brokers.connect().await?;
        let config = self.producer_config();
        Ok(match self.transaction_ms {
            None => Sender::Plain(
                Producer::new(cluster, config)
                    .await
                    .context("starting a producer")?,
            ),
            Some(ms) => {
                let txn = TransactionConfig::new(format!("strata-bench-{i}"));
                let p = TransactionalProducer::new(cluster, config, txn)
                    .await
                    .context("starting a transactional producer")?;
                Sender::Transactional(Box::new(p), Duration::from_millis(ms))
            }
        })
    }

    async fn run_produce(&self, params: Params) -> Result<Report> {
        let progress = Arc::new(Progress::default());
        let mut bar = self.progress_bar(Mode::Produce);
        let mut producers = JoinSet::new();
        let start = self
            .start_producers(&progress, false, &mut producers)
            .await?;
        let mut stats = Vec::new();
        let mut tick = tokio::time::interval(TICK);
        while !producers.is_empty() {
            tokio::select! {
                Some(joined) = producers.join_next() => stats.push(joined??),
                _ = tick.tick() => bar.show(progress.acked.load(Ordering::Relaxed)),
            }
        }
        bar.finish_and_clear();
        let produced = Produced::sum(stats)?;
        Ok(Report {
            mode: "produce",
            params,
            messages: produced.acked,
            value_bytes: produced.acked * self.size as u64,
            failed: produced.failed,
            elapsed: produced
                .last_ack
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(start)),
            latency: Some(Latency {
                kind: "send_to_ack",
                histogram: produced.latency,
            }),
            produce_latency: None,
        })
    }

    /// Starts readers of every partition, `consumers` consumers sharing them out.
    async fn start_readers(
        &self,
        partitions: i32,
        consumers: usize,
        how: Reading<'_>,
        set: &mut JoinSet<client::Result<ReaderStats>>,
    ) -> Result<()> {
        let config = FetchConfig {
            max_wait: READ_MAX_WAIT,
            isolation: self.isolation,
            ..FetchConfig::default()
        };
        for c in 0..consumers {
            let cluster = self.brokers.connect().await?;
            for p in (0..partitions).filter(|p| *p as usize % consumers == c) {
                let consumer = PartitionConsumer::new(
                    Arc::clone(&cluster),
                    &self.topic,
                    p,
                    how.start,
                    config.clone(),
                )
                .await
                .with_context(|| format!("starting to read {}-{p}", self.topic))?;
                // Without a count or a time, `consume` reads what is there now.
                let end = if how.start == StartOffset::Earliest
                    && self.messages.is_none()
                    && self.duration.is_none()
                {
                    Some(
                        list_offset(&cluster, &self.topic, p, LATEST_TIMESTAMP)
                            .await?
                            .offset,
                    )
                } else {
                    None
                };
                set.spawn(load::read_partition(
                    consumer,
                    end,
                    how.dating,
                    Arc::clone(how.limit),
                    Arc::clone(how.progress),
                ));
            }
        }
        Ok(())
    }

    async fn run_consume(&self, params: Params) -> Result<Report> {
        let progress = Arc::new(Progress::default());
        let start = Instant::now();
        let limit = Arc::new(ReadLimit::new(
            self.messages,
            self.duration.and_then(|d| start.checked_add(d)),
        ));
        let mut readers = JoinSet::new();
        let mut bar = self.progress_bar(Mode::Consume);
        self.start_readers(
            params.partitions,
            params.consumers,
            Reading {
                start: StartOffset::Earliest,
                dating: Dating::Untimed,
                limit: &limit,
                progress: &progress,
            },
            &mut readers,
        )
        .await?;
        let (read, _) = self
            .wait_for_readers(&mut readers, JoinSet::new(), &limit, &progress, &mut bar)
            .await?;
        bar.finish_and_clear();
        if let Some(n) = self.messages {
            // (--messages excludes --duration: only idleness stops readers short.)
            if read.records < n {
                bail!(
                    "only {} of {n} records arrived (nothing new for {IDLE_TIMEOUT:?})",
                    read.records
                );
            }
        }
        Ok(Report {
            mode: "consume",
            params,
            messages: read.records,
            value_bytes: read.value_bytes,
            failed: 0,
            elapsed: read
                .last_read
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(start)),
            latency: None,
            produce_latency: None,
        })
    }

    async fn run_e2e(&self, params: Params) -> Result<Report> {
        let progress = Arc::new(Progress::default());
        let limit = Arc::new(ReadLimit::new(self.messages_target(Mode::E2e), None));
        let mut readers = JoinSet::new();
        let mut bar = self.progress_bar(Mode::E2e);
        let stamp_values = self.size >= STAMP_BYTES;
        let dating = if stamp_values {
            Dating::ValueStamp
        } else {
            Dating::CreateTime
        };
        // Readers are positioned at the end before the first record is sent.
        self.start_readers(
            params.partitions,
            params.consumers,
            Reading {
                start: StartOffset::Latest,
                dating,
                limit: &limit,
                progress: &progress,
            },
            &mut readers,
        )
        .await?;
        let mut producers = JoinSet::new();
        let start = self
            .start_producers(&progress, stamp_values, &mut producers)
            .await?;
        let (read, stats) = self
            .wait_for_readers(&mut readers, producers, &limit, &progress, &mut bar)
            .await?;
        bar.finish_and_clear();
        let produced = Produced::sum(stats)?;
        if read.records < produced.acked {
            bail!(
                "only {} of the {} acknowledged records arrived (nothing new for {IDLE_TIMEOUT:?})",
                read.records,
                produced.acked
            );
        }
        Ok(Report {
            mode: "e2e",
            params,
            messages: read.records,
            value_bytes: read.value_bytes,
            failed: produced.failed,
            elapsed: read
                .last_read
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(start)),
            latency: Some(Latency {
                kind: "end_to_end",
                histogram: read.latency,
            }),
            produce_latency: Some(Latency {
                kind: "send_to_ack",
                histogram: produced.latency,
            }),
        })
    }

    /// Waits for the readers and the producers, driving the progress bar. Once the
    /// producers are done, the readers' target becomes what was acknowledged (with
    /// acks=0: sent); once nothing new arrived for [`IDLE_TIMEOUT`] with no producer
    /// left, the readers are stopped.
    async fn wait_for_readers(
        &self,
        readers: &mut JoinSet<client::Result<ReaderStats>>,
        mut producers: JoinSet<Result<ProducerStats>>,
        limit: &ReadLimit,
        progress: &Progress,
        bar: &mut RateBar,
    ) -> Result<(ReaderStats, Vec<ProducerStats>)> {
        let mut total = ReaderStats::new();
        let mut produced = Vec::new();
        let mut tick = tokio::time::interval(TICK);
        let mut last_count = 0;
        let mut last_change = Instant::now();
        while !readers.is_empty() {
            tokio::select! {
                Some(joined) = producers.join_next(), if !producers.is_empty() => {
                    produced.push(joined??);
                    if producers.is_empty() {
                        // Every settler has added its last acknowledgement.
                        let acked = progress.acked.load(Ordering::Relaxed);
                        limit.target.fetch_min(acked, Ordering::Relaxed);
                    }
                }
                Some(joined) = readers.join_next() => {
                    match joined? {
                        Ok(stats) => total.absorb(&stats),
                        Err(e) => {
                            limit.stop.store(true, Ordering::Relaxed);
                            return Err(anyhow!(e).context(format!("reading {}", self.topic)));
                        }
                    }
                }
                _ = tick.tick() => {
                    let read = progress.read.load(Ordering::Relaxed);
                    bar.show(read);
                    if read != last_count {
                        last_count = read;
                        last_change = Instant::now();
                    }
                    if producers.is_empty() && last_change.elapsed() >= IDLE_TIMEOUT {
                        limit.stop.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
        while let Some(joined) = producers.join_next().await {
            produced.push(joined??);
        }
        Ok((total, produced))
    }

    /// A bar of records done and the current rate on stderr; hidden with `--json`
    /// (and by indicatif when stderr is not a terminal).
    fn progress_bar(&self, mode: Mode) -> RateBar {
        let target = if self.json {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let length = self.messages_target(mode);
        let bar = ProgressBar::with_draw_target(length, target);
        let template = if length.is_some() {
            "{prefix} {wide_bar} {human_pos}/{human_len} msgs  {msg}  [{elapsed}]"
        } else {
            "{prefix} {spinner} {human_pos} msgs  {msg}  [{elapsed}]"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_prefix(match mode {
            Mode::Produce => "produce",
            Mode::Consume => "consume",
            Mode::E2e => "e2e",
        });
        RateBar {
            bar,
            last_count: 0,
            last_at: Instant::now(),
        }
    }
}

/// A progress bar whose message is the rate since the previous update.
struct RateBar {
    bar: ProgressBar,
    last_count: u64,
    last_at: Instant,
}

impl RateBar {
    fn show(&mut self, count: u64) {
        self.bar.set_position(count);
        let now = Instant::now();
        let secs = now.saturating_duration_since(self.last_at).as_secs_f64();
        if secs > 0.0 {
            let rate = count.saturating_sub(self.last_count) as f64 / secs;
            self.bar.set_message(format!("{:.0} msgs/s", rate));
        }
        self.last_count = count;
        self.last_at = now;
    }

    fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
    }
}

fn compression_name(c: CompressionArg) -> &'static str {
    match c {
        CompressionArg::None => "none",
        CompressionArg::Gzip => "gzip",
        CompressionArg::Snappy => "snappy",
        CompressionArg::Lz4 => "lz4",
        CompressionArg::Zstd => "zstd",
    }
}

/// Where readers start and what they share.
struct Reading<'a> {
    start: StartOffset,
    /// How to measure each record's age on arrival (e2e).
    dating: Dating,
    limit: &'a Arc<ReadLimit>,
    progress: &'a Arc<Progress>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }
}
