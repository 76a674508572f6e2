//! `strata acl add | list | remove`: Kafka ACLs on a running broker, over the Kafka
//! protocol (CreateAcls, DescribeAcls, DeleteAcls), with the flags of `kafka-acls`.
//!
//! `add` creates every combination of the resources named (`--topic`, `--group`,
//! `--cluster`, `--transactional-id`), who (`--allow-principal` from each
//! `--allow-host`, `--deny-principal` from each `--deny-host`; every host, `*`, when
//! none is given) and the operations (`--operation`, or what `--producer` and
//! `--consumer` need). `remove` deletes the ACLs the same flags match, where a principal,
//! host or operation left out matches any; it asks for no confirmation. `list` prints the
//! ACLs of the resources named, or all of them.
//!
//! The flags are checked before anything is sent: a principal that is not
//! `User:<name>`, an unknown operation, or one the resource type does not have fail at
//! once. The broker needs an authorizer (`authorizer.class.name`); changing ACLs needs
//! ALTER on the cluster and listing them DESCRIBE, which super users have.

use std::io::{self, Write};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use client::acls::{CLUSTER_RESOURCE_NAME, WILDCARD};
use client::{AclBinding, AclFilter, AclOperation, Admin, PatternType, Permission, ResourceType};

use super::table::{non_empty, Format, Table};
use super::topic::{block_on, BrokersArg};
use super::Outcome;

#[derive(Args)]
pub struct AclArgs {
    #[command(flatten)]
    brokers: BrokersArg,
    #[command(subcommand)]
    command: AclCommand,
}

#[derive(Subcommand)]
enum AclCommand {
    /// Add ACLs: each principal, from each of its hosts, is allowed (or denied) each
    /// operation on each resource named.
    Add(ChangeArgs),
    /// List the ACLs of the resources named (of every pattern type unless
    /// --resource-pattern-type says), or all ACLs.
    List(ListArgs),
    /// Remove the ACLs the flags match (a principal, host or operation left out matches
    /// any) and print each one removed.
    Remove(ChangeArgs),
}

/// The resources a command names, any number of each.
#[derive(Args)]
struct ResourceArgs {
    /// A topic (repeatable).
    #[arg(long = "topic", value_name = "TOPIC", value_parser = non_empty)]
    topics: Vec<String>,
    /// A consumer group (repeatable).
    #[arg(long = "group", value_name = "GROUP", value_parser = non_empty)]
    groups: Vec<String>,
    /// The cluster (its resource name is `kafka-cluster`).
    #[arg(long)]
    cluster: bool,
    /// A producer's transactional.id (repeatable).
    #[arg(long = "transactional-id", value_name = "ID", value_parser = non_empty)]
    transactional_ids: Vec<String>,
}

#[derive(Args)]
struct ChangeArgs {
    #[command(flatten)]
    resources: ResourceArgs,
    /// How the resource names match: literal or prefixed (remove also takes any and
    /// match).
    #[arg(long, default_value = "literal", value_name = "TYPE")]
    resource_pattern_type: PatternType,
    /// A principal to allow, User:<name> (repeatable).
    #[arg(long = "allow-principal", value_name = "PRINCIPAL", value_parser = parse_principal)]
    allow_principals: Vec<String>,
    /// A principal to deny, User:<name> (repeatable).
    #[arg(long = "deny-principal", value_name = "PRINCIPAL", value_parser = parse_principal)]
    deny_principals: Vec<String>,
    /// A host the allowed principals connect from (repeatable) [default: add: `*`, every
    /// host; remove: any].
    #[arg(long = "allow-host", value_name = "HOST", requires = "allow_principals",
          value_parser = non_empty)]
    allow_hosts: Vec<String>,
    /// A host the denied principals connect from (repeatable) [default: add: `*`, every
    /// host; remove: any].
    #[arg(long = "deny-host", value_name = "HOST", requires = "deny_principals",
          value_parser = non_empty)]
    deny_hosts: Vec<String>,
    /// Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs,
    /// AlterConfigs, IdempotentWrite or All, in any case (repeatable) [remove's
    /// default: any].
    #[arg(long = "operation", value_name = "OPERATION")]
    operations: Vec<AclOperation>,
    /// What a producer needs: WRITE, DESCRIBE and CREATE on the topics (WRITE and
    /// DESCRIBE on the transactional ids).
    #[arg(long, conflicts_with_all = ["operations", "deny_principals", "deny_hosts"])]
    producer: bool,
    /// With --producer: an idempotent producer. It needs nothing more: since Kafka 3.0
    /// (KIP-679) WRITE on a topic implies IDEMPOTENT_WRITE.
    #[arg(long, requires = "producer")]
    idempotent: bool,
    /// What a consumer needs: READ and DESCRIBE on the topics, READ on the groups
    /// (give both --topic and --group).
    #[arg(long, conflicts_with_all = ["operations", "deny_principals", "deny_hosts"])]
    consumer: bool,
}

