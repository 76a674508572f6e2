//! Kafka's authorization settings: `authorizer.class.name`, `super.users` and
//! `allow.everyone.if.no.acl.found`.
//!
//! Without `authorizer.class.name` nothing is authorized (every principal may do
//! everything, as a Kafka broker without an authorizer) and the ACL APIs answer
//! SECURITY_DISABLED. Naming Kafka's standard authorizer turns on Strata's ACL
//! authorizer, which follows the same rules.

/// The class names a Kafka operator writes for the ACL authorizer: KRaft's and
/// ZooKeeper-era Kafka's. Both select the same built-in authorizer.
pub const AUTHORIZER_CLASS_NAMES: [&str; 2] = [
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

/// Who may do what.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthorizerSettings {
    /// `authorizer.class.name` is set: every request is checked against the ACLs.
    pub enabled: bool,
    /// `allow.everyone.if.no.acl.found`: a resource without any ACL is open to all.
    pub allow_if_no_acl: bool,
    /// Kafka's `super.users` (`User:alice;User:bob`): principals every operation is
    /// allowed to.
    pub super_users: Vec<String>,
}

impl AuthorizerSettings {
    /// Sets `key` when it is one of these settings: `None` when it is not.
    pub fn set(&mut self, key: &str, value: &str) -> Option<Result<(), String>> {
        let outcome = match key {
            "authorizer.class.name" => class_name(value).map(|on| self.enabled = on),
            "allow.everyone.if.no.acl.found" => value
                .trim()
                .parse::<bool>()
                .map(|b| self.allow_if_no_acl = b)
                .map_err(|_| format!("{key}: {value:?} is not true or false")),
            "super.users" => super_users(value).map(|users| self.super_users = users),
            _ => return None,
        };
        Some(outcome)
    }

    /// Whether `principal` is one of `super.users`.
    pub fn is_super(&self, principal: &str) -> bool {
        self.super_users.iter().any(|s| s == principal)
    }
}

/// Whether the class name turns authorization on (empty turns it off).
fn class_name(value: &str) -> Result<bool, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(false);
    }
    if AUTHORIZER_CLASS_NAMES.contains(&value) {
        return Ok(true);
    }
    Err(format!(
        "authorizer.class.name: {value:?} is not available; use {} (or leave it empty)",
        AUTHORIZER_CLASS_NAMES[0]
    ))
}

/// `super.users`: principals separated by `;`, each `User:<name>`.
fn super_users(text: &str) -> Result<Vec<String>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.strip_prefix("User:") {
            Some(name) if !name.is_empty() => Ok(p.to_string()),
            _ => Err(format!("super.users: {p:?} is not User:<name>")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorizer_settings_parse_with_kafka_names() {
        let mut s = AuthorizerSettings::default();
        for (k, v) in [
            ("authorizer.class.name", AUTHORIZER_CLASS_NAMES[0]),
            ("allow.everyone.if.no.acl.found", "true"),
            ("super.users", "User:root; User:CN=ops,O=Example"),
        ] {
            s.set(k, v)
                .expect("an authorizer key")
                .expect("a valid value");
        }
        assert!(s.enabled && s.allow_if_no_acl);
        assert_eq!(s.super_users, ["User:root", "User:CN=ops,O=Example"]);
        assert!(s.is_super("User:root") && !s.is_super("User:other"));
        assert!(s.set("super.users", "root").unwrap().is_err());
        assert!(s
            .set("authorizer.class.name", "com.example.Mine")
            .unwrap()
            .is_err());
        assert!(s
            .set("allow.everyone.if.no.acl.found", "yes")
            .unwrap()
            .is_err());
        s.set("authorizer.class.name", "").unwrap().unwrap();
        assert!(!s.enabled);
        assert!(s.set("admin.other", "x").is_none());
    }
}
