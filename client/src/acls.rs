//! Kafka's access-control lists, as `kafka-acls` and the Java `Admin` manage them:
//! create ACLs, describe and delete those a filter matches.
//!
//! An ACL ([`AclBinding`]) allows or denies one principal (`User:alice`), connecting from
//! one host (`*`: any), one operation on a resource pattern: a resource type, a name, and
//! how the name matches (LITERAL: that name, or every name when it is `*`; PREFIXED:
//! every name starting with it). An [`AclFilter`] leaves fields open (ANY) to match many
//! ACLs; its pattern type MATCH selects every pattern that applies to a name (the name
//! itself, `*`, and the prefixes of it).
//!
//! Guarantees: every call goes to the controller (or any broker when the metadata names
//! none), so a describe right after a change sees it. Bindings and filters this client
//! can tell are wrong (an ACL to create with ANY or MATCH in it, an empty string, a value
//! decoded as UNKNOWN) are refused with [`Error::InvalidArgument`] before anything is
//! sent. The broker's refusals are [`Error::Kafka`] naming the ACL or filter, with the
//! broker's message: SECURITY_DISABLED when it has no authorizer,
//! CLUSTER_AUTHORIZATION_FAILED when the caller may not ALTER (create, delete) or
//! DESCRIBE (describe) the cluster, INVALID_REQUEST for an ACL it rejects. A broker
//! without these APIs gives [`Error::UnsupportedApi`]. Codes this client does not know
//! decode as `Unknown`, as Kafka's own clients decode them.

use std::fmt;
use std::str::FromStr;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::DescribeAclsResource;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::error::{Error, KafkaCode, Result};

/// The name of the one Cluster resource.
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";
/// The host of an ACL that applies from every host; as a LITERAL resource name, every
/// resource of the type.
pub const WILDCARD: &str = "*";

/// Kafka's `UNKNOWN_SERVER_ERROR`, for a response with a result missing.
const UNKNOWN_SERVER_ERROR: i16 = -1;

