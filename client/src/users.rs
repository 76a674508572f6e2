//! Users' SCRAM credentials, as Kafka's `kafka-configs --entity-type users` manages
//! them: describe (mechanism and iteration count, never a secret), set and delete.
//!
//! Setting a credential sends a fresh random salt and the salted password (PBKDF2 of the
//! password, computed here), never the password: Kafka's AlterUserScramCredentials
//! format. Every call goes to the controller (or any broker when the metadata names
//! none), so a describe right after a change sees it. The broker's refusals
//! (RESOURCE_NOT_FOUND, UNACCEPTABLE_CREDENTIAL, …) are [`Error::Kafka`] naming the
//! user; a broker without these APIs gives [`Error::UnsupportedApi`].
//!
//! The salted password sent is enough to authenticate with SCRAM: send it over SSL or
//! SASL_SSL, not over a plaintext listener.

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiKey, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use sasl::Mechanism;
/// Kafka's bounds on a credential's iteration count.
pub use sasl::{MAX_ITERATIONS, MIN_ITERATIONS};

use crate::admin::Admin;
use crate::error::{Error, KafkaCode, Result};

/// Kafka's `UNKNOWN_SERVER_ERROR`, for a response that leaves the user out.
const UNKNOWN_SERVER_ERROR: i16 = -1;

/// One SCRAM credential of a user, as the broker describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredentialInfo {
    /// Kafka's number of the mechanism: 1 for SCRAM-SHA-256, 2 for SCRAM-SHA-512.
    pub mechanism_type: i8,
    /// The PBKDF2 iteration count.
    pub iterations: i32,
}

impl ScramCredentialInfo {
    /// The mechanism, if this client knows its number.
    pub fn mechanism(&self) -> Option<Mechanism> {
        Mechanism::from_kafka_scram_type(self.mechanism_type)
    }

    /// `SCRAM-SHA-256`, `SCRAM-SHA-512`, or `UNKNOWN(n)`.
    pub fn mechanism_name(&self) -> String {
        self.mechanism().map_or_else(
            || format!("UNKNOWN({})", self.mechanism_type),
            |m| m.name().to_string(),
        )
    }
}

/// A user and its SCRAM credentials (one per mechanism at most).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserScramCredentials {
    /// The user name.
    pub user: String,
    /// Its credentials, as the broker lists them.
    pub credentials: Vec<ScramCredentialInfo>,
}

impl Admin {
    /// The SCRAM credentials of `users`, or of every user that has one when `users` is
    /// empty; sorted by user. A named user without credentials fails the call with the
    /// broker's RESOURCE_NOT_FOUND.
    pub async fn describe_user_scram_credentials(
        &self,
        users: &[String],
    ) -> Result<Vec<UserScramCredentials>> {
        let names = users
            .iter()
            .map(|u| UserName::default().with_name(StrBytes::from_string(u.clone())))
            .collect();
        let request = DescribeUserScramCredentialsRequest::default()
            .with_users((!users.is_empty()).then_some(names));
        let response = self.cluster().send_controller(&request).await?;
        Error::check(
            response.error_code,
            || "describe SCRAM credentials".to_string(),
            response.error_message.as_deref(),
        )?;
        let mut described = Vec::with_capacity(response.results.len());
        for result in response.results {
            let user = result.user.to_string();
            Error::check(
                result.error_code,
                || format!("describe SCRAM credentials of user {user:?}"),
                result.error_message.as_deref(),
            )?;
            let credentials = result
                .credential_infos
                .iter()
                .map(|c| ScramCredentialInfo {
                    mechanism_type: c.mechanism,
                    iterations: c.iterations,
                })
                .collect();
            described.push(UserScramCredentials { user, credentials });
        }
        described.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(described)
    }

    /// Creates or replaces `user`'s credential for `mechanism` (SCRAM-SHA-256 or
    /// SCRAM-SHA-512) with `password`, salted afresh and hashed `iterations` times
    /// (Kafka's bounds: 4096..=16384). Connections already authenticated stay so.
    pub async fn set_user_scram_credential(
        &self,
        user: &str,
        mechanism: Mechanism,
        iterations: u32,
        password: &str,
    ) -> Result<()> {
        let mechanism_type = scram_type(mechanism)?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(Error::InvalidArgument(format!(
                "{iterations} iterations is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            )));
        }
        if user.is_empty() || password.is_empty() {
            return Err(Error::InvalidArgument(
                "a SCRAM credential needs a user name and a password".into(),
            ));
        }
        let salt = sasl::new_salt().map_err(|e| Error::Encode {
            api: ApiKey::AlterUserScramCredentials,
            version: 0,
            reason: format!("no salt: {e}"),
        })?;
        let salted = sasl::salted_password(mechanism, password.as_bytes(), &salt, iterations);
        let upsertion = ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(user.to_string()))
            .with_mechanism(mechanism_type)
            // In 4096..=16384, checked above.
            .with_iterations(iterations as i32)
            .with_salt(Bytes::from(salt))
            .with_salted_password(Bytes::from(salted));
        let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]);
        self.alter_scram(&request, user, "set").await
    }

    /// Deletes `user`'s credential for `mechanism`; the broker answers
    /// RESOURCE_NOT_FOUND when there is none.
    pub async fn delete_user_scram_credential(
        &self,
        user: &str,
        mechanism: Mechanism,
    ) -> Result<()> {
        let deletion = ScramCredentialDeletion::default()
            .with_name(StrBytes::from_string(user.to_string()))
            .with_mechanism(scram_type(mechanism)?);
        let request = AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]);
        self.alter_scram(&request, user, "delete").await
    }

    async fn alter_scram(
        &self,
        request: &AlterUserScramCredentialsRequest,
        user: &str,
        what: &str,
    ) -> Result<()> {
        let context = || format!("{what} SCRAM credential of user {user:?}");
        let response = self.cluster().send_controller(request).await?;
        let result = response
            .results
            .iter()
            .find(|r| r.user.as_str() == user)
            .ok_or_else(|| Error::Kafka {
                context: context(),
                code: KafkaCode(UNKNOWN_SERVER_ERROR),
                message: Some("the response does not mention the user".into()),
            })?;
        Error::check(result.error_code, context, result.error_message.as_deref())
    }
}

/// Kafka's number of a SCRAM mechanism; PLAIN has no stored credential.
fn scram_type(mechanism: Mechanism) -> Result<i8> {
    mechanism.kafka_scram_type().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{} has no stored credential: use SCRAM-SHA-256 or SCRAM-SHA-512",
            mechanism.name()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanisms_have_kafka_numbers_and_names() {
        assert_eq!(scram_type(Mechanism::ScramSha256).unwrap(), 1);
        assert_eq!(scram_type(Mechanism::ScramSha512).unwrap(), 2);
        assert!(matches!(
            scram_type(Mechanism::Plain),
            Err(Error::InvalidArgument(_))
        ));
        let info = |t| ScramCredentialInfo {
            mechanism_type: t,
            iterations: 4096,
        };
        assert_eq!(info(2).mechanism_name(), "SCRAM-SHA-512");
        assert_eq!(info(0).mechanism_name(), "UNKNOWN(0)");
    }
}
