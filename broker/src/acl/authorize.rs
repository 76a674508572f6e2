//! The authorizer's decision, as Kafka's standard authorizer makes it:
//!
//! - a principal of `super.users` may do everything;
//! - the ACLs that apply are those whose pattern covers the resource (LITERAL equal or
//!   `*`, PREFIXED a prefix of its name), whose principal is the caller's or `User:*`
//!   and whose host is the caller's address or `*`;
//! - a DENY of the operation (or of ALL) wins over any ALLOW;
//! - an ALLOW of the operation or of ALL allows it, and so do the implied ones: READ,
//!   WRITE, DELETE or ALTER allow DESCRIBE, and ALTER_CONFIGS allows DESCRIBE_CONFIGS;
//! - a resource no ACL covers at all is allowed only with
//!   `allow.everyone.if.no.acl.found`.
//!
//! Without `authorizer.class.name` everything is allowed.

use super::model::{AclBinding, Operation, PatternType, Permission, ResourceType, WILDCARD};
use super::store::Acls;
use crate::config::authorizer::AuthorizerSettings;

/// Who asks: the principal and the client's address (as text, as ACL hosts are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: String,
    pub host: String,
}

/// The settings and the ACLs one or more decisions are made against.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub settings: &'a AuthorizerSettings,
    pub acls: &'a Acls,
}

/// The wildcard principal of ACLs that apply to every user.
const ANY_USER: &str = "User:*";

impl Caller {
    /// Whether `acl` names this caller (or every user) and its host (or every host).
    /// Addresses compare as addresses (`::1` is `0:0:0:0:0:0:0:1`). A caller whose
    /// address is unknown (empty) is named by every DENY, and by no host's ALLOW.
    fn is_named_by(&self, acl: &AclBinding) -> bool {
        let principal = acl.principal == self.principal || acl.principal == ANY_USER;
        let host = acl.host == WILDCARD
            || (self.host.is_empty() && acl.permission == Permission::Deny)
            || same_host(&acl.host, &self.host);
        principal && host
    }
}

/// Whether two hosts are the same: equal text, or the same IP address.
fn same_host(a: &str, b: &str) -> bool {
    if a == b && !a.is_empty() {
        return true;
    }
    match (a.parse::<std::net::IpAddr>(), b.parse::<std::net::IpAddr>()) {
        (Ok(a), Ok(b)) => a.to_canonical() == b.to_canonical(),
        _ => false,
    }
}