/// An enum of Kafka's ACL model: its codes on the wire, its upper-case names, and parsing
/// that ignores case, `-` and `_` (`DescribeConfigs`, `describe-configs`). Every enum has
/// `Unknown` (Kafka's UNKNOWN, code 0), which only decoding produces.
macro_rules! kafka_enum {
    (
        $(#[$doc:meta])*
        $name:ident, $what:literal, {
            $($(#[$variant_doc:meta])* $variant:ident = $code:literal => $text:literal,)+
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            /// A code this client does not know (Kafka's UNKNOWN); never sent.
            Unknown,
            $($(#[$variant_doc])* $variant,)+
        }

        impl $name {
            /// Every value but `Unknown`, in code order.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),+];

            /// Kafka's code on the wire.
            pub fn code(self) -> i8 {
                match self {
                    $name::Unknown => 0,
                    $($name::$variant => $code,)+
                }
            }

            /// The value of a code; a code this client does not know is `Unknown`.
            pub fn from_code(code: i8) -> $name {
                match code {
                    $($code => $name::$variant,)+
                    _ => $name::Unknown,
                }
            }

            /// Kafka's name (`DESCRIBE_CONFIGS`).
            pub fn name(self) -> &'static str {
                match self {
                    $name::Unknown => "UNKNOWN",
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<$name> {
                parse_name(s, $what, $name::KNOWN, |v| v.name())
            }
        }
    };
}

kafka_enum! {
    /// What kind of resource an ACL is about.
    ResourceType, "resource type", {
        /// In a filter: every resource type.
        Any = 1 => "ANY",
        /// A topic.
        Topic = 2 => "TOPIC",
        /// A consumer group.
        Group = 3 => "GROUP",
        /// The cluster: one resource, named [`CLUSTER_RESOURCE_NAME`].
        Cluster = 4 => "CLUSTER",
        /// A producer's `transactional.id`.
        TransactionalId = 5 => "TRANSACTIONAL_ID",
    }
}

kafka_enum! {
    /// How an ACL's resource name selects resources.
    PatternType, "resource pattern type", {
        /// In a filter: every pattern type.
        Any = 1 => "ANY",
        /// In a filter: every pattern that applies to the name (the name itself, the
        /// LITERAL `*`, and PREFIXED prefixes of it).
        Match = 2 => "MATCH",
        /// The resource of that name; `*` is every resource of the type.
        Literal = 3 => "LITERAL",
        /// Every resource whose name starts with the name.
        Prefixed = 4 => "PREFIXED",
    }
}

kafka_enum! {
    /// What an ACL allows or denies.
    AclOperation, "operation", {
        /// In a filter: every operation.
        Any = 1 => "ANY",
        /// Every operation.
        All = 2 => "ALL",
        /// Consume a topic; join a group, commit its offsets.
        Read = 3 => "READ",
        /// Produce to a topic; use a transactional id.
        Write = 4 => "WRITE",
        /// Create topics.
        Create = 5 => "CREATE",
        /// Delete topics, records, groups.
        Delete = 6 => "DELETE",
        /// Change the cluster (ACLs, users, partition moves) or a topic.
        Alter = 7 => "ALTER",
        /// See a resource (metadata, offsets, ACLs of the cluster).
        Describe = 8 => "DESCRIBE",
        /// Inter-broker requests on the cluster.
        ClusterAction = 9 => "CLUSTER_ACTION",
        /// Read configs.
        DescribeConfigs = 10 => "DESCRIBE_CONFIGS",
        /// Change configs.
        AlterConfigs = 11 => "ALTER_CONFIGS",
        /// Obtain a producer id for idempotent writes.
        IdempotentWrite = 12 => "IDEMPOTENT_WRITE",
    }
}

kafka_enum! {
    /// Whether an ACL allows or denies; a DENY wins over any ALLOW.
    Permission, "permission", {
        /// In a filter: both.
        Any = 1 => "ANY",
        /// The operation is refused.
        Deny = 2 => "DENY",
        /// The operation is allowed.
        Allow = 3 => "ALLOW",
    }
}

impl ResourceType {
    /// The operations an ACL on this resource type can name: Kafka's
    /// `AclEntry.supportedOperations` and ALL. None for `Any` and `Unknown`.
    pub fn operations(self) -> &'static [AclOperation] {
        use AclOperation as Op;
        match self {
            ResourceType::Topic => &[
                Op::All,
                Op::Read,
                Op::Write,
                Op::Create,
                Op::Delete,
                Op::Alter,
                Op::Describe,
                Op::DescribeConfigs,
                Op::AlterConfigs,
            ],
            ResourceType::Group => &[
                Op::All,
                Op::Read,
                Op::Delete,
                Op::Describe,
                Op::DescribeConfigs,
                Op::AlterConfigs,
            ],
            ResourceType::Cluster => &[
                Op::All,
                Op::Create,
                Op::Alter,
                Op::Describe,
                Op::ClusterAction,
                Op::DescribeConfigs,
                Op::AlterConfigs,
                Op::IdempotentWrite,
            ],
            ResourceType::TransactionalId => &[Op::All, Op::Write, Op::Describe],
            ResourceType::Any | ResourceType::Unknown => &[],
        }
    }
}

/// One ACL: `permission` for `principal`, connecting from `host`, to do `operation` on
/// the resources of `resource_type` that `resource_name` and `pattern_type` select.
/// Ordered by resource, then principal, host, operation and permission.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    /// Topic, group, cluster or transactional id.
    pub resource_type: ResourceType,
    /// The name, the prefix, or `*` (LITERAL) for every resource of the type.
    pub resource_name: String,
    /// LITERAL or PREFIXED.
    pub pattern_type: PatternType,
    /// `User:<name>` (`User:*` for every user).
    pub principal: String,
    /// The client's address, or [`WILDCARD`] for any.
    pub host: String,
    /// What is allowed or denied.
    pub operation: AclOperation,
    /// ALLOW or DENY.
    pub permission: Permission,
}

/// The ACLs to describe or delete: those matching every field. ANY (or `None`) matches
/// every value; pattern type MATCH, every pattern that applies to `resource_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    /// A resource type, or `Any`.
    pub resource_type: ResourceType,
    /// A resource name, or `None` for every name.
    pub resource_name: Option<String>,
    /// A pattern type, `Any`, or `Match`.
    pub pattern_type: PatternType,
    /// A principal, or `None` for every principal.
    pub principal: Option<String>,
    /// A host, or `None` for every host.
    pub host: Option<String>,
    /// An operation, or `Any`.
    pub operation: AclOperation,
    /// ALLOW, DENY, or `Any`.
    pub permission: Permission,
}

impl AclFilter {
    /// The filter that matches every ACL.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: Permission::Any,
        }
    }
}

impl fmt::Display for AclBinding {
    /// `ALLOW User:alice WRITE on TOPIC "t" (LITERAL) from host *`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} on {} {:?} ({}) from host {}",
            self.permission,
            self.principal,
            self.operation,
            self.resource_type,
            self.resource_name,
            self.pattern_type,
            self.host
        )
    }
}

