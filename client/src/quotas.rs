//! Kafka's client quotas, as `kafka-configs --entity-type users|clients` and the Java
//! `Admin` manage them: describe the quotas a filter matches, set and remove quota
//! values.
//!
//! A quota applies to an entity ([`QuotaEntity`]): a user, a client id, or a user and a
//! client id together; each part names one user (client id) or the default entity of
//! its type, which covers every user (client id) without a quota of its own. Kafka's
//! keys are [`QuotaKey`]s: `producer_byte_rate` and `consumer_byte_rate` in bytes per
//! second, `request_percentage` in percent of one request handler thread.
//!
//! Guarantees: every call goes to the controller (or any broker when the metadata names
//! none), so a describe right after an alter sees it. What this client can tell is wrong
//! (an empty entity or name, an entity type named twice in a filter, an empty key) is
//! refused with [`Error::InvalidArgument`] before anything is sent; keys and values are
//! the broker's to judge, so that brokers with more keys can be used ([`QuotaKey::check`]
//! checks Kafka's three). The broker's refusals are [`Error::Kafka`] naming the entity,
//! with the broker's message: CLUSTER_AUTHORIZATION_FAILED when an authorizer is on and
//! the caller may not ALTER_CONFIGS (alter) or DESCRIBE_CONFIGS (describe) the cluster,
//! INVALID_REQUEST for an unknown key, an entity type it does not take, a non-positive
//! value or an entity type named twice. A broker without these APIs gives
//! [`Error::UnsupportedApi`]. Describe leaves out entities with a type other than user
//! and client id (Kafka's `ip`), which [`QuotaEntity`] cannot hold.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use kafka_protocol::messages::alter_client_quotas_request::{
    EntityData as AlterEntity, EntryData as AlterEntry, OpData,
};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_client_quotas_response::EntryData as DescribedEntry;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::error::{Error, KafkaCode, Result};

/// Kafka's entity type of a user (`ClientQuotaEntity.USER`).
pub const USER_ENTITY_TYPE: &str = "user";
/// Kafka's entity type of a client id (`ClientQuotaEntity.CLIENT_ID`).
pub const CLIENT_ID_ENTITY_TYPE: &str = "client-id";
/// How the default entity of a type is shown, as `kafka-configs` shows it.
pub const DEFAULT_ENTITY_DISPLAY: &str = "<default>";

/// Kafka's `UNKNOWN_SERVER_ERROR`, for a response this client cannot make sense of.
const UNKNOWN_SERVER_ERROR: i16 = -1;
/// DescribeClientQuotas match types: the entity of that name, the default entity, any
/// entity of the type.
const MATCH_TYPE_EXACT: i8 = 0;
const MATCH_TYPE_DEFAULT: i8 = 1;
const MATCH_TYPE_ANY: i8 = 2;

/// One part of a [`QuotaEntity`]: a user (client id) by name, or the default one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityName {
    /// The default entity of the type: every user (client id) with no quota of its own.
    /// Null on the wire.
    Default,
    /// The user (client id) of this name.
    Named(String),
}

impl EntityName {
    /// The name on the wire: null for the default entity.
    fn wire(&self) -> Option<StrBytes> {
        match self {
            EntityName::Default => None,
            EntityName::Named(name) => Some(str_bytes(name)),
        }
    }

    fn from_wire(name: Option<&StrBytes>) -> EntityName {
        name.map_or(EntityName::Default, |n| EntityName::Named(n.to_string()))
    }
}

impl fmt::Display for EntityName {
    /// The name, or `<default>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityName::Default => f.write_str(DEFAULT_ENTITY_DISPLAY),
            EntityName::Named(name) => f.write_str(name),
        }
    }
}

/// What a quota applies to: a user, a client id, or both (that user with that client
/// id). `None` leaves the type out of the entity; an entity with neither is invalid.
/// Ordered by user, then client id, where a type left out comes first.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaEntity {
    /// The user part (`user`).
    pub user: Option<EntityName>,
    /// The client id part (`client-id`).
    pub client_id: Option<EntityName>,
}