/// Whether an ALLOW of `granted` allows `asked`.
fn allow_covers(granted: Operation, asked: Operation) -> bool {
    use Operation::*;
    granted == All
        || granted == asked
        || (asked == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (asked == DescribeConfigs && granted == AlterConfigs)
}

/// Whether a DENY of `denied` denies `asked` (no implied operations).
fn deny_covers(denied: Operation, asked: Operation) -> bool {
    denied == Operation::All || denied == asked
}

impl Decision<'_> {
    /// Whether `caller` may do `op` on the resource `name` of `resource_type`.
    pub fn allows(&self, caller: &Caller, op: Operation, rt: ResourceType, name: &str) -> bool {
        if !self.settings.enabled || self.settings.is_super(&caller.principal) {
            return true;
        }
        let mut covered = false;
        let mut allowed = false;
        for acl in self.acls.of_type(rt).filter(|a| a.covers(rt, name)) {
            covered = true;
            if !caller.is_named_by(acl) {
                continue;
            }
            match acl.permission {
                Permission::Deny if deny_covers(acl.operation, op) => return false,
                Permission::Allow if allow_covers(acl.operation, op) => allowed = true,
                _ => {}
            }
        }
        allowed || (!covered && self.settings.allow_if_no_acl)
    }

    /// Whether `caller` may do `op` on at least one resource of `resource_type`
    /// (Kafka's authorizeByResourceType, KIP-679: WRITE on any topic allows an
    /// idempotent producer). An ALLOW counts unless a DENY covers everything it does.
    pub fn allows_any(&self, caller: &Caller, op: Operation, rt: ResourceType) -> bool {
        // Kafka's default: a made-up literal name first, which super users and
        // `allow.everyone.if.no.acl.found` (when no pattern covers it) pass.
        if self.allows(caller, op, rt, "hardcode") {
            return true;
        }
        let named: Vec<&AclBinding> = self
            .acls
            .of_type(rt)
            .filter(|a| caller.is_named_by(a))
            .collect();
        let denies: Vec<&&AclBinding> = named
            .iter()
            .filter(|a| a.permission == Permission::Deny && deny_covers(a.operation, op))
            .collect();
        let denied = |allow: &AclBinding| {
            denies.iter().any(|d| match (d.pattern, allow.pattern) {
                (PatternType::Literal, _) if d.name == WILDCARD => true,
                (PatternType::Literal, PatternType::Literal) => d.name == allow.name,
                (PatternType::Prefixed, _) => allow.name.starts_with(&d.name),
                _ => false,
            })
        };
        let allowed = named.iter().any(|a| {
            a.permission == Permission::Allow
                && (a.operation == op || a.operation == Operation::All)
                && !denied(a)
        });
        allowed
    }

    /// Kafka's `authorized_operations` bit field: bit `code` set for each operation of
    /// `resource_type` that `caller` may do on `name`.
    pub fn operations(&self, caller: &Caller, rt: ResourceType, name: &str) -> i32 {
        rt.operations()
            .iter()
            .filter(|op| self.allows(caller, **op, rt, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::CLUSTER_NAME;

    fn settings(enabled: bool, allow_if_no_acl: bool) -> AuthorizerSettings {
        AuthorizerSettings {
            enabled,
            allow_if_no_acl,
            super_users: vec!["User:root".into()],
        }
    }

    fn acl(
        rt: ResourceType,
        pattern: PatternType,
        name: &str,
        principal: &str,
        op: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            name: name.into(),
            pattern,
            principal: principal.into(),
            host: WILDCARD.into(),
            operation: op,
            permission,
        }
    }

    fn caller(principal: &str) -> Caller {
        Caller {
            principal: principal.into(),
            host: "10.0.0.1".into(),
        }
    }

    fn topic(pattern: PatternType, name: &str, op: Operation, perm: Permission) -> AclBinding {
        acl(ResourceType::Topic, pattern, name, "User:alice", op, perm)
    }

    const LIT: PatternType = PatternType::Literal;
    const PRE: PatternType = PatternType::Prefixed;
    const TOPIC: ResourceType = ResourceType::Topic;

    #[test]
    fn without_an_authorizer_everything_is_allowed() {
        let (s, acls) = (settings(false, false), Acls::default());
        let d = Decision {
            settings: &s,
            acls: &acls,
        };
        assert!(d.allows(&caller("User:x"), Operation::Delete, TOPIC, "t"));
        assert!(d.allows_any(&caller("User:x"), Operation::Write, TOPIC));
    }

    #[test]
    fn allow_deny_implied_and_super_users() {
        let s = settings(true, false);
        let mut acls = Acls::default();
        acls.create(vec![
            topic(PRE, "logs-", Operation::Read, Permission::Allow),
            topic(LIT, "logs-secret", Operation::All, Permission::Deny),
            topic(LIT, "conf", Operation::AlterConfigs, Permission::Allow),
        ]);
        let d = Decision {
            settings: &s,
            acls: &acls,
        };
        let alice = caller("User:alice");
        assert!(d.allows(&alice, Operation::Read, TOPIC, "logs-1"));
        assert!(
            d.allows(&alice, Operation::Describe, TOPIC, "logs-1"),
            "READ implies DESCRIBE"
        );
        assert!(!d.allows(&alice, Operation::Write, TOPIC, "logs-1"));
        assert!(
            !d.allows(&alice, Operation::Read, TOPIC, "logs-secret"),
            "DENY wins"
        );
        assert!(d.allows(&alice, Operation::DescribeConfigs, TOPIC, "conf"));
        assert!(!d.allows(&alice, Operation::Describe, TOPIC, "conf"));
        assert!(!d.allows(&caller("User:bob"), Operation::Read, TOPIC, "logs-1"));
        assert!(
            !d.allows(&alice, Operation::Read, TOPIC, "other"),
            "no ACL: denied"
        );
        assert!(d.allows(
            &caller("User:root"),
            Operation::Delete,
            TOPIC,
            "logs-secret"
        ));
        let read_describe = (1 << Operation::Read.code()) | (1 << Operation::Describe.code());
        assert_eq!(d.operations(&alice, TOPIC, "logs-2"), read_describe);
    }

    #[test]
    fn wildcards_hosts_and_allow_everyone_if_no_acl_found() {
        let s = settings(true, true);
        let mut everyone = acl(
            TOPIC,
            LIT,
            "*",
            "User:*",
            Operation::Write,
            Permission::Allow,
        );
        everyone.host = "10.0.0.2".into();
        let mut acls = Acls::default();
        acls.create(vec![
            everyone,
            topic(LIT, "held", Operation::Read, Permission::Allow),
        ]);
        let d = Decision {
            settings: &s,
            acls: &acls,
        };
        let (alice, bob) = (caller("User:alice"), caller("User:bob"));
        assert!(
            !d.allows(&bob, Operation::Write, TOPIC, "t"),
            "another host"
        );
        let bob_there = Caller {
            host: "10.0.0.2".into(),
            ..bob.clone()
        };
        assert!(d.allows(&bob_there, Operation::Write, TOPIC, "t"));
        assert!(
            !d.allows(&bob, Operation::Read, TOPIC, "held"),
            "the topic has ACLs"
        );
        assert!(
            d.allows(&alice, Operation::Read, ResourceType::Group, "g"),
            "no group ACLs"
        );
    }

    #[test]
    fn allows_any_follows_kip_679() {
        let s = settings(true, false);
        let alice = caller("User:alice");
        let mut acls = Acls::default();
        acls.create(vec![topic(PRE, "in-", Operation::Write, Permission::Allow)]);
        let with = |extra: Vec<AclBinding>| {
            let mut a = acls.clone();
            a.create(extra);
            a
        };
        let check = |a: &Acls| {
            Decision {
                settings: &s,
                acls: a,
            }
            .allows_any(&alice, Operation::Write, TOPIC)
        };
        assert!(check(&acls));
        assert!(!check(&with(vec![topic(
            PRE,
            "i",
            Operation::Write,
            Permission::Deny
        )])));
        assert!(!check(&with(vec![topic(
            LIT,
            "*",
            Operation::All,
            Permission::Deny
        )])));
        assert!(check(&with(vec![topic(
            PRE,
            "out-",
            Operation::Write,
            Permission::Deny
        )])));
        assert!(!Decision {
            settings: &s,
            acls: &Acls::default()
        }
        .allows_any(&alice, Operation::Write, TOPIC));
        let cluster = acl(
            ResourceType::Cluster,
            LIT,
            CLUSTER_NAME,
            "User:alice",
            Operation::IdempotentWrite,
            Permission::Allow,
        );
        assert!(Decision {
            settings: &s,
            acls: &with(vec![cluster])
        }
        .allows(
            &alice,
            Operation::IdempotentWrite,
            ResourceType::Cluster,
            CLUSTER_NAME
        ));
    }
}