impl fmt::Display for AclFilter {
    /// As an [`AclBinding`], with `any principal`, `any name`, `any host` where open.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self
            .resource_name
            .as_ref()
            .map_or_else(|| "any name".to_string(), |n| format!("{n:?}"));
        let host = self
            .host
            .as_ref()
            .map_or_else(|| "any host".to_string(), |h| format!("host {h}"));
        write!(
            f,
            "{} {} {} on {} {name} ({}) from {host}",
            self.permission,
            self.principal.as_deref().unwrap_or("any principal"),
            self.operation,
            self.resource_type,
            self.pattern_type,
        )
    }
}

impl Admin {
    /// Creates `bindings` in one request; an empty list sends nothing. Each binding is
    /// checked first: no ANY, MATCH or UNKNOWN, no empty string. Fails with the first
    /// binding the broker refuses, named; the others of the request may have been
    /// created (describe to see).
    pub async fn create_acls(&self, bindings: &[AclBinding]) -> Result<()> {
        bindings.iter().try_for_each(check_definite)?;
        if bindings.is_empty() {
            return Ok(());
        }
        let creations = bindings.iter().map(creation).collect();
        let request = CreateAclsRequest::default().with_creations(creations);
        let response = self.cluster().send_controller(&request).await?;
        check_count("create ACLs", bindings.len(), response.results.len())?;
        for (binding, result) in bindings.iter().zip(&response.results) {
            Error::check(
                result.error_code,
                || format!("create ACL {binding}"),
                result.error_message.as_deref(),
            )?;
        }
        Ok(())
    }

    /// The ACLs `filter` matches, sorted.
    pub async fn describe_acls(&self, filter: &AclFilter) -> Result<Vec<AclBinding>> {
        check_known(filter)?;
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type.code())
            .with_resource_name_filter(filter.resource_name.as_deref().map(str_bytes))
            .with_pattern_type_filter(filter.pattern_type.code())
            .with_principal_filter(filter.principal.as_deref().map(str_bytes))
            .with_host_filter(filter.host.as_deref().map(str_bytes))
            .with_operation(filter.operation.code())
            .with_permission_type(filter.permission.code());
        let response = self.cluster().send_controller(&request).await?;
        Error::check(
            response.error_code,
            || format!("describe ACLs matching {filter}"),
            response.error_message.as_deref(),
        )?;
        let mut bindings = described(&response.resources);
        bindings.sort();
        Ok(bindings)
    }

    /// Deletes the ACLs that any of `filters` matches, in one request, and returns them
    /// sorted, each once; an empty list sends nothing. Fails with the first filter or
    /// ACL the broker reports an error for; ACLs of other filters may have been deleted
    /// (describe to see).
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> Result<Vec<AclBinding>> {
        filters.iter().try_for_each(check_known)?;
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        let request =
            DeleteAclsRequest::default().with_filters(filters.iter().map(delete_filter).collect());
        let response = self.cluster().send_controller(&request).await?;
        check_count("delete ACLs", filters.len(), response.filter_results.len())?;
        let mut deleted = Vec::new();
        for (filter, result) in filters.iter().zip(&response.filter_results) {
            deleted.extend(deleted_by(filter, result)?);
        }
        deleted.sort();
        deleted.dedup();
        Ok(deleted)
    }
}