impl QuotaEntity {
    /// The parts present, as (Kafka entity type, name), user first.
    pub fn parts(&self) -> Vec<(&'static str, &EntityName)> {
        let user = self.user.as_ref().map(|n| (USER_ENTITY_TYPE, n));
        let client = self.client_id.as_ref().map(|n| (CLIENT_ID_ENTITY_TYPE, n));
        user.into_iter().chain(client).collect()
    }
}

impl fmt::Display for QuotaEntity {
    /// `user=alice, client-id=<default>`; `no entity` when both parts are left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = self.parts();
        if parts.is_empty() {
            return f.write_str("no entity");
        }
        let text: Vec<String> = parts.iter().map(|(t, n)| format!("{t}={n}")).collect();
        f.write_str(&text.join(", "))
    }
}

/// A type of entity a filter component is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityType {
    /// Users (`user`).
    User,
    /// Client ids (`client-id`).
    ClientId,
}

impl EntityType {
    /// Kafka's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            EntityType::User => USER_ENTITY_TYPE,
            EntityType::ClientId => CLIENT_ID_ENTITY_TYPE,
        }
    }
}

/// Which entities of a type a filter component matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaMatch {
    /// The entity of this name.
    Exact(String),
    /// The default entity.
    Default,
    /// Any entity of the type, the default included.
    Any,
}

/// One condition of a describe filter: the entity has a part of `entity_type` that
/// `matching` selects (Kafka's `ClientQuotaFilterComponent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaFilterComponent {
    /// The entity type the condition is about.
    pub entity_type: EntityType,
    /// The names it selects.
    pub matching: QuotaMatch,
}

impl QuotaFilterComponent {
    /// Entities whose `entity_type` part is `name` (Kafka's `ofEntity`, or
    /// `ofDefaultEntity` for [`EntityName::Default`]).
    pub fn of_entity(entity_type: EntityType, name: &EntityName) -> QuotaFilterComponent {
        let matching = match name {
            EntityName::Default => QuotaMatch::Default,
            EntityName::Named(n) => QuotaMatch::Exact(n.clone()),
        };
        QuotaFilterComponent {
            entity_type,
            matching,
        }
    }

    /// Entities with any `entity_type` part (Kafka's `ofEntityType`).
    pub fn of_entity_type(entity_type: EntityType) -> QuotaFilterComponent {
        QuotaFilterComponent {
            entity_type,
            matching: QuotaMatch::Any,
        }
    }

    fn wire(&self) -> ComponentData {
        let (match_type, name) = match &self.matching {
            QuotaMatch::Exact(name) => (MATCH_TYPE_EXACT, Some(str_bytes(name))),
            QuotaMatch::Default => (MATCH_TYPE_DEFAULT, None),
            QuotaMatch::Any => (MATCH_TYPE_ANY, None),
        };
        ComponentData::default()
            .with_entity_type(str_bytes(self.entity_type.name()))
            .with_match_type(match_type)
            .with_match(name)
    }
}

impl fmt::Display for QuotaFilterComponent {
    /// `user=alice`, `user=<default>`, `user=*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match &self.matching {
            QuotaMatch::Exact(name) => name.as_str(),
            QuotaMatch::Default => DEFAULT_ENTITY_DISPLAY,
            QuotaMatch::Any => "*",
        };
        write!(f, "{}={name}", self.entity_type.name())
    }
}

/// Kafka's quota keys for users and client ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaKey {
    /// Bytes per second a producer may send (Kafka's LONG: a whole number).
    ProducerByteRate,
    /// Bytes per second a consumer may fetch (Kafka's LONG: a whole number).
    ConsumerByteRate,
    /// Percent of one request handler thread's time (100: one whole thread).
    RequestPercentage,
}

