//! The load: producer tasks that send fixed-size records as fast as the producer takes
//! them (or paced to a rate), and partition readers that count what they read and,
//! in e2e runs, how old each record is when it arrives.
//!
//! Per record, the producer side allocates only what the client's API requires (the
//! `Delivery` channel; the topic is one shared `Arc<str>`): every record's value
//! is one shared `Bytes` (a reference count, no copy), and the record timestamp is
//! stamped by the producer (CreateTime). In e2e runs each value is a copy instead, whose
//! first 8 bytes carry the microsecond it was handed to the producer ([`Dating`]):
//! CreateTime has millisecond resolution, too coarse for millisecond latencies. Send and
//! acknowledgement times come from a
//! [`CoarseClock`]: read after every wait and otherwise once per
//! [`CLOCK_REUSE_RECORDS`] records, so a time is late by at most the few microseconds
//! that many records take without waiting (the clock was ~10 % of the client's CPU when
//! read per record).

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use client::consumer::PartitionConsumer;
use client::{Delivery, Producer, ProducerRecord, TransactionalProducer, TryEnqueueError};
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};

use super::report::{latency_histogram, merge};

/// Deliveries that may wait between a producer task and its settler: bounds the
/// settler's lag behind the producer (the producer's `buffer_bytes` bounds the rest).
const SETTLE_QUEUE_RECORDS: usize = 64 * 1024;
/// Records counted locally before they are added to the shared progress counter.
const PROGRESS_FLUSH_RECORDS: u64 = 256;
/// Records that may share one clock reading when nothing waited in between.
const CLOCK_REUSE_RECORDS: u32 = 64;
/// How early a paced producer may hand a record over. tokio's timers fire on 1 ms ticks,
/// so sleeping until a record's exact send time wakes up to 1 ms late, and every record
/// would carry the pacer's own lateness in its latency. The producer sleeps until this
/// long before the send time instead and hands the record over on waking; the average
/// rate is the same, records leave at most this much early, and latency counts from the
/// hand-over (or from the send time, when the producer is behind its schedule).
const PACING_LEAD: Duration = Duration::from_millis(1);
/// Bytes of a value that carry its hand-over time (a little-endian `i64` of
/// microseconds since the Unix epoch) when the values are stamped.
pub const STAMP_BYTES: usize = 8;

/// How a reader dates a record to measure its age on arrival (e2e).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dating {
    /// Not measured (consume).
    Untimed,
    /// The record's CreateTime: millisecond resolution, so an age reads 0–1 ms high
    /// (0.5 ms on average). Used when values are too short to carry a stamp.
    CreateTime,
    /// The first [`STAMP_BYTES`] of the value: microsecond resolution.
    ValueStamp,
}

/// Microseconds since the Unix epoch at `t`, on one mapping per process from the
/// monotonic clock to the wall clock, so stamps and arrivals are on the same clock.
fn unix_micros_at(t: Instant) -> i64 {
    static ORIGIN: std::sync::OnceLock<(Instant, i64)> = std::sync::OnceLock::new();
    let (origin, origin_us) = *ORIGIN.get_or_init(|| (Instant::now(), unix_micros()));
    let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    match t.checked_duration_since(origin) {
        Some(after) => origin_us.saturating_add(micros(after)),
        None => origin_us.saturating_sub(micros(origin.saturating_duration_since(t))),
    }
}

/// A copy of `template` whose first [`STAMP_BYTES`] are `unix_us`.
fn stamped(template: &Bytes, unix_us: i64) -> Bytes {
    let mut value = template.to_vec();
    if let Some(head) = value.get_mut(..STAMP_BYTES) {
        head.copy_from_slice(&unix_us.to_le_bytes());
    }
    Bytes::from(value)
}

/// The stamp a value carries, if it is long enough to carry one.
fn stamp_of(value: &[u8]) -> Option<i64> {
    let head: [u8; STAMP_BYTES] = value.get(..STAMP_BYTES)?.try_into().ok()?;
    Some(i64::from_le_bytes(head))
}

