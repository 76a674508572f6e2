//! `strata quota alter | describe`: client quotas on a running broker, over the Kafka
//! protocol (AlterClientQuotas, DescribeClientQuotas), with the flags of `kafka-configs`
//! (`--user`, `--user-defaults`, `--client`, `--client-defaults`, `--add-config`,
//! `--delete-config`).
//!
//! A quota's entity is a user, a client id, or both; `--user-defaults`
//! (`--client-defaults`) names the default user (client id), whose quotas apply to every
//! user (client id) without their own. The keys are Kafka's: `producer_byte_rate` and
//! `consumer_byte_rate` (bytes per second, whole numbers) and `request_percentage`
//! (percent of one request handler thread). `alter` checks keys and values before
//! anything is sent; `describe` prints every quota, or those of the entities named.
//! With an authorizer on the broker, `alter` needs ALTER_CONFIGS on the cluster and
//! `describe` DESCRIBE_CONFIGS.

use std::collections::BTreeMap;
use std::io::{self, Write};

use anyhow::{bail, Result};
use clap::{ArgGroup, Args, Subcommand};
use client::quotas::{EntityType, QuotaOps, QuotaValues};
use client::{Admin, EntityName, QuotaEntity, QuotaFilterComponent, QuotaKey};

use super::table::{non_empty, Format, Table};
use super::topic::{block_on, BrokersArg};
use super::Outcome;

#[derive(Args)]
pub struct QuotaArgs {
    #[command(flatten)]
    brokers: BrokersArg,
    #[command(subcommand)]
    command: QuotaCommand,
}

#[derive(Subcommand)]
enum QuotaCommand {
    /// Set (--add-config) and remove (--delete-config) quotas of one entity: a user, a
    /// client id, or a user with a client id.
    Alter(AlterArgs),
    /// Print every quota, or those of entities with the parts named (an entity with
    /// more parts matches unless --strict).
    Describe(DescribeArgs),
}

/// The parts of an entity: a user, a client id, or both.
#[derive(Args)]
struct EntityArgs {
    /// A user (the principal's name, `alice` for User:alice).
    #[arg(long, value_name = "NAME", value_parser = non_empty,
          conflicts_with = "user_defaults")]
    user: Option<String>,
    /// The default user: every user without quotas of its own.
    #[arg(long)]
    user_defaults: bool,
    /// A client id (the `client.id` a client sends).
    #[arg(long, value_name = "CLIENT_ID", value_parser = non_empty,
          conflicts_with = "client_defaults")]
    client: Option<String>,
    /// The default client id: every client id without quotas of its own.
    #[arg(long)]
    client_defaults: bool,
}

#[derive(Args)]
#[command(group(ArgGroup::new("entity").multiple(true).required(true)
    .args(["user", "user_defaults", "client", "client_defaults"])))]
#[command(group(ArgGroup::new("changes").multiple(true).required(true)
    .args(["add_config", "delete_config"])))]
struct AlterArgs {
    #[command(flatten)]
    entity: EntityArgs,
    /// Quotas to set, KEY=VALUE comma-separated: producer_byte_rate=1048576,
    /// consumer_byte_rate=2097152, request_percentage=50.
    #[arg(long, value_name = "KEY=VALUE,…", value_parser = parse_additions)]
    add_config: Option<Additions>,
    /// Quotas to remove, comma-separated keys: producer_byte_rate,request_percentage.
    #[arg(long, value_name = "KEY,…", value_parser = parse_deletions)]
    delete_config: Option<Deletions>,
}

#[derive(Args)]
struct DescribeArgs {
    #[command(flatten)]
    entity: EntityArgs,
    /// Only entities with no parts other than those named (with no part named: none).
    #[arg(long)]
    strict: bool,
    /// `table`, or `json` (one object per entity and line: its parts, Kafka's entity
    /// types, with null for a default, and its quotas).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// `--add-config`: keys to set, each once, with checked values.
#[derive(Clone, Debug, PartialEq)]
struct Additions(Vec<(QuotaKey, f64)>);

/// `--delete-config`: keys to remove, each once.
#[derive(Clone, Debug, PartialEq)]
struct Deletions(Vec<QuotaKey>);

/// `KEY=VALUE,…` with known keys, each once, and values Kafka takes for them.
fn parse_additions(s: &str) -> Result<Additions, String> {
    let mut additions: Vec<(QuotaKey, f64)> = Vec::new();
    for item in items(s)? {
        let Some((key, value)) = item.split_once('=') else {
            return Err(format!("expected KEY=VALUE, got {item:?}"));
        };
        let key: QuotaKey = key.trim().parse().map_err(|e| invalid(&e))?;
        let value = key.parse_value(value).map_err(|e| invalid(&e))?;
        if additions.iter().any(|(k, _)| *k == key) {
            return Err(format!("{key} is given twice"));
        }
        additions.push((key, value));
    }
    Ok(Additions(additions))
}

/// `KEY,…` with known keys, each once.
fn parse_deletions(s: &str) -> Result<Deletions, String> {
    let mut deletions = Vec::new();
    for item in items(s)? {
        let key: QuotaKey = item.parse().map_err(|e| invalid(&e))?;
        if deletions.contains(&key) {
            return Err(format!("{key} is given twice"));
        }
        deletions.push(key);
    }
    Ok(Deletions(deletions))
}

/// The comma-separated items of `s`, trimmed; none may be empty.
fn items(s: &str) -> Result<Vec<&str>, String> {
    let items: Vec<&str> = s.split(',').map(str::trim).collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err(format!("an empty item in {s:?}"));
    }
    Ok(items)
}