#[derive(Args)]
struct ListArgs {
    #[command(flatten)]
    resources: ResourceArgs,
    /// The patterns listed: any, match (every pattern that applies to the names given:
    /// the name, `*` and its prefixes), literal or prefixed.
    #[arg(long, default_value = "any", value_name = "TYPE")]
    resource_pattern_type: PatternType,
    /// Only the ACLs of this principal, User:<name> (repeatable).
    #[arg(long = "principal", value_name = "PRINCIPAL", value_parser = parse_principal)]
    principals: Vec<String>,
    /// `table`, or `json` (one object per ACL and line).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Whether the flags name ACLs to create or filters of ACLs to delete.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Add,
    Remove,
}

/// A resource named on the command line, with the operations its ACLs name.
struct Target {
    resource_type: ResourceType,
    name: String,
    operations: Vec<AclOperation>,
}

/// Who an ACL is for: `None` matches any principal or host (remove only).
struct Entry {
    principal: Option<String>,
    host: Option<String>,
    permission: Permission,
}

/// `User:<name>`, the only principal type Strata's listeners authenticate.
fn parse_principal(s: &str) -> Result<String, String> {
    match s.strip_prefix("User:") {
        Some(name) if !name.is_empty() => Ok(s.to_string()),
        _ => Err(format!(
            "{s:?} is not a principal: expected User:<name>, e.g. User:alice"
        )),
    }
}

impl AclArgs {
    pub fn run(self) -> Result<Outcome> {
        let brokers = &self.brokers;
        let mut out = io::stdout().lock();
        // Every command works out what to send before connecting, so bad flags fail
        // without a broker.
        match self.command {
            AclCommand::Add(args) => {
                let bindings = args.bindings()?;
                block_on(async {
                    let admin = Admin::new(brokers.connect().await?);
                    Ok(admin.create_acls(&bindings).await?)
                })?;
                for binding in &bindings {
                    writeln!(out, "Added {binding}")?;
                }
            }
            AclCommand::List(args) => {
                let filters = args.filters();
                let bindings = block_on(async {
                    let admin = Admin::new(brokers.connect().await?);
                    describe(&admin, &filters).await
                })?;
                print_bindings(&bindings, args.format, &mut out)?;
            }
            AclCommand::Remove(args) => {
                let filters = args.filters(Change::Remove)?;
                let removed = block_on(async {
                    let admin = Admin::new(brokers.connect().await?);
                    Ok(admin.delete_acls(&filters).await?)
                })?;
                print_removed(&removed, &mut out)?;
            }
        }
        out.flush()?;
        Ok(Outcome::Clean)
    }
}

impl ResourceArgs {
    /// The resources named, by type: topics, groups, the cluster, transactional ids.
    fn named(&self) -> Vec<(ResourceType, String)> {
        let topics = self.topics.iter().map(|t| (ResourceType::Topic, t.clone()));
        let groups = self.groups.iter().map(|g| (ResourceType::Group, g.clone()));
        let cluster = self
            .cluster
            .then(|| (ResourceType::Cluster, CLUSTER_RESOURCE_NAME.to_string()));
        let ids = self
            .transactional_ids
            .iter()
            .map(|id| (ResourceType::TransactionalId, id.clone()));
        topics.chain(groups).chain(cluster).chain(ids).collect()
    }
}

impl ChangeArgs {
    /// The ACLs `add` creates.
    fn bindings(&self) -> Result<Vec<AclBinding>> {
        if !matches!(
            self.resource_pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            bail!(
                "--resource-pattern-type {} only filters: add takes literal or prefixed",
                self.resource_pattern_type
            );
        }
        self.filters(Change::Add)?
            .into_iter()
            .map(definite)
            .collect()
    }