impl QuotaKey {
    /// Every key, in the order `kafka-configs` documents them.
    pub const ALL: &'static [QuotaKey] = &[
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::RequestPercentage,
    ];

    /// Kafka's name of the key (`producer_byte_rate`).
    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
        }
    }

    /// `Ok` when Kafka takes `value` for this key: finite and positive, and a whole
    /// number of bytes for the byte rates; else [`Error::InvalidArgument`] naming both.
    pub fn check(self, value: f64) -> Result<()> {
        let problem = if !value.is_finite() || value <= 0.0 {
            Some("must be a positive number")
        } else if self.is_byte_rate() && value.fract() != 0.0 {
            Some("must be a whole number of bytes per second")
        } else {
            None
        };
        match problem {
            None => Ok(()),
            Some(p) => Err(Error::InvalidArgument(format!(
                "{} {p}, got {value}",
                self.name()
            ))),
        }
    }

    /// `text` as a value of this key, checked as [`QuotaKey::check`] does.
    pub fn parse_value(self, text: &str) -> Result<f64> {
        let value: f64 = text.trim().parse().map_err(|_| {
            Error::InvalidArgument(format!("{} must be a number, got {text:?}", self.name()))
        })?;
        self.check(value)?;
        Ok(value)
    }

    fn is_byte_rate(self) -> bool {
        matches!(
            self,
            QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate
        )
    }
}

impl fmt::Display for QuotaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for QuotaKey {
    type Err = Error;

    /// The key of exactly that name (Kafka's keys are case-sensitive).
    fn from_str(s: &str) -> Result<QuotaKey> {
        let key = QuotaKey::ALL.iter().copied().find(|k| k.name() == s);
        key.ok_or_else(|| {
            let names: Vec<&str> = QuotaKey::ALL.iter().map(|k| k.name()).collect();
            Error::InvalidArgument(format!(
                "unknown quota key {s:?}: expected one of {}",
                names.join(", ")
            ))
        })
    }
}

/// The quota values of one entity, by key.
pub type QuotaValues = BTreeMap<String, f64>;

/// Changes to one entity's quotas: (key, `Some(value)` to set it, `None` to remove it).
pub type QuotaOps = Vec<(String, Option<f64>)>;

impl Admin {
    /// The quotas of the entities that match every one of `components`, sorted by
    /// entity; no components match every entity. With `strict`, only entities with no
    /// parts other than those the components name match. Entities of a type
    /// [`QuotaEntity`] cannot hold are left out.
    pub async fn describe_client_quotas(
        &self,
        components: &[QuotaFilterComponent],
        strict: bool,
    ) -> Result<Vec<(QuotaEntity, QuotaValues)>> {
        check_components(components)?;
        let request = DescribeClientQuotasRequest::default()
            .with_components(components.iter().map(QuotaFilterComponent::wire).collect())
            .with_strict(strict);
        let response = self.cluster().send_controller(&request).await?;
        let context = || {
            format!(
                "describe client quotas matching {}",
                filter_text(components)
            )
        };
        Error::check(
            response.error_code,
            context,
            response.error_message.as_deref(),
        )?;
        let mut quotas = described(response.entries.as_deref().unwrap_or_default())
            .map_err(|reason| malformed(&context(), reason))?;
        quotas.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(quotas)
    }

    /// Applies `changes` in one request: for each entity, sets each key given a value
    /// and removes each key given `None` (removing a key that is not set does nothing).
    /// An empty list sends nothing. With `validate_only` the broker checks and changes
    /// nothing. Each entity's changes are applied whole or not at all; fails with the
    /// first entity the broker refuses, named, while other entities of the request may
    /// have changed (describe to see).
    pub async fn alter_client_quotas(
        &self,
        changes: Vec<(QuotaEntity, QuotaOps)>,
        validate_only: bool,
    ) -> Result<()> {
        changes
            .iter()
            .try_for_each(|(e, ops)| check_change(e, ops))?;
        if changes.is_empty() {
            return Ok(());
        }
        let sent = changes.len();
        let entries = changes.iter().map(|(e, ops)| alter_entry(e, ops)).collect();
        let request = AlterClientQuotasRequest::default()
            .with_entries(entries)
            .with_validate_only(validate_only);
        let response = self.cluster().send_controller(&request).await?;
        // Kafka answers per entity, in no particular order: each names its entity.
        for entry in &response.entries {
            let parts = entry
                .entity
                .iter()
                .map(|e| (e.entity_type.as_str(), e.entity_name.as_deref()));
            Error::check(
                entry.error_code,
                || format!("alter client quotas of {}", wire_entity_text(parts)),
                entry.error_message.as_deref(),
            )?;
        }
        if response.entries.len() != sent {
            let reason = format!("{} results for {sent} entities", response.entries.len());
            return Err(malformed("alter client quotas", reason));
        }
        Ok(())
    }
}

