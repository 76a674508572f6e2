//! `strata user create | list | delete`: users' SCRAM credentials on a running broker,
//! over the Kafka protocol (AlterUserScramCredentials, DescribeUserScramCredentials), as
//! `kafka-configs --entity-type users --alter --add-config 'SCRAM-SHA-512=[…]'` manages
//! them. The client salts and hashes the password; the salted password is enough to
//! log in with SCRAM, so use an SSL or SASL_SSL listener.
//!
//! A password is read from stdin (`--password-stdin`, its first line) or from
//! `STRATA_NEW_USER_PASSWORD`, never from the command line, where other users of the
//! machine could read it.

use std::io::{self, BufRead, Write};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use client::{Admin, SaslMechanism};

use client::users::{MAX_ITERATIONS, MIN_ITERATIONS};

use super::json::JsonObject;
use super::table::{Format, Table};
use super::topic::{block_on, BrokersArg};
use super::Outcome;

/// Environment variable with the new user's password, when not `--password-stdin`.
const PASSWORD_ENV: &str = "STRATA_NEW_USER_PASSWORD";
/// Kafka's default iteration count for a new SCRAM credential (`kafka-configs`).
const DEFAULT_ITERATIONS: u32 = 4096;

#[derive(Args)]
pub struct UserArgs {
    #[command(flatten)]
    brokers: BrokersArg,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user's SCRAM credential, or replace it (new salt, new password).
    Create {
        /// The user name.
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-512", value_parser = parse_scram)]
        mechanism: SaslMechanism,
        /// PBKDF2 iterations (Kafka's bounds: 4096 to 16384).
        #[arg(long, default_value_t = DEFAULT_ITERATIONS,
              value_parser = clap::value_parser!(u32)
                  .range(i64::from(MIN_ITERATIONS)..=i64::from(MAX_ITERATIONS)))]
        iterations: u32,
        /// Read the password from the first line of stdin [default: the environment
        /// variable STRATA_NEW_USER_PASSWORD].
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users with SCRAM credentials: the named ones, or all.
    List {
        /// User names [default: every user with a credential].
        names: Vec<String>,
        /// `table`, or `json` (one object per credential and line).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Delete a user's SCRAM credential for one mechanism.
    Delete {
        /// The user name.
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, value_parser = parse_scram)]
        mechanism: SaslMechanism,
    },
}

/// A SCRAM mechanism by name, in any case.
fn parse_scram(s: &str) -> Result<SaslMechanism, String> {
    match SaslMechanism::parse(&s.to_ascii_uppercase()) {
        Some(m) if m != SaslMechanism::Plain => Ok(m),
        _ => Err(format!(
            "expected SCRAM-SHA-256 or SCRAM-SHA-512, got {s:?}"
        )),
    }
}

impl UserArgs {
    pub fn run(self) -> Result<Outcome> {
        let brokers = &self.brokers;
        let mut out = io::stdout().lock();
        match self.command {
            UserCommand::Create {
                name,
                mechanism,
                iterations,
                password_stdin,
            } => {
                // Read before connecting, so a missing password fails at once.
                let password = new_password(password_stdin)?;
                block_on(async {
                    let admin = Admin::new(brokers.connect().await?);
                    admin
                        .set_user_scram_credential(&name, mechanism, iterations, &password)
                        .await?;
                    Ok(())
                })?;
                writeln!(
                    out,
                    "Set the {} credential of user {name} ({iterations} iterations).",
                    mechanism.name()
                )?;
            }
            UserCommand::List { names, format } => block_on(async {
                let admin = Admin::new(brokers.connect().await?);
                list(&admin, &names, format, &mut out).await
            })?,
            UserCommand::Delete { name, mechanism } => {
                block_on(async {
                    let admin = Admin::new(brokers.connect().await?);
                    admin.delete_user_scram_credential(&name, mechanism).await?;
                    Ok(())
                })?;
                writeln!(
                    out,
                    "Deleted the {} credential of user {name}.",
                    mechanism.name()
                )?;
            }
        }
        out.flush()?;
        Ok(Outcome::Clean)
    }
}

/// The new user's password: stdin's first line (without its line ending), or the
/// environment variable. Empty passwords are refused.
fn new_password(from_stdin: bool) -> Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        match std::env::var(PASSWORD_ENV) {
            Ok(p) => p,
            Err(_) => bail!("no password: give --password-stdin or set {PASSWORD_ENV}"),
        }
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

/// USER, MECHANISM, ITERATIONS: one row per credential, or one JSON object per line.
async fn list(admin: &Admin, names: &[String], format: Format, out: &mut impl Write) -> Result<()> {
    let users = admin.describe_user_scram_credentials(names).await?;
    let rows = users
        .iter()
        .flat_map(|u| u.credentials.iter().map(move |c| (u.user.as_str(), c)));
    match format {
        Format::Table => {
            let mut table = Table::new(&["USER", "MECHANISM", "ITERATIONS"]);
            for (user, c) in rows {
                table.row(vec![
                    user.to_string(),
                    c.mechanism_name(),
                    c.iterations.to_string(),
                ]);
            }
            table.print(out)?;
        }
        Format::Json => {
            for (user, c) in rows {
                let line = JsonObject::new()
                    .str("user", user)
                    .str("mechanism", &c.mechanism_name())
                    .int("iterations", c.iterations)
                    .finish();
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_scram_mechanisms_are_accepted() {
        assert_eq!(parse_scram("scram-sha-256"), Ok(SaslMechanism::ScramSha256));
        assert_eq!(parse_scram("SCRAM-SHA-512"), Ok(SaslMechanism::ScramSha512));
        assert!(parse_scram("PLAIN").is_err());
        assert!(parse_scram("SCRAM-SHA-1").is_err());
    }
}
