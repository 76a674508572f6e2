//! Idle cost of many Raft groups: 3 nodes in one process over loopback TCP (the real
//! transport), `GROUPS` groups each replicated on all three, nothing proposed after one
//! entry per group. Measures the process's CPU time (user + system, from
//! `/proc/self/stat`) over a window once every group has a leader, and how many replicas
//! are quiet at the end (`replication::quiesce`): what idle partitions cost.
//!
//! Run: `cargo run --release -p strata-benches --bin replication_idle [GROUPS] [TICK_MS] [SECONDS]`
//! (defaults 1000, 100 and 10; data under STRATA_BENCH_DIR, default the system temp dir).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use log_store::LogConfig;
use replication::local_cluster::LocalCluster;
use strata_benches::{scratch_dir, small_batch};

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

fn arg(i: usize, default: u64) -> Result<u64, String> {
    match std::env::args().nth(i) {
        None => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|_| format!("argument {i} must be a number: {s}")),
    }
}

/// Replicas of all groups on all nodes that are quiet.
async fn quiet_replicas(cluster: &LocalCluster) -> usize {
    let mut quiet = 0;
    for id in cluster.live() {
        if let Some(h) = cluster.handle(id) {
            quiet += h.status().await.iter().filter(|s| s.quiesced).count();
        }
    }
    quiet
}

async fn measure(groups: u64, tick: Duration, window: Duration) -> Result<(), String> {
    let dir = scratch_dir().map_err(|e| e.to_string())?;
    let cluster = LocalCluster::start(dir.path(), 3, groups, LogConfig::default(), tick)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    for g in 1..=groups {
        cluster
            .propose(g, small_batch(), Duration::from_secs(120))
            .await
            .map_err(|e| format!("group {g}: {e}"))?;
    }
    eprintln!(
        "{groups} groups led and written once in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Measure once every replica has gone quiet (or after a minute: then the figure
    // includes groups still settling, and the count printed below says so).
    let settle = Instant::now();
    while quiet_replicas(&cluster).await < 3 * groups as usize
        && settle.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(tick).await;
    }
    let cpu0 = cpu_seconds().ok_or("no /proc/self/stat")?;
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let cpu = cpu_seconds().ok_or("no /proc/self/stat")? - cpu0;
    let secs = t0.elapsed().as_secs_f64();
    let quiet = quiet_replicas(&cluster).await;
    println!("{quiet} of {} replicas quiet at the end", 3 * groups);
    println!(
        "groups {groups}, tick {} ms, 3 nodes: CPU {:.1} % of one core ({:.3} s over {secs:.1} s)",
        tick.as_millis(),
        100.0 * cpu / secs,
        cpu
    );
    Ok(())
}

fn main() -> ExitCode {
    let run = || -> Result<(), String> {
        let groups = arg(1, 1000)?;
        let tick = Duration::from_millis(arg(2, 100)?);
        let window = Duration::from_secs(arg(3, 10)?);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(measure(groups, tick, window))
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("replication_idle: {e}");
            ExitCode::FAILURE
        }
    }
}
