//! Settings of the broker's own audit trail (`audit_trail`): which security-relevant
//! actions become events in `__strata_audit_log`, and how many may wait to be written.

use crate::error::BrokerError;

/// A kind of event the trail can record (`audit.log.event.types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// SASL authentications on the Kafka listeners and admin-port logins, both outcomes.
    Authenticate,
    /// Requests the authorizer denied.
    Authorize,
    /// Changes through the Kafka API: topics, configs, ACLs, users, quotas, group
    /// offsets, DeleteRecords.
    Management,
    /// Changes through the admin port (partition moves, leader rebalancing, logged heads).
    Admin,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::Authenticate,
        EventType::Authorize,
        EventType::Management,
        EventType::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventType::Authenticate => "authenticate",
            EventType::Authorize => "authorize",
            EventType::Management => "management",
            EventType::Admin => "admin",
        }
    }
}

/// How the audit trail is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLogConfig {
    /// `audit.log.enabled`: record events at all.
    pub enabled: bool,
    /// `audit.log.event.types`: the kinds recorded (all by default).
    pub event_types: Vec<EventType>,
    /// `audit.log.buffer.events`: events waiting to be written; past it, new events are
    /// dropped and counted, never waited for.
    pub buffer_events: usize,
    /// `audit.log.replication.factor`: of `__strata_audit_log` when it is created
    /// (-1: the cluster's default, at most 3).
    pub replication_factor: i16,
}

impl Default for AuditLogConfig {
    fn default() -> Self {
        AuditLogConfig {
            enabled: false,
            event_types: EventType::ALL.to_vec(),
            buffer_events: 10_000,
            replication_factor: -1,
        }
    }
}

impl AuditLogConfig {
    /// Whether events of `kind` are recorded.
    pub fn records(&self, kind: EventType) -> bool {
        self.enabled && self.event_types.contains(&kind)
    }

    /// Sets `key` if it is one of these settings: `Ok(false)` when it is not.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, BrokerError> {
        let parse_err = |what: &str| BrokerError::Config(format!("{key}: {value:?} is not {what}"));
        match key {
            "audit.log.enabled" => {
                self.enabled = super::topic_keys::parse_bool(value.trim())
                    .ok_or_else(|| parse_err("true or false"))?
            }
            "audit.log.event.types" => {
                let mut kinds = Vec::new();
                for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let kind = EventType::ALL
                        .into_iter()
                        .find(|k| k.name() == name)
                        .ok_or_else(|| {
                            parse_err("a list of authenticate, authorize, management, admin")
                        })?;
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
                self.event_types = kinds;
            }
            "audit.log.buffer.events" => {
                self.buffer_events = super::at_least::<usize>(value, 1)
                    .filter(|&n| n <= 1_000_000)
                    .ok_or_else(|| parse_err("a count from 1 to 1000000"))?
            }
            "audit.log.replication.factor" => {
                self.replication_factor = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|&n: &i16| n == -1 || n >= 1)
                    .ok_or_else(|| parse_err("-1 or a replica count"))?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
