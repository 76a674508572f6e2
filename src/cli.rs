//! Command implementations, one module per command family (`strata log …`), and what
//! they share: how a finished command maps to an exit status, how errors are reported.

pub mod acl;
mod admin_http;
pub mod audit;
mod audit_export;
mod audit_heads;
mod audit_source;
mod audit_verify;
mod audit_witness;
pub mod bench;
pub mod cluster;
mod command_config;
pub mod consume;
pub mod dev_cluster;
pub mod group;
pub mod log;
pub mod partition;
pub mod produce;
pub mod quota;
pub mod serve;
pub mod topic;
pub mod transactions;
pub mod user;

mod json;
mod table;
mod timestamp;

use std::io::{self, Write};
use std::process::ExitCode;

/// Exit status when the data looked at is damaged (bad CRC, broken framing, …).
pub const EXIT_DAMAGED: u8 = 1;
/// Exit status for usage and I/O errors: the command could not do its job.
pub const EXIT_ERROR: u8 = 2;

/// How a command that ran to completion judged what it looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing wrong (warnings allowed).
    Clean,
    /// The data is damaged; exit with [`EXIT_DAMAGED`].
    Damaged,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Clean => ExitCode::SUCCESS,
            Outcome::Damaged => ExitCode::from(EXIT_DAMAGED),
        }
    }
}

/// `strata version`: the same text as `strata --version`.
pub fn print_version() -> anyhow::Result<Outcome> {
    writeln!(io::stdout().lock(), "strata {}", env!("CARGO_PKG_VERSION"))?;
    Ok(Outcome::Clean)
}

/// Prints `e` with its context chain on stderr and returns [`EXIT_ERROR`]. A closed
/// stdout (`strata log dump … | head`) is not an error: the reader has what it wanted.
pub fn report_error(e: &anyhow::Error) -> ExitCode {
    let broken_pipe = e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    // Nothing sensible is left to do if stderr itself is gone.
    let _ = writeln!(io::stderr().lock(), "strata: error: {e:#}");
    ExitCode::from(EXIT_ERROR)
}