/// A clock read lazily: [`CoarseClock::now`] returns the last reading for up to
/// [`CLOCK_REUSE_RECORDS`] calls; callers [`CoarseClock::refresh`] it after any wait.
struct CoarseClock {
    now: Instant,
    uses: u32,
}

impl CoarseClock {
    fn new() -> CoarseClock {
        CoarseClock {
            now: Instant::now(),
            uses: 0,
        }
    }

    fn now(&mut self) -> Instant {
        if self.uses >= CLOCK_REUSE_RECORDS {
            return self.refresh();
        }
        self.uses += 1;
        self.now
    }

    fn refresh(&mut self) -> Instant {
        self.now = Instant::now();
        self.uses = 0;
        self.now
    }
}

/// Awaits `future`, telling whether it had to wait (was not ready when first polled).
async fn await_noting_wait<F: Future>(future: F) -> (F::Output, bool) {
    let mut future = pin!(future);
    match poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await {
        Poll::Ready(output) => (output, false),
        Poll::Pending => (future.await, true),
    }
}

/// Counters the progress bar and the stop logic read while tasks run.
#[derive(Debug, Default)]
pub struct Progress {
    /// Records acknowledged by the broker (produce side).
    pub acked: AtomicU64,
    /// Records read (consume side).
    pub read: AtomicU64,
}

/// What one producer task does.
pub struct ProducerPlan {
    pub topic: Arc<str>,
    /// The value of every record.
    pub value: Bytes,
    /// Records to send; `None` sends until `deadline`.
    pub messages: Option<u64>,
    pub deadline: Option<Instant>,
    /// Records per second this task sends; `None` sends as fast as possible.
    pub rate_per_sec: Option<f64>,
    /// When the run started: the origin of the pacing schedule.
    pub start: Instant,
    /// Whether each value carries its hand-over time ([`Dating::ValueStamp`]).
    pub stamp_values: bool,
}

/// What one producer task measured.
pub struct ProducerStats {
    pub acked: u64,
    pub failed: u64,
    pub first_error: Option<client::Error>,
    /// Send (or, when paced, the scheduled send time) → acknowledgement, per record.
    pub latency: Histogram<u64>,
    pub last_ack: Option<Instant>,
}

/// Sends `plan`'s records through `producer`, then closes it. Latency is measured per
/// record from the moment it is handed to the producer to the moment its `Delivery`
/// resolves: every record of a batch shares the batch's acknowledgement, so a record's
/// latency includes its wait in the batch (linger). When paced (`--rate`), latency
/// starts at the scheduled send time if that is earlier than the hand-over, so a
/// producer that falls behind its schedule shows it in the latency instead of hiding it
/// (no coordinated omission); records leave up to [`PACING_LEAD`] early otherwise.
pub async fn produce(
    producer: Producer,
    plan: ProducerPlan,
    progress: Arc<Progress>,
) -> anyhow::Result<ProducerStats> {
    let (tx, rx) = mpsc::channel(SETTLE_QUEUE_RECORDS);
    let settler = tokio::spawn(settle(rx, Arc::clone(&progress)));
    let mut sent = 0u64;
    let mut send_error = None;
    let mut clock = CoarseClock::new();
    loop {
        if plan.messages.is_some_and(|n| sent >= n) {
            break;
        }
        let now = clock.now();
        let scheduled = plan.send_time(sent, now);
        // The deadline is wall-clock time: a producer behind its schedule stops there
        // too, and the report shows the rate it reached.
        if plan.deadline.is_some_and(|d| now.max(scheduled) >= d) {
            break;
        }
        let now = match scheduled.checked_sub(PACING_LEAD) {
            Some(wake) if wake > now => {
                tokio::time::sleep_until(wake.into()).await;
                clock.refresh()
            }
            _ => now,
        };
        // The hand-over, or the send time when the producer is behind it.
        let handed = now.min(scheduled);
        // The waiting paths only when needed: their futures are what a record costs most
        // to move around.
        let delivery = match producer.try_enqueue(plan.record(handed)) {
            Ok(d) => d,
            Err(refused) => match enqueue_refused(&producer, refused, &mut clock).await {
                Ok(d) => d,
                Err(e) => {
                    send_error = Some(e);
                    break;
                }
            },
        };
        if let Err(refused) = tx.try_send((handed, delivery)) {
            if !pass_refused(&tx, refused, &mut clock).await {
                break;
            }
        }
        sent += 1;
    }
    drop(tx);
    let closed = producer.close().await;
    let mut stats = settler.await?;
    if let Some(e) = send_error.or(closed.err()) {
        stats.first_error.get_or_insert(e);
    }
    Ok(stats)
}

