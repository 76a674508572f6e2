//! Replication throughput and commit latency: a Raft group of 3 replicas in one process
//! over loopback TCP (the real transport), against a 1-replica group on the same disk.
//! Proposals are ~16 KiB Kafka batches; `concurrency` proposals are kept in flight.
//! Prints committed MB/s and commit latency p50/p99, then the same at half the measured
//! maximum rate (the latency target is stated at half load). Last, the ceiling a
//! 3-replica group can reach on *this* machine, where all replicas share one disk and two
//! cores: three independent 1-replica groups (three nodes) loaded at once, each writing
//! what a replica of the 3-replica group writes; their per-group MB/s is that ceiling.
//!
//! Run: `cargo run --release -p strata-benches --bin replication_bench [ENTRIES] [CONCURRENCY]`
//! (defaults 4000 and 64; data under STRATA_BENCH_DIR, default the system temp dir).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log_store::LogConfig;
use replication::local_cluster::LocalCluster;
use strata_benches::{scratch_dir, small_batch};

const PROPOSE_TIMEOUT: Duration = Duration::from_secs(60);

struct Outcome {
    mb_per_s: f64,
    entries_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Proposes `entries` batches with `concurrency` in flight; at most `rate` per second
/// when given.
async fn run(
    cluster: Arc<LocalCluster>,
    entries: usize,
    concurrency: usize,
    rate: Option<f64>,
) -> Result<Outcome, String> {
    let batch = small_batch();
    let bytes = batch.len();
    let start = Instant::now();
    let per_task = entries.div_ceil(concurrency);
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let cluster = cluster.clone();
        let batch = batch.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            for i in 0..per_task {
                if let Some(rate) = rate {
                    // Open-loop pacing: proposal k of all tasks is due at k / rate.
                    let k = (i * concurrency + t) as f64;
                    let due = start + Duration::from_secs_f64(k / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                cluster
                    .propose(1, batch.clone(), PROPOSE_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string())?;
                latencies.push(sent.elapsed());
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut all = Vec::with_capacity(entries);
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    let wall = start.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok(Outcome {
        mb_per_s: (all.len() * bytes) as f64 / wall / 1e6,
        entries_per_s: all.len() as f64 / wall,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
    })
}

async fn bench(replicas: u64, entries: usize, concurrency: usize) -> Result<(), String> {
    let dir = scratch_dir().map_err(|e| e.to_string())?;
    let cluster = LocalCluster::start(
        dir.path(),
        replicas,
        1,
        LogConfig::default(),
        Duration::from_millis(10),
    )
    .await
    .map_err(|e| e.to_string())?;
    let cluster = Arc::new(cluster);
    // Warm-up: elect a leader and settle the connections.
    run(cluster.clone(), 64, 8, None).await?;
    let max = run(cluster.clone(), entries, concurrency, None).await?;
    println!(
        "{replicas} replica(s), max load:  {:7.1} MB/s  {:7.0} entries/s  commit p50 {:6.2} ms  p99 {:6.2} ms",
        max.mb_per_s, max.entries_per_s, max.p50_ms, max.p99_ms
    );
    let half = run(
        cluster.clone(),
        entries / 2,
        concurrency,
        Some(max.entries_per_s / 2.0),
    )
    .await?;
    println!(
        "{replicas} replica(s), half load: {:7.1} MB/s  {:7.0} entries/s  commit p50 {:6.2} ms  p99 {:6.2} ms",
        half.mb_per_s, half.entries_per_s, half.p50_ms, half.p99_ms
    );
    Ok(())
}

/// Three 1-replica groups on three nodes (one disk), loaded at once: what each of three
/// copies of a stream can get here.
async fn ceiling(entries: usize, concurrency: usize) -> Result<(), String> {
    let mut clusters = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..3 {
        let dir = scratch_dir().map_err(|e| e.to_string())?;
        let cluster = LocalCluster::start(
            dir.path(),
            1,
            1,
            LogConfig::default(),
            Duration::from_millis(10),
        )
        .await
        .map_err(|e| e.to_string())?;
        let cluster = Arc::new(cluster);
        run(cluster.clone(), 64, 8, None).await?;
        clusters.push(cluster);
        dirs.push(dir);
    }
    let runs: Vec<_> = clusters
        .iter()
        .map(|c| tokio::spawn(run(c.clone(), entries, concurrency, None)))
        .collect();
    let mut outcomes = Vec::new();
    for r in runs {
        outcomes.push(r.await.map_err(|e| e.to_string())??);
    }
    let mb: f64 = outcomes.iter().map(|o| o.mb_per_s).sum::<f64>() / 3.0;
    let eps: f64 = outcomes.iter().map(|o| o.entries_per_s).sum::<f64>() / 3.0;
    println!(
        "3 x 1 replica at once (ceiling per copy): {mb:7.1} MB/s  {eps:7.0} entries/s  (p99 of each: {})",
        outcomes
            .iter()
            .map(|o| format!("{:.2} ms", o.p99_ms))
            .collect::<Vec<_>>()
            .join(", ")
    );
    drop(dirs);
    Ok(())
}

fn main() -> ExitCode {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map(|a| a.parse::<usize>().ok().filter(|&v| v > 0))
            .unwrap_or(Some(default))
    };
    let (Some(entries), Some(concurrency)) = (arg(1, 4000), arg(2, 64)) else {
        eprintln!("usage: replication_bench [ENTRIES > 0] [CONCURRENCY > 0]");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("replication_bench: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "# replication_bench — {entries} entries of {} bytes, {concurrency} in flight",
        small_batch().len()
    );
    for replicas in [1, 3] {
        if let Err(e) = runtime.block_on(bench(replicas, entries, concurrency)) {
            eprintln!("replication_bench: {replicas} replica(s): {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = runtime.block_on(ceiling(entries, concurrency)) {
        eprintln!("replication_bench: 3 x 1 replica: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