    /// Every combination of resource, entry and operation, as filters; for `add`
    /// every field is set.
    fn filters(&self, change: Change) -> Result<Vec<AclFilter>> {
        let targets = self.targets(change)?;
        let entries = self.entries(change)?;
        let mut filters = Vec::new();
        for target in &targets {
            for entry in &entries {
                for &operation in &target.operations {
                    filters.push(AclFilter {
                        resource_type: target.resource_type,
                        resource_name: Some(target.name.clone()),
                        pattern_type: self.resource_pattern_type,
                        principal: entry.principal.clone(),
                        host: entry.host.clone(),
                        operation,
                        permission: entry.permission,
                    });
                }
            }
        }
        Ok(filters)
    }

    /// The resources named, each with the operations of its ACLs (checked against the
    /// resource type).
    fn targets(&self, change: Change) -> Result<Vec<Target>> {
        let resources = &self.resources;
        let named = resources.named();
        if named.is_empty() {
            bail!("name a resource: --topic, --group, --cluster or --transactional-id");
        }
        if self.consumer && (resources.topics.is_empty() || resources.groups.is_empty()) {
            bail!("--consumer needs --topic and --group");
        }
        if self.producer && resources.topics.is_empty() && resources.transactional_ids.is_empty() {
            bail!("--producer needs --topic (or --transactional-id)");
        }
        named
            .into_iter()
            .map(|(resource_type, name)| {
                let operations = self.operations_on(resource_type, &name, change)?;
                Ok(Target {
                    resource_type,
                    name,
                    operations,
                })
            })
            .collect()
    }

    /// The operations of the ACLs on one resource: `--operation`, or what `--producer`
    /// and `--consumer` need; remove without either matches any operation.
    fn operations_on(
        &self,
        resource_type: ResourceType,
        name: &str,
        change: Change,
    ) -> Result<Vec<AclOperation>> {
        let convenience = self.producer || self.consumer;
        let mut operations = if convenience {
            self.convenience_operations(resource_type)
        } else {
            self.operations.clone()
        };
        if operations.is_empty() {
            if change == Change::Add || convenience {
                bail!("no operation for {resource_type} {name:?}: give --operation");
            }
            operations.push(AclOperation::Any);
        }
        for &operation in &operations {
            check_operation(resource_type, operation, change)?;
        }
        Ok(operations)
    }

    /// What `--producer` and `--consumer` need on a resource of `resource_type`.
    fn convenience_operations(&self, resource_type: ResourceType) -> Vec<AclOperation> {
        use AclOperation as Op;
        let producer: &[Op] = match resource_type {
            ResourceType::Topic => &[Op::Write, Op::Describe, Op::Create],
            ResourceType::TransactionalId => &[Op::Write, Op::Describe],
            _ => &[],
        };
        let consumer: &[Op] = match resource_type {
            ResourceType::Topic => &[Op::Read, Op::Describe],
            ResourceType::Group => &[Op::Read],
            _ => &[],
        };
        let mut operations: Vec<Op> = Vec::new();
        let wanted = [(self.producer, producer), (self.consumer, consumer)];
        for &operation in wanted
            .iter()
            .filter(|(on, _)| *on)
            .flat_map(|(_, ops)| *ops)
        {
            if !operations.contains(&operation) {
                operations.push(operation);
            }
        }
        operations
    }

    /// Who the ACLs are for: each principal from each of its hosts. Add needs a
    /// principal; remove without one matches any.
    fn entries(&self, change: Change) -> Result<Vec<Entry>> {
        let default_host = (change == Change::Add).then(|| WILDCARD.to_string());
        let sides = [
            (&self.allow_principals, &self.allow_hosts, Permission::Allow),
            (&self.deny_principals, &self.deny_hosts, Permission::Deny),
        ];
        let mut entries = Vec::new();
        for (principals, hosts, permission) in sides {
            let hosts: Vec<Option<String>> = if hosts.is_empty() {
                vec![default_host.clone()]
            } else {
                hosts.iter().cloned().map(Some).collect()
            };
            for principal in principals {
                entries.extend(hosts.iter().map(|host| Entry {
                    principal: Some(principal.clone()),
                    host: host.clone(),
                    permission,
                }));
            }
        }
        if entries.is_empty() {
            if change == Change::Add {
                bail!("name who the ACLs are for: --allow-principal or --deny-principal");
            }
            entries.push(Entry {
                principal: None,
                host: None,
                permission: Permission::Any,
            });
        }
        Ok(entries)
    }
}