/// A client error's message without its `invalid argument: ` prefix (clap adds its own).
fn invalid(e: &client::Error) -> String {
    match e {
        client::Error::InvalidArgument(message) => message.clone(),
        other => other.to_string(),
    }
}

impl QuotaArgs {
    pub fn run(self) -> Result<Outcome> {
        let brokers = &self.brokers;
        let mut out = io::stdout().lock();
        // Both commands work out what to send before connecting, so bad flags fail
        // without a broker.
        match self.command {
            QuotaCommand::Alter(args) => {
                let (entity, ops) = args.change()?;
                let change = vec![(entity.clone(), ops.clone())];
                block_on(async {
                    let admin = Admin::new(brokers.connect().await?);
                    Ok(admin.alter_client_quotas(change, false).await?)
                })?;
                print_changed(&entity, &ops, &mut out)?;
            }
            QuotaCommand::Describe(args) => {
                let components = args.entity.components();
                let quotas = block_on(async {
                    let admin = Admin::new(brokers.connect().await?);
                    Ok(admin
                        .describe_client_quotas(&components, args.strict)
                        .await?)
                })?;
                print_quotas(&quotas, args.format, &mut out)?;
            }
        }
        out.flush()?;
        Ok(Outcome::Clean)
    }
}

impl EntityArgs {
    /// The entity the flags name; empty when none is given.
    fn entity(&self) -> QuotaEntity {
        QuotaEntity {
            user: entity_name(&self.user, self.user_defaults),
            client_id: entity_name(&self.client, self.client_defaults),
        }
    }

    /// A filter component per part named: its name, or the default entity.
    fn components(&self) -> Vec<QuotaFilterComponent> {
        let entity = self.entity();
        let user = entity
            .user
            .map(|n| QuotaFilterComponent::of_entity(EntityType::User, &n));
        let client = entity
            .client_id
            .map(|n| QuotaFilterComponent::of_entity(EntityType::ClientId, &n));
        user.into_iter().chain(client).collect()
    }
}

/// The part `--user NAME` / `--user-defaults` (or the client flags) name, if any.
fn entity_name(name: &Option<String>, defaults: bool) -> Option<EntityName> {
    match (name, defaults) {
        (Some(name), _) => Some(EntityName::Named(name.clone())),
        (None, true) => Some(EntityName::Default),
        (None, false) => None,
    }
}

impl AlterArgs {
    /// The entity and its changes: the keys set, then the keys removed.
    fn change(&self) -> Result<(QuotaEntity, QuotaOps)> {
        let entity = self.entity.entity();
        if entity.user.is_none() && entity.client_id.is_none() {
            bail!("name the entity: --user, --user-defaults, --client or --client-defaults");
        }
        let added = self.add_config.as_ref().map_or(&[][..], |a| &a.0[..]);
        let deleted = self.delete_config.as_ref().map_or(&[][..], |d| &d.0[..]);
        if let Some((key, _)) = added.iter().find(|(k, _)| deleted.contains(k)) {
            bail!("{key} is both in --add-config and in --delete-config");
        }
        if added.is_empty() && deleted.is_empty() {
            bail!("give --add-config or --delete-config");
        }
        let sets = added.iter().map(|(k, v)| (k.name().to_string(), Some(*v)));
        let removes = deleted.iter().map(|k| (k.name().to_string(), None));
        Ok((entity, sets.chain(removes).collect()))
    }
}

