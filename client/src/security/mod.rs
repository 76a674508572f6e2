//! TLS and SASL for client connections, configured as Kafka's clients are.
//!
//! [`SecurityConfig`] holds the settings under their Kafka names;
//! [`SecurityConfig::build`] checks that they fit together, reads the PEM files once and
//! gives a [`Security`], which every connection of a client shares (it goes in
//! [`crate::ConnectionConfig::security`]; the default is plain TCP).
//!
//! ## What a connection does, in order
//!
//! 1. TCP connect; with `SSL` or `SASL_SSL`, a TLS 1.2/1.3 handshake (rustls) that
//!    verifies the broker's certificate chain against `ssl.ca.location` and, unless
//!    `ssl.endpoint.identification.algorithm=none`, that the certificate names the host
//!    of the broker address (a DNS name, or the IP address when the host is one). A
//!    client certificate is presented when one is configured.
//! 2. ApiVersions (the versions of every later request).
//! 3. With `SASL_PLAINTEXT` or `SASL_SSL`: SaslHandshake v1 naming the mechanism, then
//!    SaslAuthenticate rounds carrying its tokens (PLAIN: one; SCRAM: two, and the
//!    broker's last message must prove that it holds the user's credential).
//!
//! Failures that retrying cannot fix are [`crate::Error::Tls`] (an untrusted or
//! misnamed broker certificate, a refused client certificate) and
//! [`crate::Error::Authentication`] (with the broker's error message); a connection
//! lost midway is [`crate::Error::Connect`] or [`crate::Error::Io`], retriable as before.
//! The whole sequence is bounded by `connect_timeout`.
//!
//! Sessions are not re-authenticated (KIP-368): a broker that limits a session's
//! lifetime closes the connection when it ends, which the client handles as any lost
//! connection.

mod config;
pub(crate) mod exchange;
pub(crate) mod tls;

use std::fmt;
use std::sync::Arc;

pub use config::{
    EndpointIdentification, SecurityConfig, SecurityProtocol, KEYS, SASL_MECHANISM,
    SASL_MECHANISMS, SASL_PASSWORD, SASL_USERNAME, SECURITY_PROTOCOL, SSL_CA_LOCATION,
    SSL_CERTIFICATE_LOCATION, SSL_ENDPOINT_IDENTIFICATION, SSL_KEY_LOCATION,
};
/// A SASL mechanism (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`).
pub use sasl::Mechanism;
use tokio_rustls::TlsConnector;

use crate::error::Result;
use config::invalid;

/// Checked security settings with their files loaded, shared by every connection of a
/// client (cloning is cheap). The default is `PLAINTEXT`.
#[derive(Clone, Default)]
pub struct Security {
    protocol: SecurityProtocol,
    tls: Option<TlsConnector>,
    sasl: Option<Arc<SaslCredentials>>,
}

impl Security {
    /// The `security.protocol` connections use.
    pub fn protocol(&self) -> SecurityProtocol {
        self.protocol
    }

    /// The TLS client configuration, for `SSL` and `SASL_SSL`.
    pub(crate) fn tls(&self) -> Option<&TlsConnector> {
        self.tls.as_ref()
    }

    /// The SASL user, for `SASL_PLAINTEXT` and `SASL_SSL`.
    pub(crate) fn sasl(&self) -> Option<&Arc<SaslCredentials>> {
        self.sasl.as_ref()
    }
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

/// A SASL user and the mechanism it authenticates with.
pub(crate) struct SaslCredentials {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for SaslCredentials {
    /// The mechanism and user, never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism.name())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl SecurityConfig {
    /// Checks the settings the protocol needs (TLS: `ssl.ca.location`, and the client
    /// certificate and key together or neither; SASL: mechanism, user name and
    /// password) and reads the PEM files. Fails with [`crate::Error::Config`] naming
    /// the setting.
    pub fn build(&self) -> Result<Security> {
        let tls = self
            .protocol
            .uses_tls()
            .then(|| tls::connector(self))
            .transpose()?;
        let sasl = self
            .protocol
            .uses_sasl()
            .then(|| self.sasl_credentials().map(Arc::new))
            .transpose()?;
        Ok(Security {
            protocol: self.protocol,
            tls,
            sasl,
        })
    }

    fn sasl_credentials(&self) -> Result<SaslCredentials> {
        let needs = |key: &str, what: &str| {
            invalid(
                key,
                format!("security.protocol={} needs {what}", self.protocol),
            )
        };
        let mechanism = self.sasl_mechanism.ok_or_else(|| {
            needs(
                SASL_MECHANISM,
                "a mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
            )
        })?;
        let username = match self.sasl_username.as_deref() {
            Some(u) if !u.is_empty() => u.to_string(),
            _ => return Err(needs(SASL_USERNAME, "a user name")),
        };
        let password = self
            .sasl_password
            .clone()
            .ok_or_else(|| needs(SASL_PASSWORD, "a password"))?;
        Ok(SaslCredentials {
            mechanism,
            username,
            password,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_needs_nothing_and_sasl_needs_a_user() {
        let plain = SecurityConfig::default().build().unwrap();
        assert_eq!(plain.protocol(), SecurityProtocol::Plaintext);
        assert!(plain.tls().is_none() && plain.sasl().is_none());

        let mut c =
            SecurityConfig::from_properties([("security.protocol", "SASL_PLAINTEXT")]).unwrap();
        let e = c.build().unwrap_err().to_string();
        assert!(
            e.starts_with("sasl.mechanism: security.protocol=SASL_PLAINTEXT needs"),
            "{e}"
        );
        c.set("sasl.mechanism", "PLAIN").unwrap();
        let e = c.build().unwrap_err().to_string();
        assert!(e.starts_with("sasl.username:"), "{e}");
        c.set("sasl.username", "alice").unwrap();
        let e = c.build().unwrap_err().to_string();
        assert!(e.starts_with("sasl.password:"), "{e}");
        c.set("sasl.password", "pw").unwrap();
        let built = c.build().unwrap();
        assert!(built.tls().is_none());
        let shown = format!("{built:?}");
        assert!(shown.contains("alice") && !shown.contains("pw"), "{shown}");
    }

    #[test]
    fn settings_of_other_protocols_are_ignored() {
        // Kafka's clients ignore SASL settings without SASL, and TLS settings without TLS.
        let c = SecurityConfig::from_properties([
            ("sasl.mechanism", "PLAIN"),
            ("ssl.ca.location", "/nonexistent/ca.pem"),
        ])
        .unwrap();
        let built = c.build().unwrap();
        assert!(built.tls().is_none() && built.sasl().is_none());
    }
}
