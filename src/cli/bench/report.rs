//! What a benchmark run measured, and how it is shown: a table for people, or exactly
//! one JSON object (`--json`) for scripts.
//!
//! Latencies are kept in HDR histograms of microseconds (3 significant digits, up to
//! an hour) and shown in milliseconds. MB is 10^6 bytes of record values (keys,
//! headers and batch framing are not counted).

use std::io::{self, Write};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::super::json::JsonObject;
use super::super::table::Table;

/// Highest latency a histogram holds; longer ones are recorded as this.
const LATENCY_MAX_US: u64 = 3_600_000_000;
/// Significant decimal digits kept per recorded latency.
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// A latency histogram in microseconds.
pub fn latency_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low ≥ 1, high ≥ 2 low,
    // 3 digits), so creation cannot fail.
    Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// Adds `from` into `into`. Both come from [`latency_histogram`], so the bounds match
/// and adding cannot fail.
pub fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    into.add(from)
        .expect("histograms with identical bounds always add");
}

/// The settings a run used, echoed in the report so a figure carries its conditions.
#[derive(Debug, Clone)]
pub struct Params {
    pub topic: String,
    pub partitions: i32,
    pub producers: usize,
    pub consumers: usize,
    pub value_bytes: usize,
    pub acks: &'static str,
    pub compression: &'static str,
    pub linger_ms: u64,
    pub batch_bytes: usize,
    pub rate_msgs_per_sec: Option<u64>,
    /// Producers commit a transaction this often (`None`: no transactions).
    pub transaction_ms: Option<u64>,
    /// The readers' isolation level, as Kafka names it.
    pub isolation: &'static str,
    pub messages: Option<u64>,
    pub duration: Option<Duration>,
}

/// One latency series and what it measures.
pub struct Latency {
    /// Short name for tables and JSON: `send_to_ack` or `end_to_end`.
    pub kind: &'static str,
    pub histogram: Histogram<u64>,
}

/// The outcome of one run.
pub struct Report {
    pub mode: &'static str,
    pub params: Params,
    /// Records acknowledged (produce) or read (consume, e2e).
    pub messages: u64,
    /// Record value bytes behind `messages`.
    pub value_bytes: u64,
    /// Records whose delivery failed (produce side).
    pub failed: u64,
    /// From the first send (or read) to the last acknowledgement (or read).
    pub elapsed: Duration,
    /// The headline latency: send→ack for produce, end to end for e2e, none for consume.
    pub latency: Option<Latency>,
    /// e2e also reports the producers' send→ack latency.
    pub produce_latency: Option<Latency>,
}

/// Percentiles of a histogram, in milliseconds.
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        })
    }

    fn json(&self) -> String {
        JsonObject::new()
            .float("p50", self.p50)
            .float("p90", self.p90)
            .float("p99", self.p99)
            .float("p999", self.p999)
            .float("max", self.max)
            .finish()
    }
}

impl Report {
    pub fn messages_per_sec(&self) -> f64 {
        per_sec(self.messages as f64, self.elapsed)
    }

    pub fn mb_per_sec(&self) -> f64 {
        per_sec(self.value_bytes as f64 / 1e6, self.elapsed)
    }

    /// The report as one JSON object on one line.
    pub fn json(&self) -> String {
        let p = &self.params;
        let mut o = JsonObject::new()
            .str("mode", self.mode)
            .str("topic", &p.topic)
            .int("partitions", p.partitions)
            .int("producers", p.producers as u64)
            .int("consumers", p.consumers as u64)
            .int("size_bytes", p.value_bytes as u64)
            .str("acks", p.acks)
            .str("compression", p.compression)
            .int("linger_ms", p.linger_ms)
            .int("batch_bytes", p.batch_bytes as u64)
            .opt_int("rate_msgs_per_sec", p.rate_msgs_per_sec)
            .opt_int("transaction_ms", p.transaction_ms)
            .str("isolation", p.isolation)
            .opt_int("messages_requested", p.messages)
            .opt_float("duration_s", p.duration.map(|d| d.as_secs_f64()))
            .int("messages", self.messages)
            .int("failed", self.failed)
            .float("elapsed_s", self.elapsed.as_secs_f64())
            .float("messages_per_sec", self.messages_per_sec())
            .float("mb_per_sec", self.mb_per_sec());
        o = latency_json(o, "latency", self.latency.as_ref());
        if self.produce_latency.is_some() {
            o = latency_json(o, "produce_latency", self.produce_latency.as_ref());
        }
        o.finish()
    }