/// Refuses an operation the resource type does not have, and ANY in an ACL to add.
fn check_operation(
    resource_type: ResourceType,
    operation: AclOperation,
    change: Change,
) -> Result<()> {
    if operation == AclOperation::Any {
        if change == Change::Add {
            bail!("--operation any only filters: name the operation to allow or deny");
        }
        return Ok(());
    }
    let supported = resource_type.operations();
    if !supported.contains(&operation) {
        let names: Vec<&str> = supported.iter().map(|op| op.name()).collect();
        bail!(
            "{resource_type} has no operation {operation}: it takes {}",
            names.join(", ")
        );
    }
    Ok(())
}

/// The binding a filter of `add` stands for; `filters` sets every field for `add`.
fn definite(filter: AclFilter) -> Result<AclBinding> {
    let (Some(resource_name), Some(principal), Some(host)) =
        (filter.resource_name, filter.principal, filter.host)
    else {
        bail!("an ACL to add has no resource name, principal or host");
    };
    Ok(AclBinding {
        resource_type: filter.resource_type,
        resource_name,
        pattern_type: filter.pattern_type,
        principal,
        host,
        operation: filter.operation,
        permission: filter.permission,
    })
}

impl ListArgs {
    /// One filter per resource and principal named; open where none is.
    fn filters(&self) -> Vec<AclFilter> {
        let mut resources: Vec<(ResourceType, Option<String>)> = self
            .resources
            .named()
            .into_iter()
            .map(|(resource_type, name)| (resource_type, Some(name)))
            .collect();
        if resources.is_empty() {
            resources.push((ResourceType::Any, None));
        }
        let principals: Vec<Option<String>> = if self.principals.is_empty() {
            vec![None]
        } else {
            self.principals.iter().cloned().map(Some).collect()
        };
        let mut filters = Vec::new();
        for (resource_type, resource_name) in &resources {
            filters.extend(principals.iter().map(|principal| AclFilter {
                resource_type: *resource_type,
                resource_name: resource_name.clone(),
                pattern_type: self.resource_pattern_type,
                principal: principal.clone(),
                ..AclFilter::any()
            }));
        }
        filters
    }
}

/// The ACLs any of `filters` matches, sorted, each once.
async fn describe(admin: &Admin, filters: &[AclFilter]) -> Result<Vec<AclBinding>> {
    let mut bindings = Vec::new();
    for filter in filters {
        bindings.extend(admin.describe_acls(filter).await?);
    }
    bindings.sort();
    bindings.dedup();
    Ok(bindings)
}