/// `Ok` when `binding` can be created: no filter value (ANY, MATCH), no UNKNOWN, no
/// empty string.
fn check_definite(binding: &AclBinding) -> Result<()> {
    use {AclOperation as Op, PatternType as Pt, Permission as Pm, ResourceType as Rt};
    let open = [
        (
            matches!(binding.resource_type, Rt::Any | Rt::Unknown),
            "resource type",
        ),
        (binding.resource_name.is_empty(), "resource name"),
        (
            !matches!(binding.pattern_type, Pt::Literal | Pt::Prefixed),
            "pattern type",
        ),
        (binding.principal.is_empty(), "principal"),
        (binding.host.is_empty(), "host"),
        (
            matches!(binding.operation, Op::Any | Op::Unknown),
            "operation",
        ),
        (
            matches!(binding.permission, Pm::Any | Pm::Unknown),
            "permission",
        ),
    ];
    match open.iter().find(|(is_open, _)| *is_open) {
        None => Ok(()),
        Some((_, field)) => Err(Error::InvalidArgument(format!(
            "cannot create ACL {binding}: its {field} is empty, a filter value or unknown"
        ))),
    }
}

/// `Ok` unless a field of `filter` is UNKNOWN, which no broker can match.
fn check_known(filter: &AclFilter) -> Result<()> {
    let unknown = filter.resource_type == ResourceType::Unknown
        || filter.pattern_type == PatternType::Unknown
        || filter.operation == AclOperation::Unknown
        || filter.permission == Permission::Unknown;
    if unknown {
        return Err(Error::InvalidArgument(format!(
            "ACL filter {filter} has an UNKNOWN field"
        )));
    }
    Ok(())
}

/// An error when the broker answered `answered` results for `sent` entries.
fn check_count(what: &str, sent: usize, answered: usize) -> Result<()> {
    if sent == answered {
        return Ok(());
    }
    Err(Error::Kafka {
        context: what.to_string(),
        code: KafkaCode(UNKNOWN_SERVER_ERROR),
        message: Some(format!("{answered} results for {sent} entries")),
    })
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn creation(binding: &AclBinding) -> AclCreation {
    AclCreation::default()
        .with_resource_type(binding.resource_type.code())
        .with_resource_name(str_bytes(&binding.resource_name))
        .with_resource_pattern_type(binding.pattern_type.code())
        .with_principal(str_bytes(&binding.principal))
        .with_host(str_bytes(&binding.host))
        .with_operation(binding.operation.code())
        .with_permission_type(binding.permission.code())
}

fn delete_filter(filter: &AclFilter) -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(filter.resource_type.code())
        .with_resource_name_filter(filter.resource_name.as_deref().map(str_bytes))
        .with_pattern_type_filter(filter.pattern_type.code())
        .with_principal_filter(filter.principal.as_deref().map(str_bytes))
        .with_host_filter(filter.host.as_deref().map(str_bytes))
        .with_operation(filter.operation.code())
        .with_permission_type(filter.permission.code())
}

/// The ACLs of a DescribeAcls response, one per resource and entry.
fn described(resources: &[DescribeAclsResource]) -> Vec<AclBinding> {
    resources
        .iter()
        .flat_map(|resource| {
            resource.acls.iter().map(move |acl| AclBinding {
                resource_type: ResourceType::from_code(resource.resource_type),
                resource_name: resource.resource_name.to_string(),
                pattern_type: PatternType::from_code(resource.pattern_type),
                principal: acl.principal.to_string(),
                host: acl.host.to_string(),
                operation: AclOperation::from_code(acl.operation),
                permission: Permission::from_code(acl.permission_type),
            })
        })
        .collect()
}

