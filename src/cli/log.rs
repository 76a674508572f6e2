//! `strata log …`: offline inspection of partition directories and segment files, ours
//! or a Kafka broker's. Files are only read, so a running broker is never disturbed.

mod dump;
mod txn;
mod verify;

use clap::Subcommand;

use super::Outcome;

const EXIT_STATUS_HELP: &str = "Exit status: 0 when the data is sound (warnings allowed), \
1 when it is damaged, 2 on usage or I/O errors.";

#[derive(Subcommand)]
pub enum LogCommand {
    /// Print every record batch of a segment `.log` file, or of every segment of a
    /// partition directory in base-offset order.
    #[command(after_help = EXIT_STATUS_HELP)]
    Dump(dump::DumpArgs),
    /// Check a partition directory: batch framing and CRCs, offset order within and across
    /// segments, and every index and Strata sidecar present.
    #[command(after_help = EXIT_STATUS_HELP)]
    Verify(verify::VerifyArgs),
}

impl LogCommand {
    pub fn run(self) -> anyhow::Result<Outcome> {
        match self {
            LogCommand::Dump(args) => dump::run(&args),
            LogCommand::Verify(args) => verify::run(&args),
        }
    }
}
