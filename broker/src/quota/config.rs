//! Quota settings by entity: a user, a client id, or both, each either named or the
//! default (`<default>`), with Kafka's keys and precedence (KIP-55).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One side of an entity: a name, or the default that applies to every name without
/// its own setting.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    Default,
    Named(String),
}

impl EntityName {
    /// From the wire, where a null name means the default.
    pub fn from_wire(name: Option<&str>) -> EntityName {
        name.map_or(EntityName::Default, |n| EntityName::Named(n.to_string()))
    }

    /// To the wire: `None` for the default.
    pub fn to_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(n) => Some(n),
        }
    }
}

/// What a quota is set on: a user, a client id, or a user's use of one client id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
}

/// The quotas enforced, by their Kafka keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// `producer_byte_rate`: bytes per second of Produce requests.
    Produce,
    /// `consumer_byte_rate`: bytes per second of Fetch responses.
    Fetch,
    /// `request_percentage`: percent of one request handler's time.
    Request,
}

impl QuotaKind {
    pub const ALL: [QuotaKind; 3] = [QuotaKind::Produce, QuotaKind::Fetch, QuotaKind::Request];

    pub fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => "producer_byte_rate",
            QuotaKind::Fetch => "consumer_byte_rate",
            QuotaKind::Request => "request_percentage",
        }
    }

    pub fn from_key(key: &str) -> Option<QuotaKind> {
        QuotaKind::ALL.into_iter().find(|k| k.key() == key)
    }
}

/// One entity's alteration: keys set and keys removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaChange {
    pub entity: QuotaEntity,
    pub set: BTreeMap<String, f64>,
    pub remove: Vec<String>,
}

type Entries = Vec<(QuotaEntity, BTreeMap<String, f64>)>;

/// Every entity's quotas (JSON has no struct keys: stored as a list of pairs).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Entries", into = "Entries")]
pub struct ClientQuotas(BTreeMap<QuotaEntity, BTreeMap<String, f64>>);

impl From<Entries> for ClientQuotas {
    fn from(entries: Entries) -> Self {
        ClientQuotas(entries.into_iter().collect())
    }
}

impl From<ClientQuotas> for Entries {
    fn from(q: ClientQuotas) -> Self {
        q.0.into_iter().collect()
    }
}

/// Who a measurement is kept for: the user and client id the matched quota is shared
/// by ("" for a side the quota does not name).
pub type SensorKey = (String, String);

impl ClientQuotas {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = (&QuotaEntity, &BTreeMap<String, f64>)> {
        self.0.iter()
    }

    /// Applies alterations (checked by the proposer); an entity left without keys goes.
    pub fn apply(&mut self, changes: Vec<QuotaChange>) {
        for c in changes {
            let keys = self.0.entry(c.entity.clone()).or_default();
            for k in &c.remove {
                keys.remove(k);
            }
            keys.extend(c.set);
            if keys.is_empty() {
                self.0.remove(&c.entity);
            }
        }
    }

    /// The most Fetch response bytes `user` using `client` may get in one answer under
    /// its `consumer_byte_rate`: the quota's burst, as Kafka bounds a fetch by its quota
    /// window. `None` without a consumer quota.
    pub fn fetch_limit(&self, user: &str, client: &str) -> Option<usize> {
        let (limit, _) = self.resolve(QuotaKind::Fetch, user, client)?;
        // A float-to-int cast saturates: a huge quota is no limit.
        Some((limit * super::rate::BURST.as_secs_f64()) as usize)
    }

    /// The `kind` quota that applies to `user` using `client`, with the key its usage is
    /// measured under, by Kafka's precedence: user and client id, user and default
    /// client, user, default user and client, both defaults, default user, client,
    /// default client. A default is measured per actual name (each user has its own).
    pub fn resolve(&self, kind: QuotaKind, user: &str, client: &str) -> Option<(f64, SensorKey)> {
        use EntityName::{Default as D, Named as N};
        let (u, c) = (N(user.to_string()), N(client.to_string()));
        let order = [
            (Some(u.clone()), Some(c.clone())),
            (Some(u.clone()), Some(D)),
            (Some(u), None),
            (Some(D), Some(c.clone())),
            (Some(D), Some(D)),
            (Some(D), None),
            (None, Some(c)),
            (None, Some(D)),
        ];
        order.into_iter().find_map(|(user_side, client_side)| {
            let key = (
                if user_side.is_some() { user } else { "" }.to_string(),
                if client_side.is_some() { client } else { "" }.to_string(),
            );
            let entity = QuotaEntity {
                user: user_side,
                client_id: client_side,
            };
            let limit = *self.0.get(&entity)?.get(kind.key())?;
            Some((limit, key))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(user: Option<EntityName>, client_id: Option<EntityName>) -> QuotaEntity {
        QuotaEntity { user, client_id }
    }

    fn set(q: &mut ClientQuotas, e: QuotaEntity, value: f64) {
        let set = [(QuotaKind::Produce.key().to_string(), value)].into();
        q.apply(vec![QuotaChange {
            entity: e,
            set,
            remove: vec![],
        }]);
    }

    fn named(n: &str) -> Option<EntityName> {
        Some(EntityName::Named(n.into()))
    }

    #[test]
    fn the_most_specific_entity_wins_as_in_kip_55() {
        let mut q = ClientQuotas::default();
        let p = QuotaKind::Produce;
        assert_eq!(q.resolve(p, "alice", "app"), None);
        set(&mut q, entity(None, Some(EntityName::Default)), 8.0);
        assert_eq!(
            q.resolve(p, "alice", "app"),
            Some((8.0, ("".into(), "app".into())))
        );
        set(&mut q, entity(Some(EntityName::Default), None), 6.0);
        assert_eq!(
            q.resolve(p, "alice", "app"),
            Some((6.0, ("alice".into(), "".into())))
        );
        set(&mut q, entity(named("alice"), None), 3.0);
        set(&mut q, entity(named("alice"), named("app")), 1.0);
        assert_eq!(
            q.resolve(p, "alice", "app"),
            Some((1.0, ("alice".into(), "app".into())))
        );
        assert_eq!(
            q.resolve(p, "alice", "other"),
            Some((3.0, ("alice".into(), "".into())))
        );
        assert_eq!(
            q.resolve(p, "bob", "app"),
            Some((6.0, ("bob".into(), "".into())))
        );
        assert_eq!(q.resolve(QuotaKind::Fetch, "alice", "app"), None);
    }

    #[test]
    fn removing_the_last_key_removes_the_entity_and_json_round_trips() {
        let mut q = ClientQuotas::default();
        let e = entity(named("alice"), Some(EntityName::Default));
        set(&mut q, e.clone(), 5.0);
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(serde_json::from_str::<ClientQuotas>(&json).unwrap(), q);
        q.apply(vec![QuotaChange {
            entity: e,
            set: BTreeMap::new(),
            remove: vec![QuotaKind::Produce.key().into()],
        }]);
        assert!(q.is_empty());
    }
}