/// The ACLs one DeleteAcls filter deleted, or the first error reported for it.
fn deleted_by(filter: &AclFilter, result: &DeleteAclsFilterResult) -> Result<Vec<AclBinding>> {
    Error::check(
        result.error_code,
        || format!("delete ACLs matching {filter}"),
        result.error_message.as_deref(),
    )?;
    let mut deleted = Vec::with_capacity(result.matching_acls.len());
    for acl in &result.matching_acls {
        let binding = matching(acl);
        Error::check(
            acl.error_code,
            || format!("delete ACL {binding}"),
            acl.error_message.as_deref(),
        )?;
        deleted.push(binding);
    }
    Ok(deleted)
}

fn matching(acl: &DeleteAclsMatchingAcl) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::from_code(acl.resource_type),
        resource_name: acl.resource_name.to_string(),
        pattern_type: PatternType::from_code(acl.pattern_type),
        principal: acl.principal.to_string(),
        host: acl.host.to_string(),
        operation: AclOperation::from_code(acl.operation),
        permission: Permission::from_code(acl.permission_type),
    }
}

/// The value of `known` whose name is `s`, ignoring case, `-` and `_`.
fn parse_name<T: Copy>(
    s: &str,
    what: &str,
    known: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T> {
    let wanted = comparable(s);
    known
        .iter()
        .copied()
        .find(|&v| comparable(name(v)) == wanted)
        .ok_or_else(|| {
            let names: Vec<&str> = known.iter().map(|&v| name(v)).collect();
            Error::InvalidArgument(format!(
                "unknown {what} {s:?}: expected one of {}",
                names.join(", ")
            ))
        })
}

/// `describe-configs`, `DescribeConfigs`, `DESCRIBE_CONFIGS` → `DESCRIBECONFIGS`.
fn comparable(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_acls_response::AclDescription;

    use super::*;

    fn binding(operation: AclOperation) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "t".into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: WILDCARD.into(),
            operation,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn names_parse_in_kafka_acls_spellings() {
        for s in [
            "DescribeConfigs",
            "describe-configs",
            "describe_configs",
            "DESCRIBE_CONFIGS",
        ] {
            assert_eq!(
                s.parse::<AclOperation>().unwrap(),
                AclOperation::DescribeConfigs
            );
        }
        assert_eq!("read".parse::<AclOperation>().unwrap(), AclOperation::Read);
        assert_eq!("All".parse::<AclOperation>().unwrap(), AclOperation::All);
        assert_eq!(
            "transactional-id".parse::<ResourceType>().unwrap(),
            ResourceType::TransactionalId
        );
        assert_eq!(
            "Prefixed".parse::<PatternType>().unwrap(),
            PatternType::Prefixed
        );
        assert_eq!("allow".parse::<Permission>().unwrap(), Permission::Allow);
        assert_eq!(
            AclOperation::IdempotentWrite.to_string(),
            "IDEMPOTENT_WRITE"
        );
        assert_eq!(
            ResourceType::TransactionalId.to_string(),
            "TRANSACTIONAL_ID"
        );
    }

    #[test]
    fn unknown_names_are_refused_with_the_choices() {
        let e = "Fly".parse::<AclOperation>().unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)));
        let text = e.to_string();
        assert!(text.contains("unknown operation \"Fly\""), "{text}");
        assert!(text.contains("READ, WRITE"), "{text}");
        // UNKNOWN is what decoding gives a code it does not know: never a choice.
        assert!("unknown".parse::<PatternType>().is_err());
        assert!("".parse::<Permission>().is_err());
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_decode_as_unknown() {
        for &op in AclOperation::KNOWN {
            assert_eq!(AclOperation::from_code(op.code()), op);
        }
        for &rt in ResourceType::KNOWN {
            assert_eq!(ResourceType::from_code(rt.code()), rt);
        }
        assert_eq!(AclOperation::IdempotentWrite.code(), 12);
        assert_eq!(ResourceType::TransactionalId.code(), 5);
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert_eq!(Permission::Allow.code(), 3);
        assert_eq!(ResourceType::from_code(7), ResourceType::Unknown);
        assert_eq!(AclOperation::from_code(0), AclOperation::Unknown);
        assert_eq!(Permission::Unknown.code(), 0);
    }

    #[test]
    fn only_definite_bindings_are_created() {
        assert!(check_definite(&binding(AclOperation::Write)).is_ok());
        assert!(check_definite(&binding(AclOperation::Any)).is_err());
        let matching = AclBinding {
            pattern_type: PatternType::Match,
            ..binding(AclOperation::Read)
        };
        let e = check_definite(&matching).unwrap_err().to_string();
        assert!(e.contains("pattern type"), "{e}");
        let no_host = AclBinding {
            host: String::new(),
            ..binding(AclOperation::Read)
        };
        assert!(check_definite(&no_host).is_err());
        assert!(check_known(&AclFilter::any()).is_ok());
        let unknown = AclFilter {
            operation: AclOperation::Unknown,
            ..AclFilter::any()
        };
        assert!(check_known(&unknown).is_err());
    }

    #[test]
    fn bindings_and_filters_display_as_sentences() {
        assert_eq!(
            binding(AclOperation::Write).to_string(),
            "ALLOW User:alice WRITE on TOPIC \"t\" (LITERAL) from host *"
        );
        assert_eq!(
            AclFilter::any().to_string(),
            "ANY any principal ANY on ANY any name (ANY) from any host"
        );
    }

    #[test]
    fn responses_become_bindings() {
        let acl = |op: AclOperation| {
            AclDescription::default()
                .with_principal(str_bytes("User:alice"))
                .with_host(str_bytes("*"))
                .with_operation(op.code())
                .with_permission_type(Permission::Allow.code())
        };
        let resource = DescribeAclsResource::default()
            .with_resource_type(ResourceType::Topic.code())
            .with_resource_name(str_bytes("t"))
            .with_pattern_type(PatternType::Literal.code())
            .with_acls(vec![acl(AclOperation::Write), acl(AclOperation::Describe)]);
        assert_eq!(
            described(&[resource]),
            [
                binding(AclOperation::Write),
                binding(AclOperation::Describe)
            ]
        );

        let ok = DeleteAclsMatchingAcl::default()
            .with_resource_type(2)
            .with_resource_name(str_bytes("t"))
            .with_pattern_type(3)
            .with_principal(str_bytes("User:alice"))
            .with_host(str_bytes("*"))
            .with_operation(4)
            .with_permission_type(3);
        let result = DeleteAclsFilterResult::default().with_matching_acls(vec![ok.clone()]);
        let filter = AclFilter::any();
        assert_eq!(
            deleted_by(&filter, &result).unwrap(),
            [binding(AclOperation::Write)]
        );
        let refused = result.with_matching_acls(vec![ok.with_error_code(31)]);
        let e = deleted_by(&filter, &refused).unwrap_err();
        assert_eq!(e.kafka_code(), Some(31));
        assert!(
            e.to_string().contains("delete ACL ALLOW User:alice WRITE"),
            "{e}"
        );
    }

    #[test]
    fn filters_leave_open_fields_null_on_the_wire() {
        let f = delete_filter(&AclFilter {
            resource_type: ResourceType::Topic,
            resource_name: Some("t".into()),
            ..AclFilter::any()
        });
        assert_eq!(f.resource_type_filter, 2);
        assert_eq!(f.resource_name_filter.as_deref(), Some("t"));
        assert_eq!(f.pattern_type_filter, 1);
        assert_eq!(f.principal_filter, None);
        assert_eq!(f.host_filter, None);
        assert_eq!((f.operation, f.permission_type), (1, 1));
    }
}
