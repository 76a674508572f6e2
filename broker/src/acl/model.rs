//! Kafka's ACL model: resource types, pattern types, operations and permissions with
//! their wire codes, and the bindings and filters of CreateAcls, DescribeAcls and
//! DeleteAcls.

use serde::{Deserialize, Serialize};

/// Declares a Kafka enum with its wire codes (`code`, `from_code`) and display names.
macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant,)* }

        impl $name {
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code,)* }
            }

            /// `None` for a code Kafka does not define (or UNKNOWN, 0).
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }

            /// Kafka's name (`READ`, `PREFIXED`).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

kafka_enum!(
    /// What an ACL protects.
    ResourceType {
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

kafka_enum!(
    /// How an ACL's resource name matches: exactly (`*` matching every name) or as a
    /// prefix. ANY and MATCH exist only in filters.
    PatternType {
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

kafka_enum!(
    /// What a principal does to a resource.
    Operation {
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

kafka_enum!(
    /// Whether an ACL allows or denies. ANY exists only in filters.
    Permission {
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// The name of the one Cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A LITERAL resource name, principal or host that matches every one.
pub const WILDCARD: &str = "*";

impl ResourceType {
    /// The operations an ACL on this type can grant (besides ALL), as Kafka lists them;
    /// also the bits of its `authorized_operations`.
    pub fn operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Any => &[],
        }
    }
}

/// One ACL: `permission` of `principal` from `host` to do `operation` on the resources
/// of `resource_type` that `name` matches under `pattern`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Why a binding of CreateAcls is refused (answered as INVALID_REQUEST).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAcl {
    #[error("unknown {what} code {code}")]
    UnknownCode { what: &'static str, code: i8 },
    #[error("{what} {value} is only for filters, not for an ACL")]
    FilterOnly { what: &'static str, value: String },
    #[error("the resource name is empty")]
    EmptyName,
    #[error("principal {0:?} is not <type>:<name> (e.g. User:alice)")]
    Principal(String),
    #[error("the host is empty (\"*\" matches every host)")]
    EmptyHost,
    #[error("the Cluster resource is named {CLUSTER_NAME:?}, not {0:?}")]
    ClusterName(String),
    #[error("{operation} cannot be granted on a {resource_type}")]
    Operation {
        operation: Operation,
        resource_type: ResourceType,
    },
}

fn known<T>(what: &'static str, code: i8, from: fn(i8) -> Option<T>) -> Result<T, InvalidAcl> {
    from(code).ok_or(InvalidAcl::UnknownCode { what, code })
}

impl AclBinding {
    /// A binding from the wire codes of CreateAcls, checked as Kafka's controller does.
    pub fn from_wire(
        resource_type: i8,
        name: &str,
        pattern: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<AclBinding, InvalidAcl> {
        let binding = AclBinding {
            resource_type: known("resource type", resource_type, ResourceType::from_code)?,
            name: name.to_string(),
            pattern: known("pattern type", pattern, PatternType::from_code)?,
            principal: principal.to_string(),
            host: host.to_string(),
            operation: known("operation", operation, Operation::from_code)?,
            permission: known("permission", permission, Permission::from_code)?,
        };
        binding.check()?;
        Ok(binding)
    }

    fn check(&self) -> Result<(), InvalidAcl> {
        let filter_only = |what, value: &dyn std::fmt::Display| {
            Err(InvalidAcl::FilterOnly {
                what,
                value: value.to_string(),
            })
        };
        if self.resource_type == ResourceType::Any {
            return filter_only("resource type", &self.resource_type);
        }
        if matches!(self.pattern, PatternType::Any | PatternType::Match) {
            return filter_only("pattern type", &self.pattern);
        }
        if self.operation == Operation::Any {
            return filter_only("operation", &self.operation);
        }
        if self.permission == Permission::Any {
            return filter_only("permission", &self.permission);
        }
        if self.name.is_empty() {
            return Err(InvalidAcl::EmptyName);
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Err(InvalidAcl::Principal(self.principal.clone())),
        }
        if self.host.is_empty() {
            return Err(InvalidAcl::EmptyHost);
        }
        if self.resource_type == ResourceType::Cluster && self.name != CLUSTER_NAME {
            return Err(InvalidAcl::ClusterName(self.name.clone()));
        }
        let ops = self.resource_type.operations();
        if self.operation != Operation::All && !ops.contains(&self.operation) {
            return Err(InvalidAcl::Operation {
                operation: self.operation,
                resource_type: self.resource_type,
            });
        }
        Ok(())
    }

    /// Whether this ACL's pattern covers the resource `name` of `resource_type`.
    pub fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern {
                PatternType::Literal => self.name == name || self.name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&self.name),
                PatternType::Any | PatternType::Match => false,
            }
    }
}

/// A filter of DescribeAcls and DeleteAcls: `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    pub pattern: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclFilter {
    /// A filter from the wire codes; codes Kafka does not define are refused.
    pub fn from_wire(
        resource_type: i8,
        name: Option<&str>,
        pattern: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, InvalidAcl> {
        Ok(AclFilter {
            resource_type: known("resource type", resource_type, ResourceType::from_code)?,
            name: name.map(str::to_string),
            pattern: known("pattern type", pattern, PatternType::from_code)?,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation: known("operation", operation, Operation::from_code)?,
            permission: known("permission", permission, Permission::from_code)?,
        })
    }

    /// Whether `acl` passes the filter. ANY selects every pattern type with exactly the
    /// name given; MATCH the ACLs that would apply to the named resource (LITERAL equal
    /// or `*`, PREFIXED a prefix of it).
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let of_type =
            self.resource_type == ResourceType::Any || acl.resource_type == self.resource_type;
        let resource = match (self.pattern, &self.name) {
            (PatternType::Match, Some(name)) => acl.covers(acl.resource_type, name),
            (PatternType::Any | PatternType::Match, None) => true,
            (PatternType::Any, Some(name)) => acl.name == *name,
            (pattern, name) => {
                pattern == acl.pattern && name.as_ref().is_none_or(|n| *n == acl.name)
            }
        };
        of_type
            && resource
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == Operation::Any || self.operation == acl.operation)
            && (self.permission == Permission::Any || self.permission == acl.permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(pattern: PatternType, name: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            name: name.into(),
            pattern,
            principal: "User:alice".into(),
            host: WILDCARD.into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_are_refused() {
        for code in 1..=14 {
            let op = Operation::from_code(code).unwrap();
            assert_eq!(op.code(), code);
        }
        assert_eq!(Operation::from_code(0), None);
        assert_eq!(ResourceType::from_code(8), None);
        let bad = AclBinding::from_wire(2, "t", 3, "User:a", "*", 15, 3);
        assert!(matches!(bad, Err(InvalidAcl::UnknownCode { .. })));
    }

    #[test]
    fn bindings_are_checked_as_kafka_does() {
        let ok = |rt, name, pattern, principal, host, op| {
            AclBinding::from_wire(rt, name, pattern, principal, host, op, 3)
        };
        assert!(ok(2, "t", 3, "User:alice", "*", 3).is_ok());
        assert!(ok(4, CLUSTER_NAME, 3, "User:alice", "*", 12).is_ok());
        assert_eq!(
            ok(4, "c", 3, "User:a", "*", 7),
            Err(InvalidAcl::ClusterName("c".into()))
        );
        assert_eq!(ok(2, "", 3, "User:a", "*", 3), Err(InvalidAcl::EmptyName));
        assert_eq!(
            ok(2, "t", 3, "alice", "*", 3),
            Err(InvalidAcl::Principal("alice".into()))
        );
        assert_eq!(ok(2, "t", 3, "User:a", "", 3), Err(InvalidAcl::EmptyHost));
        assert!(matches!(
            ok(1, "t", 3, "User:a", "*", 3),
            Err(InvalidAcl::FilterOnly { .. })
        ));
        assert!(matches!(
            ok(2, "t", 2, "User:a", "*", 3),
            Err(InvalidAcl::FilterOnly { .. })
        ));
        assert!(matches!(
            ok(3, "g", 3, "User:a", "*", 4),
            Err(InvalidAcl::Operation { .. })
        ));
    }

    #[test]
    fn literal_wildcard_and_prefixed_patterns_cover_names() {
        assert!(binding(PatternType::Literal, "t").covers(ResourceType::Topic, "t"));
        assert!(!binding(PatternType::Literal, "t").covers(ResourceType::Topic, "t2"));
        assert!(binding(PatternType::Literal, "*").covers(ResourceType::Topic, "any"));
        assert!(binding(PatternType::Prefixed, "logs-").covers(ResourceType::Topic, "logs-1"));
        assert!(!binding(PatternType::Prefixed, "logs-").covers(ResourceType::Topic, "log"));
        assert!(!binding(PatternType::Literal, "t").covers(ResourceType::Group, "t"));
    }

    #[test]
    fn filters_select_by_every_field_and_by_match() {
        let prefixed = binding(PatternType::Prefixed, "logs-");
        let filter = |pattern, name: Option<&str>| AclFilter {
            resource_type: ResourceType::Any,
            name: name.map(str::to_string),
            pattern,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        };
        assert!(filter(PatternType::Any, None).matches(&prefixed));
        assert!(filter(PatternType::Prefixed, Some("logs-")).matches(&prefixed));
        assert!(!filter(PatternType::Literal, Some("logs-")).matches(&prefixed));
        assert!(filter(PatternType::Match, Some("logs-7")).matches(&prefixed));
        assert!(!filter(PatternType::Match, Some("metrics")).matches(&prefixed));
        assert!(filter(PatternType::Any, Some("logs-")).matches(&prefixed));
        assert!(!filter(PatternType::Any, Some("logs-7")).matches(&prefixed));
        let mut by_principal = filter(PatternType::Any, None);
        by_principal.principal = Some("User:bob".into());
        assert!(!by_principal.matches(&prefixed));
        let mut deny_only = filter(PatternType::Any, None);
        deny_only.permission = Permission::Deny;
        assert!(!deny_only.matches(&prefixed));
    }
}