/// One line per change: `Set producer_byte_rate=1048576 for user=alice`.
fn print_changed(entity: &QuotaEntity, ops: &QuotaOps, out: &mut impl Write) -> Result<()> {
    for (key, value) in ops {
        match value {
            Some(value) => writeln!(out, "Set {key}={value} for {entity}")?,
            None => writeln!(out, "Removed {key} from {entity}")?,
        }
    }
    Ok(())
}

/// A table with a row per entity and key, or one JSON object per entity and line.
fn print_quotas(
    quotas: &[(QuotaEntity, QuotaValues)],
    format: Format,
    out: &mut impl Write,
) -> Result<()> {
    match format {
        Format::Table => quota_table(quotas).print(out)?,
        Format::Json => {
            for (entity, values) in quotas {
                writeln!(out, "{}", quota_json(entity, values))?;
            }
        }
    }
    Ok(())
}

fn quota_table(quotas: &[(QuotaEntity, QuotaValues)]) -> Table {
    let mut table = Table::new(&["USER", "CLIENT_ID", "KEY", "VALUE"]);
    let cell = |name: &Option<EntityName>| name.as_ref().map_or(String::new(), |n| n.to_string());
    for (entity, values) in quotas {
        for (key, value) in values {
            table.row(vec![
                cell(&entity.user),
                cell(&entity.client_id),
                key.clone(),
                value.to_string(),
            ]);
        }
    }
    table
}