/// `Ok` unless a component names an empty name, or two name the same type (which
/// Kafka refuses).
fn check_components(components: &[QuotaFilterComponent]) -> Result<()> {
    for (i, c) in components.iter().enumerate() {
        if c.matching == QuotaMatch::Exact(String::new()) {
            return Err(Error::InvalidArgument(format!(
                "quota filter {c} has an empty name: use QuotaMatch::Default for the \
                 default {}",
                c.entity_type.name()
            )));
        }
        if components[..i]
            .iter()
            .any(|o| o.entity_type == c.entity_type)
        {
            return Err(Error::InvalidArgument(format!(
                "quota filter {} names entity type {} twice",
                filter_text(components),
                c.entity_type.name()
            )));
        }
    }
    Ok(())
}

/// `Ok` unless the entity is empty or has an empty name, or an op has an empty key.
fn check_change(entity: &QuotaEntity, ops: &[(String, Option<f64>)]) -> Result<()> {
    let invalid = |what: &str| {
        Err(Error::InvalidArgument(format!(
            "cannot alter the client quotas of {entity}: {what}"
        )))
    };
    let parts = entity.parts();
    if parts.is_empty() {
        return invalid("name a user, a client id or both");
    }
    if parts
        .iter()
        .any(|(_, n)| **n == EntityName::Named(String::new()))
    {
        return invalid("an empty name (use EntityName::Default for the default entity)");
    }
    if ops.iter().any(|(key, _)| key.is_empty()) {
        return invalid("an empty quota key");
    }
    Ok(())
}

fn alter_entry(entity: &QuotaEntity, ops: &[(String, Option<f64>)]) -> AlterEntry {
    let entity = entity
        .parts()
        .into_iter()
        .map(|(entity_type, name)| {
            AlterEntity::default()
                .with_entity_type(str_bytes(entity_type))
                .with_entity_name(name.wire())
        })
        .collect();
    let ops = ops
        .iter()
        .map(|(key, value)| {
            OpData::default()
                .with_key(str_bytes(key))
                .with_value(value.unwrap_or_default())
                .with_remove(value.is_none())
        })
        .collect();
    AlterEntry::default().with_entity(entity).with_ops(ops)
}

/// The entities and values of a DescribeClientQuotas response, leaving out entities of
/// types [`QuotaEntity`] cannot hold; `Err` says what is malformed.
fn described(
    entries: &[DescribedEntry],
) -> std::result::Result<Vec<(QuotaEntity, QuotaValues)>, String> {
    let mut quotas = Vec::with_capacity(entries.len());
    for entry in entries {
        let parts = entry
            .entity
            .iter()
            .map(|e| (e.entity_type.as_str(), e.entity_name.as_ref()));
        let Some(entity) = entity_of(parts)? else {
            tracing::debug!(?entry.entity, "skipping a quota entity of another type");
            continue;
        };
        let values = entry
            .values
            .iter()
            .map(|v| (v.key.to_string(), v.value))
            .collect();
        quotas.push((entity, values));
    }
    Ok(quotas)
}

/// The entity these (type, name) parts make; `None` when a part has a type other than
/// user and client id; `Err` when the parts are empty or name a type twice.
fn entity_of<'a>(
    parts: impl Iterator<Item = (&'a str, Option<&'a StrBytes>)>,
) -> std::result::Result<Option<QuotaEntity>, String> {
    let mut entity = QuotaEntity::default();
    for (entity_type, name) in parts {
        let slot = match entity_type {
            USER_ENTITY_TYPE => &mut entity.user,
            CLIENT_ID_ENTITY_TYPE => &mut entity.client_id,
            _ => return Ok(None),
        };
        if slot.is_some() {
            return Err(format!("an entity names {entity_type} twice"));
        }
        *slot = Some(EntityName::from_wire(name));
    }
    if entity.parts().is_empty() {
        return Err("an entity has no parts".to_string());
    }
    Ok(Some(entity))
}