/// A table with a row per ACL, or one JSON object per ACL and line (keys sorted).
fn print_bindings(bindings: &[AclBinding], format: Format, out: &mut impl Write) -> Result<()> {
    match format {
        Format::Table => {
            let mut table = Table::new(&[
                "RESOURCE_TYPE",
                "RESOURCE_NAME",
                "PATTERN_TYPE",
                "PRINCIPAL",
                "HOST",
                "OPERATION",
                "PERMISSION",
            ]);
            for b in bindings {
                table.row(vec![
                    b.resource_type.to_string(),
                    b.resource_name.clone(),
                    b.pattern_type.to_string(),
                    b.principal.clone(),
                    b.host.clone(),
                    b.operation.to_string(),
                    b.permission.to_string(),
                ]);
            }
            table.print(out)?;
        }
        Format::Json => {
            for b in bindings {
                let line = serde_json::json!({
                    "resource_type": b.resource_type.name(),
                    "resource_name": b.resource_name,
                    "pattern_type": b.pattern_type.name(),
                    "principal": b.principal,
                    "host": b.host,
                    "operation": b.operation.name(),
                    "permission": b.permission.name(),
                });
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(())
}

fn print_removed(removed: &[AclBinding], out: &mut impl Write) -> Result<()> {
    if removed.is_empty() {
        writeln!(out, "No ACL matched; nothing was removed.")?;
    }
    for binding in removed {
        writeln!(out, "Removed {binding}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use AclOperation as Op;
    use Permission as Pm;
    use ResourceType as Rt;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        acl: AclArgs,
    }

    /// `line` split at blanks, as `strata acl` would get it.
    fn parse(line: &str) -> Result<AclCommand, clap::Error> {
        let argv = std::iter::once("strata-acl").chain(line.split_whitespace());
        Cli::try_parse_from(argv).map(|cli| cli.acl.command)
    }

    fn add(flags: &str) -> Result<Vec<AclBinding>> {
        match parse(&format!("add {flags}"))? {
            AclCommand::Add(a) => a.bindings(),
            _ => unreachable!("parsed an add"),
        }
    }

    fn add_error(flags: &str) -> String {
        match add(flags) {
            Ok(_) => panic!("{flags:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn remove(flags: &str) -> Result<Vec<AclFilter>> {
        match parse(&format!("remove {flags}"))? {
            AclCommand::Remove(a) => a.filters(Change::Remove),
            _ => unreachable!("parsed a remove"),
        }
    }

    fn list(flags: &str) -> Vec<AclFilter> {
        match parse(&format!("list {flags}")) {
            Ok(AclCommand::List(a)) => a.filters(),
            _ => panic!("{flags:?} is a valid list"),
        }
    }

    fn alice(rt: Rt, name: &str, op: Op) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: op,
            permission: Pm::Allow,
        }
    }

    #[test]
    fn add_makes_every_combination_with_any_host_by_default() {
        let bindings =
            add("--allow-principal User:alice --operation Write --operation describe --topic t");
        assert_eq!(
            bindings.unwrap(),
            [
                alice(Rt::Topic, "t", Op::Write),
                alice(Rt::Topic, "t", Op::Describe)
            ]
        );
        let bindings = add("--deny-principal User:alice --deny-host 10.0.0.1 \
                            --deny-host 10.0.0.2 --operation create --cluster")
        .unwrap();
        let hosts: Vec<&str> = bindings.iter().map(|b| b.host.as_str()).collect();
        assert_eq!(hosts, ["10.0.0.1", "10.0.0.2"]);
        assert!(bindings
            .iter()
            .all(|b| b.resource_name == CLUSTER_RESOURCE_NAME
                && (b.permission, b.operation) == (Pm::Deny, Op::Create)));
    }

    #[test]
    fn prefixed_patterns_apply_to_every_resource_named() {
        let bindings = add(
            "--allow-principal User:alice --operation read --topic logs- \
                            --group g --resource-pattern-type Prefixed",
        )
        .unwrap();
        let named: Vec<(Rt, &str, PatternType)> = bindings
            .iter()
            .map(|b| (b.resource_type, b.resource_name.as_str(), b.pattern_type))
            .collect();
        assert_eq!(
            named,
            [
                (Rt::Topic, "logs-", PatternType::Prefixed),
                (Rt::Group, "g", PatternType::Prefixed)
            ]
        );
        let e = add_error(
            "--allow-principal User:alice --operation read --topic t --resource-pattern-type match",
        );
        assert!(e.contains("add takes literal or prefixed"), "{e}");
    }

    #[test]
    fn producer_and_consumer_name_what_clients_need() {
        let producer = add("--allow-principal User:alice --producer --topic t").unwrap();
        let ops: Vec<Op> = producer.iter().map(|b| b.operation).collect();
        assert_eq!(ops, [Op::Write, Op::Describe, Op::Create]);
        let consumer = add("--allow-principal User:alice --consumer --topic t --group g");
        assert_eq!(
            consumer.unwrap(),
            [
                alice(Rt::Topic, "t", Op::Read),
                alice(Rt::Topic, "t", Op::Describe),
                alice(Rt::Group, "g", Op::Read)
            ]
        );
        let both = add(
            "--allow-principal User:alice --producer --idempotent --consumer \
                        --topic t --group g",
        )
        .unwrap();
        let ops: Vec<Op> = both.iter().map(|b| b.operation).collect();
        assert_eq!(
            ops,
            [Op::Write, Op::Describe, Op::Create, Op::Read, Op::Read]
        );
        let e = add_error("--allow-principal User:alice --consumer --topic t");
        assert!(e.contains("--consumer needs --topic and --group"), "{e}");
        let e = add_error("--allow-principal User:alice --producer --topic t --cluster");
        assert!(e.contains("no operation for CLUSTER"), "{e}");
    }

    #[test]
    fn bad_flags_fail_before_anything_is_sent() {
        let refused = |line: &str| match parse(line) {
            Ok(_) => panic!("{line:?} was accepted"),
            Err(e) => e.to_string(),
        };
        let e = refused("add --allow-principal alice --operation read --topic t");
        assert!(
            e.contains("\"alice\" is not a principal: expected User:<name>"),
            "{e}"
        );
        let e = refused("add --allow-principal User:alice --operation Fly --topic t");
        assert!(e.contains("unknown operation \"Fly\""), "{e}");
        // clap's own checks: hosts need their principals, --producer takes no
        // --operation, --idempotent needs --producer.
        refused("add --allow-host h --operation read --topic t");
        refused("add --allow-principal User:a --producer --operation read --topic t");
        refused("add --allow-principal User:a --idempotent --topic t");
        let e = add_error("--allow-principal User:alice --operation read --cluster");
        assert!(e.contains("CLUSTER has no operation READ"), "{e}");
        let e = add_error("--allow-principal User:alice --topic t");
        assert!(e.contains("give --operation"), "{e}");
        let e = add_error("--operation read --topic t");
        assert!(e.contains("--allow-principal or --deny-principal"), "{e}");
        let e = add_error("--allow-principal User:alice --operation read");
        assert!(e.contains("name a resource"), "{e}");
        let e = add_error("--allow-principal User:a --operation any --topic t");
        assert!(e.contains("only filters"), "{e}");
        let empty_topic = [
            "strata-acl",
            "add",
            "--allow-principal",
            "User:a",
            "--topic",
            "",
        ];
        assert!(Cli::try_parse_from(empty_topic).is_err());
    }

    #[test]
    fn remove_leaves_out_what_is_not_named() {
        let filters = remove("--topic t").unwrap();
        let topic_t = AclFilter {
            resource_type: Rt::Topic,
            resource_name: Some("t".into()),
            pattern_type: PatternType::Literal,
            ..AclFilter::any()
        };
        assert_eq!(filters, std::slice::from_ref(&topic_t));
        let filters = remove("--allow-principal User:alice --topic t --operation write").unwrap();
        let write = AclFilter {
            principal: Some("User:alice".into()),
            operation: Op::Write,
            permission: Pm::Allow,
            ..topic_t
        };
        assert_eq!(filters, [write]);
        let any_pattern = remove("--group g --resource-pattern-type any").unwrap();
        assert_eq!(any_pattern[0].pattern_type, PatternType::Any);
        assert!(remove("--allow-principal User:alice").is_err());
    }

    #[test]
    fn list_filters_are_open_unless_named() {
        assert_eq!(list(""), [AclFilter::any()]);
        let filters = list("--topic t --group g --principal User:alice");
        let named: Vec<(Rt, Option<&str>, Option<&str>)> = filters
            .iter()
            .map(|f| {
                (
                    f.resource_type,
                    f.resource_name.as_deref(),
                    f.principal.as_deref(),
                )
            })
            .collect();
        let alice = Some("User:alice");
        assert_eq!(
            named,
            [(Rt::Topic, Some("t"), alice), (Rt::Group, Some("g"), alice)]
        );
        assert!(filters.iter().all(|f| f.pattern_type == PatternType::Any));
        let prefixed = list("--resource-pattern-type prefixed");
        assert_eq!(prefixed[0].pattern_type, PatternType::Prefixed);
    }

    #[test]
    fn json_lines_name_every_field() {
        let mut out = Vec::new();
        print_bindings(&[alice(Rt::Topic, "t", Op::Write)], Format::Json, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"host\":\"*\",\"operation\":\"WRITE\",\"pattern_type\":\"LITERAL\",\
             \"permission\":\"ALLOW\",\"principal\":\"User:alice\",\"resource_name\":\"t\",\
             \"resource_type\":\"TOPIC\"}\n"
        );
    }
}