/// As [`produce`] (unpaced), in transactions: `producer` commits every `interval` and
/// at the end. A record counts once acknowledged, as there; a failed commit ends the
/// task with its error.
pub async fn produce_transactional(
    mut producer: TransactionalProducer,
    plan: ProducerPlan,
    interval: Duration,
    progress: Arc<Progress>,
) -> anyhow::Result<ProducerStats> {
    let (tx, rx) = mpsc::channel(SETTLE_QUEUE_RECORDS);
    let settler = tokio::spawn(settle(rx, Arc::clone(&progress)));
    let mut clock = CoarseClock::new();
    let sent: client::Result<()> = async {
        let mut sent = 0u64;
        let mut began = clock.refresh();
        producer.begin()?;
        while plan.messages.is_none_or(|n| sent < n) {
            let now = clock.now();
            if plan.deadline.is_some_and(|d| now >= d) {
                break;
            }
            if now.saturating_duration_since(began) >= interval {
                producer.commit().await?;
                producer.begin()?;
                began = clock.refresh();
            }
            let delivery = producer.send(plan.record(now)).await?;
            if let Err(refused) = tx.try_send((now, delivery)) {
                if !pass_refused(&tx, refused, &mut clock).await {
                    break;
                }
            }
            sent += 1;
        }
        producer.commit().await
    }
    .await;
    drop(tx);
    let closed = producer.close().await;
    let mut stats = settler.await?;
    if let Some(e) = sent.err().or(closed.err()) {
        stats.first_error.get_or_insert(e);
    }
    Ok(stats)
}

impl ProducerPlan {
    /// When the record after `sent` others is due: on the pacing schedule when paced,
    /// else `now`.
    fn send_time(&self, sent: u64, now: Instant) -> Instant {
        match self.rate_per_sec {
            // `as` saturates, and the sum saturates far in the future: no overflow.
            Some(rate) => {
                let offset = Duration::from_nanos((sent as f64 * 1e9 / rate) as u64);
                self.start.checked_add(offset).unwrap_or(now)
            }
            None => now,
        }
    }

    /// The record handed over at `handed`: the plan's value, stamped with that time
    /// when values carry one.
    fn record(&self, handed: Instant) -> ProducerRecord {
        let value = if self.stamp_values {
            stamped(&self.value, unix_micros_at(handed))
        } else {
            self.value.clone()
        };
        ProducerRecord {
            topic: Arc::clone(&self.topic),
            value: Some(value),
            ..ProducerRecord::default()
        }
    }
}

/// Enqueues a record the producer refused without waiting: waits for room if its
/// queue was full (refreshing the clock after the wait), fails if it is closed.
async fn enqueue_refused(
    producer: &Producer,
    refused: TryEnqueueError,
    clock: &mut CoarseClock,
) -> client::Result<Delivery> {
    match refused {
        TryEnqueueError::Full(record) => {
            let enqueued = producer.enqueue(*record).await;
            clock.refresh();
            enqueued
        }
        TryEnqueueError::Closed => Err(client::Error::ProducerClosed),
    }
}

