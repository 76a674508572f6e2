//! SCRAM credentials in the cluster metadata: per user and mechanism, the salt,
//! iteration count, stored key and server key (never the password), changed by
//! [`super::MetaRecord::AlterScramCredentials`] and read by every broker to check a
//! SASL exchange.

use std::collections::BTreeMap;

use sasl::{Mechanism, ScramCredential};
use serde::{Deserialize, Serialize};

/// One credential set by AlterUserScramCredentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramUpsert {
    pub user: String,
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    pub credential: ScramCredential,
}

/// One credential removed by AlterUserScramCredentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramDeletion {
    pub user: String,
    pub mechanism: String,
}

/// Whether `password` is `user`'s, checked against its SCRAM credential (SHA-512 if it
/// has one, else SHA-256) on a blocking thread: PBKDF2 is thousands of HMACs. An
/// unknown user costs the same hashing against a dummy credential, so the time taken
/// does not tell which names exist.
/// `found` is [`ScramUsers::password_credential`] of the user.
pub async fn password_matches(
    found: Option<(Mechanism, ScramCredential)>,
    password: Vec<u8>,
) -> bool {
    static DUMMY: std::sync::LazyLock<ScramCredential> = std::sync::LazyLock::new(|| {
        sasl::credential(
            Mechanism::ScramSha512,
            b"",
            vec![0; 32],
            sasl::MIN_ITERATIONS,
        )
    });
    let known = found.is_some();
    let (m, credential) = found.unwrap_or_else(|| (Mechanism::ScramSha512, DUMMY.clone()));
    let checked =
        tokio::task::spawn_blocking(move || sasl::verify_password(m, &password, &credential));
    // The dummy's stored key belongs to no password a client could send (it is
    // never compared for an unknown user).
    known && checked.await.unwrap_or(false)
}

/// Every user's credentials: user → mechanism name → credential.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramUsers(BTreeMap<String, BTreeMap<String, ScramCredential>>);

impl ScramUsers {
    /// The credential of `user` for `mechanism`.
    pub fn get(&self, user: &str, mechanism: Mechanism) -> Option<&ScramCredential> {
        self.0.get(user)?.get(mechanism.name())
    }

    /// The credential a password is checked against: SHA-512 if the user has one,
    /// else SHA-256.
    pub fn password_credential(&self, user: &str) -> Option<(Mechanism, ScramCredential)> {
        [Mechanism::ScramSha512, Mechanism::ScramSha256]
            .into_iter()
            .find_map(|m| self.get(user, m).map(|c| (m, c.clone())))
    }

    /// Every user with a credential, with its mechanisms.
    pub fn users(&self) -> impl Iterator<Item = (&String, &BTreeMap<String, ScramCredential>)> {
        self.0.iter()
    }

    /// The mechanisms `user` has credentials for.
    pub fn of(&self, user: &str) -> Option<&BTreeMap<String, ScramCredential>> {
        self.0.get(user)
    }

    /// Applies one alteration: deletions first, then upserts (a request never names a
    /// user twice; the proposer checked that).
    pub fn apply(&mut self, upserts: Vec<ScramUpsert>, deletions: Vec<ScramDeletion>) {
        for d in deletions {
            if let Some(m) = self.0.get_mut(&d.user) {
                m.remove(&d.mechanism);
                if m.is_empty() {
                    self.0.remove(&d.user);
                }
            }
        }
        for u in upserts {
            self.0
                .entry(u.user)
                .or_default()
                .insert(u.mechanism, u.credential);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upserts_and_deletions() {
        let c = sasl::credential(Mechanism::ScramSha256, b"pw", vec![1; 8], 4096);
        let mut users = ScramUsers::default();
        let up = |user: &str, m: Mechanism| ScramUpsert {
            user: user.into(),
            mechanism: m.name().into(),
            credential: c.clone(),
        };
        users.apply(
            vec![
                up("a", Mechanism::ScramSha256),
                up("a", Mechanism::ScramSha512),
            ],
            vec![],
        );
        assert_eq!(users.get("a", Mechanism::ScramSha256), Some(&c));
        let del = ScramDeletion {
            user: "a".into(),
            mechanism: "SCRAM-SHA-256".into(),
        };
        users.apply(vec![], vec![del.clone()]);
        assert!(users.get("a", Mechanism::ScramSha256).is_none());
        assert!(users.get("a", Mechanism::ScramSha512).is_some());
        let del512 = ScramDeletion {
            mechanism: "SCRAM-SHA-512".into(),
            ..del
        };
        users.apply(vec![], vec![del512]);
        assert_eq!(users, ScramUsers::default());
    }
}