/// `{"entity":{"client-id":null,"user":"alice"},"quotas":{"producer_byte_rate":1048576.0}}`:
/// the entity as Kafka's `ClientQuotaEntity` has it (entity type → name, null for the
/// default entity, absent types left out).
fn quota_json(entity: &QuotaEntity, values: &QuotaValues) -> serde_json::Value {
    let parts: BTreeMap<&str, Option<String>> = entity
        .parts()
        .into_iter()
        .map(|(entity_type, name)| {
            let name = match name {
                EntityName::Default => None,
                EntityName::Named(n) => Some(n.clone()),
            };
            (entity_type, name)
        })
        .collect();
    serde_json::json!({ "entity": parts, "quotas": values })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        quota: QuotaArgs,
    }

    /// `line` split at blanks, as `strata quota` would get it.
    fn parse(line: &str) -> Result<QuotaCommand, clap::Error> {
        let argv = std::iter::once("strata-quota").chain(line.split_whitespace());
        Cli::try_parse_from(argv).map(|cli| cli.quota.command)
    }

    fn alter(flags: &str) -> Result<(QuotaEntity, QuotaOps)> {
        match parse(&format!("alter {flags}"))? {
            QuotaCommand::Alter(a) => a.change(),
            QuotaCommand::Describe(_) => unreachable!("parsed an alter"),
        }
    }

    fn refused(line: &str) -> String {
        match parse(line) {
            Ok(_) => panic!("{line:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn describe(flags: &str) -> (Vec<QuotaFilterComponent>, bool) {
        match parse(&format!("describe {flags}")) {
            Ok(QuotaCommand::Describe(a)) => (a.entity.components(), a.strict),
            _ => panic!("{flags:?} is a valid describe"),
        }
    }

    fn named(name: &str) -> Option<EntityName> {
        Some(EntityName::Named(name.into()))
    }

    #[test]
    fn alter_names_the_entity_and_its_sets_then_removes() {
        let (entity, ops) = alter(
            "--user alice --add-config producer_byte_rate=1048576,request_percentage=12.5 \
             --delete-config consumer_byte_rate",
        )
        .unwrap();
        assert_eq!(
            entity,
            QuotaEntity {
                user: named("alice"),
                client_id: None
            }
        );
        assert_eq!(
            ops,
            [
                ("producer_byte_rate".to_string(), Some(1_048_576.0)),
                ("request_percentage".to_string(), Some(12.5)),
                ("consumer_byte_rate".to_string(), None),
            ]
        );
        let (entity, _) =
            alter("--user-defaults --client-defaults --add-config consumer_byte_rate=2000000")
                .unwrap();
        assert_eq!(entity.to_string(), "user=<default>, client-id=<default>");
        let (entity, ops) = alter("--client app --delete-config producer_byte_rate").unwrap();
        assert_eq!(entity.to_string(), "client-id=app");
        assert_eq!(ops, [("producer_byte_rate".to_string(), None)]);
        let (entity, _) =
            alter("--user bob --client-defaults --add-config request_percentage=50").unwrap();
        assert_eq!(entity.to_string(), "user=bob, client-id=<default>");
    }

    #[test]
    fn bad_keys_and_values_fail_before_anything_is_sent() {
        let e = refused("alter --user a --add-config foo=1");
        assert!(e.contains("unknown quota key \"foo\""), "{e}");
        assert!(e.contains("producer_byte_rate, consumer_byte_rate, request_percentage"));
        let e = refused("alter --user a --add-config producer_byte_rate=-5");
        assert!(
            e.contains("producer_byte_rate must be a positive number"),
            "{e}"
        );
        let e = refused("alter --user a --add-config producer_byte_rate=abc");
        assert!(
            e.contains("producer_byte_rate must be a number, got \"abc\""),
            "{e}"
        );
        let e = refused("alter --user a --add-config consumer_byte_rate=1.5");
        assert!(e.contains("whole number of bytes"), "{e}");
        let e = refused("alter --user a --add-config request_percentage=0");
        assert!(e.contains("must be a positive number"), "{e}");
        let e = refused("alter --user a --add-config producer_byte_rate");
        assert!(e.contains("expected KEY=VALUE"), "{e}");
        let e = refused("alter --user a --add-config producer_byte_rate=1,producer_byte_rate=2");
        assert!(e.contains("producer_byte_rate is given twice"), "{e}");
        let e = refused("alter --user a --add-config producer_byte_rate=1,");
        assert!(e.contains("an empty item"), "{e}");
        let e = refused("alter --user a --delete-config bar");
        assert!(e.contains("unknown quota key \"bar\""), "{e}");
        let e =
            alter("--user a --add-config producer_byte_rate=1 --delete-config producer_byte_rate")
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("both in --add-config and in --delete-config"),
            "{e}"
        );
    }

    #[test]
    fn alter_needs_an_entity_and_a_change() {
        // clap's own checks: an entity and a change are required, a part is named once.
        refused("alter --add-config producer_byte_rate=1");
        refused("alter --user a");
        refused("alter --user a --user-defaults --add-config producer_byte_rate=1");
        refused("alter --client c --client-defaults --add-config producer_byte_rate=1");
        let empty_user = [
            "strata-quota",
            "alter",
            "--user",
            "",
            "--add-config",
            "producer_byte_rate=1",
        ];
        assert!(Cli::try_parse_from(empty_user).is_err());
    }

    #[test]
    fn describe_matches_the_parts_named_or_everything() {
        assert_eq!(describe(""), (vec![], false));
        let (components, strict) = describe("--user alice --client-defaults --strict");
        let shown: Vec<String> = components.iter().map(|c| c.to_string()).collect();
        assert_eq!(shown, ["user=alice", "client-id=<default>"]);
        assert!(strict);
        let (components, _) = describe("--user-defaults");
        assert_eq!(
            components,
            [QuotaFilterComponent::of_entity(
                EntityType::User,
                &EntityName::Default
            )]
        );
        refused("describe --user a --user-defaults");
    }

    #[test]
    fn output_shows_defaults_and_absent_parts() {
        let alice = QuotaEntity {
            user: named("alice"),
            client_id: None,
        };
        let defaults = QuotaEntity {
            user: Some(EntityName::Default),
            client_id: Some(EntityName::Default),
        };
        let quotas = vec![
            (
                alice,
                QuotaValues::from([
                    ("producer_byte_rate".to_string(), 1_048_576.0),
                    ("request_percentage".to_string(), 12.5),
                ]),
            ),
            (
                defaults,
                QuotaValues::from([("consumer_byte_rate".to_string(), 2e6)]),
            ),
        ];
        let mut out = Vec::new();
        print_quotas(&quotas, Format::Table, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "USER       CLIENT_ID  KEY                 VALUE\n\
             alice                 producer_byte_rate  1048576\n\
             alice                 request_percentage  12.5\n\
             <default>  <default>  consumer_byte_rate  2000000\n"
        );
        let mut out = Vec::new();
        print_quotas(&quotas, Format::Json, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"entity\":{\"user\":\"alice\"},\"quotas\":{\"producer_byte_rate\":1048576.0,\
             \"request_percentage\":12.5}}\n\
             {\"entity\":{\"client-id\":null,\"user\":null},\
             \"quotas\":{\"consumer_byte_rate\":2000000.0}}\n"
        );
        let mut out = Vec::new();
        print_quotas(&[], Format::Table, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "USER  CLIENT_ID  KEY  VALUE\n"
        );
    }

    #[test]
    fn alter_prints_each_change() {
        let (entity, ops) =
            alter("--user alice --add-config producer_byte_rate=1048576 --delete-config request_percentage")
                .unwrap();
        let mut out = Vec::new();
        print_changed(&entity, &ops, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Set producer_byte_rate=1048576 for user=alice\n\
             Removed request_percentage from user=alice\n"
        );
    }
}