/// Passes the settler a delivery its queue refused without waiting: waits for room if
/// the queue was full (refreshing the clock after the wait). False once the settler
/// is gone.
async fn pass_refused(
    tx: &mpsc::Sender<(Instant, Delivery)>,
    refused: TrySendError<(Instant, Delivery)>,
    clock: &mut CoarseClock,
) -> bool {
    match refused {
        TrySendError::Full(item) => {
            if tx.send(item).await.is_err() {
                return false;
            }
            clock.refresh();
            true
        }
        TrySendError::Closed(_) => false,
    }
}

/// Awaits deliveries in the order they were sent. Records of one request are answered
/// together, so waiting in order delays no measurement by more than the requests in
/// flight ahead of it (up to the producer's `max_in_flight_requests` per broker).
async fn settle(
    mut rx: mpsc::Receiver<(Instant, Delivery)>,
    progress: Arc<Progress>,
) -> ProducerStats {
    let mut stats = ProducerStats {
        acked: 0,
        failed: 0,
        first_error: None,
        latency: latency_histogram(),
        last_ack: None,
    };
    let mut unreported = 0u64;
    let mut clock = CoarseClock::new();
    loop {
        let (next, waited_for_send) = match rx.try_recv() {
            Ok(next) => (Some(next), false),
            Err(TryRecvError::Empty) => (rx.recv().await, true),
            Err(TryRecvError::Disconnected) => (None, false),
        };
        let Some((sent_at, delivery)) = next else {
            break;
        };
        // The records of a request resolve at once: only the first of them waits.
        let (outcome, waited) = await_noting_wait(delivery).await;
        let now = if waited || waited_for_send {
            clock.refresh()
        } else {
            clock.now()
        };
        match outcome {
            Ok(_) => {
                let us = now.saturating_duration_since(sent_at).as_micros();
                stats
                    .latency
                    .saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
                stats.acked += 1;
                stats.last_ack = Some(now);
                unreported += 1;
                if unreported >= PROGRESS_FLUSH_RECORDS {
                    progress.acked.fetch_add(unreported, Ordering::Relaxed);
                    unreported = 0;
                }
            }
            Err(e) => {
                stats.failed += 1;
                stats.first_error.get_or_insert(e);
            }
        }
    }
    progress.acked.fetch_add(unreported, Ordering::Relaxed);
    stats
}

/// A producer of the load: plain (idempotent with acks=all), or transactional and
/// committing at an interval.
pub enum Sender {
    Plain(Producer),
    Transactional(Box<TransactionalProducer>, Duration),
}

/// The producers' results added up.
pub struct Produced {
    pub acked: u64,
    pub failed: u64,
    pub latency: Histogram<u64>,
    pub last_ack: Option<Instant>,
}

impl Produced {
    /// Adds up `stats`; a producer that failed without a record acknowledged makes the
    /// run fail with its error.
    pub fn sum(stats: Vec<ProducerStats>) -> anyhow::Result<Produced> {
        let mut total = Produced {
            acked: 0,
            failed: 0,
            latency: latency_histogram(),
            last_ack: None,
        };
        let mut first_error = None;
        for s in stats {
            total.acked += s.acked;
            total.failed += s.failed;
            merge(&mut total.latency, &s.latency);
            total.last_ack = total.last_ack.max(s.last_ack);
            if first_error.is_none() {
                first_error = s.first_error;
            }
        }
        match first_error {
            Some(e) if total.acked == 0 => {
                Err(anyhow::anyhow!(e).context("no record was acknowledged"))
            }
            Some(e) if total.failed == 0 => Err(anyhow::anyhow!(e).context("a producer failed")),
            _ => Ok(total),
        }
    }
}

/// When readers stop; shared by all of them and set by the run's coordinator.
#[derive(Debug)]
pub struct ReadLimit {
    /// Stop once this many records were read in total (`u64::MAX`: not yet known).
    pub target: AtomicU64,
    pub deadline: Option<Instant>,
    /// Set to stop every reader at its next poll.
    pub stop: AtomicBool,
}