    /// A one-line summary of the settings, then a table of the figures.
    pub fn print_table(&self, out: &mut impl Write) -> io::Result<()> {
        let p = &self.params;
        let rate = p
            .rate_msgs_per_sec
            .map_or_else(|| "unlimited".to_string(), |r| format!("{r} msgs/s"));
        writeln!(
            out,
            "bench {}: topic {} ({} partitions), {} producers, {} consumers, {} B values, \
             acks={}, compression {}, linger {} ms, batch {} B, rate {rate}{}, {}",
            self.mode,
            p.topic,
            p.partitions,
            p.producers,
            p.consumers,
            p.value_bytes,
            p.acks,
            p.compression,
            p.linger_ms,
            p.batch_bytes,
            p.transaction_ms
                .map_or_else(String::new, |ms| format!(", a transaction every {ms} ms")),
            p.isolation,
        )?;
        let mut table = Table::new(&[
            "MESSAGES", "SECONDS", "MSGS/S", "MB/S", "LATENCY", "P50 MS", "P90 MS", "P99 MS",
            "P99.9 MS", "MAX MS",
        ]);
        let figures = vec![
            self.messages.to_string(),
            format!("{:.3}", self.elapsed.as_secs_f64()),
            format!("{:.0}", self.messages_per_sec()),
            format!("{:.2}", self.mb_per_sec()),
        ];
        let series: Vec<&Latency> = self
            .latency
            .iter()
            .chain(self.produce_latency.iter())
            .collect();
        if series.is_empty() {
            table.row(figures.clone());
        }
        for (i, latency) in series.into_iter().enumerate() {
            let mut row = if i == 0 {
                figures.clone()
            } else {
                vec![String::new(); 4]
            };
            row.push(latency.kind.to_string());
            if let Some(pc) = Percentiles::of(&latency.histogram) {
                row.extend([pc.p50, pc.p90, pc.p99, pc.p999, pc.max].map(|v| format!("{v:.3}")));
            }
            table.row(row);
        }
        table.print(out)?;
        if self.failed > 0 {
            writeln!(out, "{} records failed", self.failed)?;
        }
        Ok(())
    }
}

fn latency_json(o: JsonObject, prefix: &str, latency: Option<&Latency>) -> JsonObject {
    let key = format!("{prefix}_ms");
    match latency.and_then(|l| Percentiles::of(&l.histogram).map(|p| (l.kind, p))) {
        Some((kind, p)) => o.raw(&key, &p.json()).str(&format!("{prefix}_kind"), kind),
        None => o.null(&key),
    }
}

fn per_sec(amount: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(latency: Option<Latency>) -> Report {
        Report {
            mode: "produce",
            params: Params {
                topic: "t".into(),
                partitions: 1,
                producers: 1,
                consumers: 0,
                value_bytes: 100,
                acks: "1",
                compression: "none",
                linger_ms: 5,
                batch_bytes: 16384,
                rate_msgs_per_sec: None,
                transaction_ms: None,
                isolation: "read_uncommitted",
                messages: Some(1000),
                duration: None,
            },
            messages: 1000,
            value_bytes: 100_000,
            failed: 0,
            elapsed: Duration::from_millis(500),
            latency,
            produce_latency: None,
        }
    }

    #[test]
    fn figures_and_percentiles_render() {
        let mut h = latency_histogram();
        for us in 1..=1000u64 {
            h.saturating_record(us * 10);
        }
        let r = report(Some(Latency {
            kind: "send_to_ack",
            histogram: h,
        }));
        assert_eq!(r.messages_per_sec(), 2000.0);
        assert_eq!(r.mb_per_sec(), 0.2);
        let json = r.json();
        assert!(json.contains(r#""messages_per_sec":2000"#), "{json}");
        assert!(json.contains(r#""latency_ms":{"p50":5"#), "{json}");
        assert!(json.contains(r#""max":10"#), "{json}");
        let mut table = Vec::new();
        r.print_table(&mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(table.contains("send_to_ack"), "{table}");
    }

    #[test]
    fn no_latency_is_null() {
        let json = report(None).json();
        assert!(json.contains(r#""latency_ms":null"#), "{json}");
    }
}
