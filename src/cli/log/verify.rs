//! `strata log verify DIR`: [`log_store::inspect::verify_dir`] with a progress bar, its
//! findings and a summary.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use log_store::inspect::{self, DirReport, Severity};

use crate::cli::Outcome;

#[derive(Args)]
pub struct VerifyArgs {
    /// Partition directory (only the `.log` files are required).
    dir: PathBuf,
}

pub fn run(args: &VerifyArgs) -> Result<Outcome> {
    let dir = &args.dir;
    let meta = std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if !meta.is_dir() {
        bail!(
            "{} is not a directory (`strata log dump` reads a single segment file)",
            dir.display()
        );
    }
    let bar = progress_bar();
    let report = inspect::verify_dir(dir, |done_bytes, total_bytes| {
        if bar.length() != Some(total_bytes) {
            bar.set_length(total_bytes);
        }
        bar.set_position(done_bytes);
    });
    bar.finish_and_clear();
    let report = report.with_context(|| format!("verifying {}", dir.display()))?;
    if report.segments == 0 {
        bail!(
            "no segment files (NNNNNNNNNNNNNNNNNNNN.log) in {}; is it a partition directory?",
            dir.display()
        );
    }
    print_report(&mut io::stdout().lock(), dir, &report).context("writing to stdout")?;
    Ok(if report.is_ok() {
        Outcome::Clean
    } else {
        Outcome::Damaged
    })
}

/// A byte-count bar on stderr; indicatif draws nothing when stderr is not a terminal.
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("verifying {wide_bar} {bytes}/{total_bytes} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

fn print_report(out: &mut impl Write, dir: &Path, report: &DirReport) -> io::Result<()> {
    for f in &report.findings {
        let severity = match f.severity {
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
        };
        writeln!(out, "{severity} {}: {}", f.path.display(), f.message)?;
    }
    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    let offsets = match (report.first_offset, report.last_offset) {
        (Some(first), Some(last)) => format!("{first}..={last}"),
        _ => "none".to_string(),
    };
    writeln!(
        out,
        "summary: {}: {} segments, {} batches, {} records, {} bytes, offsets {offsets}; \
         {} errors, {} warnings",
        dir.display(),
        report.segments,
        report.batches,
        report.records,
        report.bytes,
        count(Severity::Error),
        count(Severity::Warning),
    )?;
    writeln!(out, "{}", if report.is_ok() { "OK" } else { "DAMAGED" })?;
    out.flush()
}