impl ReadLimit {
    pub fn new(target: Option<u64>, deadline: Option<Instant>) -> ReadLimit {
        ReadLimit {
            target: AtomicU64::new(target.unwrap_or(u64::MAX)),
            deadline,
            stop: AtomicBool::new(false),
        }
    }

    fn reached(&self, progress: &Progress) -> bool {
        self.stop.load(Ordering::Relaxed)
            || progress.read.load(Ordering::Relaxed) >= self.target.load(Ordering::Relaxed)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// What one partition reader measured.
pub struct ReaderStats {
    pub records: u64,
    pub value_bytes: u64,
    /// Record timestamp → arrival, per record (e2e only).
    pub latency: Histogram<u64>,
    pub last_read: Option<Instant>,
}

impl ReaderStats {
    pub fn new() -> ReaderStats {
        ReaderStats {
            records: 0,
            value_bytes: 0,
            latency: latency_histogram(),
            last_read: None,
        }
    }

    pub fn absorb(&mut self, other: &ReaderStats) {
        self.records += other.records;
        self.value_bytes += other.value_bytes;
        merge(&mut self.latency, &other.latency);
        self.last_read = self.last_read.max(other.last_read);
    }
}

/// Reads one partition until `limit` says stop or the position reaches `end` (an
/// offset known at the start), recording each record's age on arrival as `dating`
/// says.
pub async fn read_partition(
    mut consumer: PartitionConsumer,
    end: Option<i64>,
    dating: Dating,
    limit: Arc<ReadLimit>,
    progress: Arc<Progress>,
) -> client::Result<ReaderStats> {
    let mut stats = ReaderStats::new();
    while !limit.reached(&progress) && end.is_none_or(|end| consumer.position() < end) {
        let records = consumer.poll().await?;
        if records.is_empty() {
            continue;
        }
        // Count no more than the target: the last fetches may bring more.
        let fetched = records.len() as u64;
        let before = progress.read.fetch_add(fetched, Ordering::Relaxed);
        let n = fetched.min(limit.target.load(Ordering::Relaxed).saturating_sub(before));
        let now = Instant::now();
        let now_us = unix_micros_at(now);
        for r in records
            .iter()
            .take(usize::try_from(n).unwrap_or(usize::MAX))
        {
            stats.value_bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
            let born_us = match dating {
                Dating::Untimed => continue,
                Dating::ValueStamp => r.value.as_deref().and_then(stamp_of),
                Dating::CreateTime => None,
            }
            .unwrap_or_else(|| r.timestamp_ms.saturating_mul(1000));
            let age_us = now_us.saturating_sub(born_us);
            stats
                .latency
                .saturating_record(u64::try_from(age_us).unwrap_or(0));
        }
        if n > 0 {
            stats.records += n;
            stats.last_read = Some(now);
        }
    }
    Ok(stats)
}

fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_and_short_values_carry_none() {
        let template = Bytes::from(vec![b'x'; 100]);
        let value = stamped(&template, 1_764_750_000_123_456);
        assert_eq!(value.len(), 100);
        assert_eq!(stamp_of(&value), Some(1_764_750_000_123_456));
        assert!(value[STAMP_BYTES..].iter().all(|b| *b == b'x'));
        assert_eq!(stamp_of(b"short"), None);
    }

    #[test]
    fn stamps_follow_the_monotonic_clock_in_microseconds() {
        let t = Instant::now();
        let later = t + Duration::from_micros(1500);
        // (Each side rounds down to a microsecond.)
        let apart = unix_micros_at(later) - unix_micros_at(t);
        assert!((1499..=1500).contains(&apart), "{apart}");
        let earlier = t.checked_sub(Duration::from_millis(3)).unwrap_or(t);
        assert!(unix_micros_at(earlier) <= unix_micros_at(t));
        // Close to the wall clock (one mapping per process, taken at first use).
        assert!((unix_micros_at(Instant::now()) - unix_micros()).abs() < 1_000_000);
    }
}
