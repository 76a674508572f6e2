//! Shows that a log's resident memory does not grow with its length: builds a log of
//! 1 MiB segments (1 GiB by default), then prints the process's anonymous and file-backed
//! resident memory (`RssAnon`, `RssFile` from `/proc/self/status`) after each step:
//! appending, reading everything, two `release_idle_maps` passes, and a clean reopen.
//!
//! Run: `cargo run --release -p strata-benches --bin log_store_memory [MiB]`
//! (data under `STRATA_BENCH_DIR`, default the system temp dir; removed at exit).

use std::process::ExitCode;

use log_store::{Log, LogConfig};
use strata_benches::{append_copies, read_all, scratch_dir, small_batch};

const SEGMENT_BYTES: u64 = 1 << 20;
const READ_MAX_BYTES: usize = 1 << 20;

/// `RssAnon` and `RssFile` of this process, in kB, as the kernel reports them.
fn rss_kb() -> Result<(u64, u64), String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .ok_or_else(|| format!("/proc/self/status has no {name}"))
    };
    Ok((field("RssAnon:")?, field("RssFile:")?))
}

fn report(step: &str) -> Result<(), String> {
    let (anon, file) = rss_kb()?;
    println!(
        "{step:<40} RssAnon {:>8.1} MB   RssFile {:>8.1} MB",
        anon as f64 / 1024.0,
        file as f64 / 1024.0
    );
    Ok(())
}

fn run() -> Result<(), String> {
    let mib: u64 = match std::env::args().nth(1) {
        None => 1024,
        Some(arg) => arg
            .parse()
            .ok()
            .filter(|&m| m > 0)
            .ok_or_else(|| format!("usage: log_store_memory [MiB > 0], got {arg:?}"))?,
    };
    let config = LogConfig {
        segment_bytes: SEGMENT_BYTES,
        ..LogConfig::default()
    };
    let dir = scratch_dir().map_err(|e| format!("creating a scratch dir: {e}"))?;
    report("start")?;

    let mut log = Log::open(dir.path(), config.clone()).map_err(|e| e.to_string())?;
    let mut batch = small_batch();
    let batches = (mib << 20) / batch.len() as u64;
    append_copies(&mut log, &mut batch, batches, None).map_err(|e| e.to_string())?;
    report(&format!("appended {mib} MiB"))?;

    read_all(&log, READ_MAX_BYTES).map_err(|e| e.to_string())?;
    report("read everything")?;
    // The first pass clears each segment's "read since last pass" mark, the second unmaps.
    log.release_idle_maps();
    report("release_idle_maps (1st pass)")?;
    let released = log.release_idle_maps();
    report(&format!("release_idle_maps (2nd, {released} unmapped)"))?;

    log.close().map_err(|e| e.to_string())?;
    report("closed")?;
    let log = Log::open(dir.path(), config).map_err(|e| e.to_string())?;
    report(&format!("reopened ({} segments)", log.segments().len()))?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("log_store_memory: {e}");
            ExitCode::FAILURE
        }
    }
}