/// `user=alice, client-id=<default>` from the wire's (type, name) parts, whatever the
/// types.
fn wire_entity_text<'a>(parts: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> String {
    let text: Vec<String> = parts
        .map(|(t, n)| format!("{t}={}", n.unwrap_or(DEFAULT_ENTITY_DISPLAY)))
        .collect();
    if text.is_empty() {
        return "no entity".to_string();
    }
    text.join(", ")
}

/// `user=alice, client-id=*`, or `every entity` for no components.
fn filter_text(components: &[QuotaFilterComponent]) -> String {
    if components.is_empty() {
        return "every entity".to_string();
    }
    let text: Vec<String> = components.iter().map(|c| c.to_string()).collect();
    text.join(", ")
}

/// The error for a response this client cannot make sense of.
fn malformed(context: &str, reason: String) -> Error {
    Error::Kafka {
        context: context.to_string(),
        code: KafkaCode(UNKNOWN_SERVER_ERROR),
        message: Some(reason),
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_client_quotas_response::{EntityData, ValueData};

    use super::*;

    fn named(name: &str) -> Option<EntityName> {
        Some(EntityName::Named(name.to_string()))
    }

    fn wire_entity(parts: &[(&str, Option<&str>)]) -> Vec<EntityData> {
        parts
            .iter()
            .map(|(t, n)| {
                EntityData::default()
                    .with_entity_type(str_bytes(t))
                    .with_entity_name(n.map(str_bytes))
            })
            .collect()
    }

    fn entry(parts: &[(&str, Option<&str>)], values: &[(&str, f64)]) -> DescribedEntry {
        let values = values
            .iter()
            .map(|(k, v)| ValueData::default().with_key(str_bytes(k)).with_value(*v))
            .collect();
        DescribedEntry::default()
            .with_entity(wire_entity(parts))
            .with_values(values)
    }

    #[test]
    fn entities_display_as_kafka_configs_does() {
        let both = QuotaEntity {
            user: named("alice"),
            client_id: Some(EntityName::Default),
        };
        assert_eq!(both.to_string(), "user=alice, client-id=<default>");
        let client = QuotaEntity {
            user: None,
            client_id: named("app"),
        };
        assert_eq!(client.to_string(), "client-id=app");
        assert_eq!(QuotaEntity::default().to_string(), "no entity");
    }

    #[test]
    fn keys_parse_by_exact_name_and_check_their_values() {
        assert_eq!(
            "producer_byte_rate".parse::<QuotaKey>().unwrap(),
            QuotaKey::ProducerByteRate
        );
        let e = "foo".parse::<QuotaKey>().unwrap_err().to_string();
        assert!(e.contains("unknown quota key \"foo\""), "{e}");
        assert!(e.contains("request_percentage"), "{e}");
        assert!("PRODUCER_BYTE_RATE".parse::<QuotaKey>().is_err());

        let rate = QuotaKey::ConsumerByteRate;
        assert_eq!(rate.parse_value("2097152").unwrap(), 2_097_152.0);
        assert_eq!(rate.parse_value("1e6").unwrap(), 1_000_000.0);
        for (bad, why) in [
            ("-5", "must be a positive number"),
            ("0", "must be a positive number"),
            ("NaN", "must be a positive number"),
            ("inf", "must be a positive number"),
            ("1.5", "whole number of bytes"),
            ("abc", "must be a number, got \"abc\""),
            ("", "must be a number"),
        ] {
            let e = rate.parse_value(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)));
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        assert_eq!(
            QuotaKey::RequestPercentage.parse_value("12.5").unwrap(),
            12.5
        );
    }

    #[test]
    fn filters_encode_kafka_match_types() {
        let exact =
            QuotaFilterComponent::of_entity(EntityType::User, &EntityName::Named("a".into()));
        let wire = exact.wire();
        assert_eq!(
            (
                wire.entity_type.as_str(),
                wire.match_type,
                wire._match.as_deref()
            ),
            ("user", 0, Some("a"))
        );
        let default = QuotaFilterComponent::of_entity(EntityType::ClientId, &EntityName::Default);
        let wire = default.wire();
        assert_eq!(
            (wire.entity_type.as_str(), wire.match_type, wire._match),
            ("client-id", 1, None)
        );
        let any = QuotaFilterComponent::of_entity_type(EntityType::User).wire();
        assert_eq!((any.match_type, any._match), (2, None));
        assert_eq!(
            filter_text(&[exact.clone(), default.clone()]),
            "user=a, client-id=<default>"
        );

        assert!(check_components(&[exact.clone(), default]).is_ok());
        let e = check_components(&[exact.clone(), exact])
            .unwrap_err()
            .to_string();
        assert!(e.contains("names entity type user twice"), "{e}");
        let empty =
            QuotaFilterComponent::of_entity(EntityType::User, &EntityName::Named("".into()));
        assert!(check_components(&[empty]).is_err());
    }

    #[test]
    fn alterations_send_null_for_defaults_and_remove_for_none() {
        let entity = QuotaEntity {
            user: named("alice"),
            client_id: Some(EntityName::Default),
        };
        let ops = vec![
            ("producer_byte_rate".to_string(), Some(1024.0)),
            ("request_percentage".to_string(), None),
        ];
        let wire = alter_entry(&entity, &ops);
        let parts: Vec<(&str, Option<&str>)> = wire
            .entity
            .iter()
            .map(|e| (e.entity_type.as_str(), e.entity_name.as_deref()))
            .collect();
        assert_eq!(parts, [("user", Some("alice")), ("client-id", None)]);
        let ops: Vec<(&str, f64, bool)> = wire
            .ops
            .iter()
            .map(|o| (o.key.as_str(), o.value, o.remove))
            .collect();
        assert_eq!(
            ops,
            [
                ("producer_byte_rate", 1024.0, false),
                ("request_percentage", 0.0, true)
            ]
        );
        assert!(check_change(&entity, &[]).is_ok());
        let e = check_change(&QuotaEntity::default(), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("name a user, a client id or both"), "{e}");
        let empty_name = QuotaEntity {
            user: named(""),
            client_id: None,
        };
        assert!(check_change(&empty_name, &[]).is_err());
        assert!(check_change(&entity, &[(String::new(), None)]).is_err());
    }

    #[test]
    fn responses_become_entities_and_other_types_are_left_out() {
        let entries = [
            entry(
                &[("user", Some("alice"))],
                &[("producer_byte_rate", 1024.0)],
            ),
            entry(
                &[("client-id", None), ("user", None)],
                &[("consumer_byte_rate", 2.0), ("request_percentage", 50.0)],
            ),
            entry(
                &[("ip", Some("10.0.0.1"))],
                &[("connection_creation_rate", 5.0)],
            ),
        ];
        let quotas = described(&entries).unwrap();
        assert_eq!(quotas.len(), 2);
        assert_eq!(quotas[0].0.to_string(), "user=alice");
        assert_eq!(quotas[0].1["producer_byte_rate"], 1024.0);
        let defaults = QuotaEntity {
            user: Some(EntityName::Default),
            client_id: Some(EntityName::Default),
        };
        assert_eq!(quotas[1].0, defaults);
        assert_eq!(quotas[1].1.len(), 2);

        let twice = entry(&[("user", Some("a")), ("user", Some("b"))], &[]);
        assert!(described(&[twice]).unwrap_err().contains("user twice"));
        assert!(described(&[entry(&[], &[])]).is_err());
    }

    #[test]
    fn entities_sort_by_user_then_client_with_absent_first() {
        let mut entities = [
            QuotaEntity {
                user: named("b"),
                client_id: None,
            },
            QuotaEntity {
                user: named("a"),
                client_id: named("c"),
            },
            QuotaEntity {
                user: None,
                client_id: named("c"),
            },
            QuotaEntity {
                user: Some(EntityName::Default),
                client_id: None,
            },
        ];
        entities.sort();
        let shown: Vec<String> = entities.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            [
                "client-id=c",
                "user=<default>",
                "user=a, client-id=c",
                "user=b"
            ]
        );
        let text = wire_entity_text([("ip", Some("10.0.0.1")), ("user", None)].into_iter());
        assert_eq!(text, "ip=10.0.0.1, user=<default>");
    }
}
