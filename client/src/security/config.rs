//! The security settings of a client, under Kafka's (and librdkafka's) property names, so
//! a `client.properties` file written for `kafka-topics --command-config` or for
//! librdkafka carries over.
//!
//! | key | values |
//! |---|---|
//! | `security.protocol` | `PLAINTEXT` (default), `SSL`, `SASL_PLAINTEXT`, `SASL_SSL` |
//! | `ssl.ca.location` | PEM file of the CA(s) that signed the brokers' certificates (required for TLS) |
//! | `ssl.certificate.location`, `ssl.key.location` | PEM client certificate (chain) and its private key, for brokers with `ssl.client.auth` |
//! | `ssl.endpoint.identification.algorithm` | `https` (default): the broker's certificate must name the host connected to; `none` (or empty): only the chain is checked |
//! | `sasl.mechanism` (alias `sasl.mechanisms`) | `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` |
//! | `sasl.username`, `sasl.password` | the SASL user's name and password |
//!
//! Keys are case-sensitive, as in Kafka; values of the enumerated keys are not. SASL
//! settings are ignored unless the protocol is `SASL_*`, and TLS settings unless it is
//! `SSL` or `SASL_SSL`, as Kafka's clients do. Other keys are refused by name.

use std::fmt;
use std::path::PathBuf;

use sasl::Mechanism;

use crate::error::{Error, Result};

/// `security.protocol`.
pub const SECURITY_PROTOCOL: &str = "security.protocol";
/// `ssl.ca.location`.
pub const SSL_CA_LOCATION: &str = "ssl.ca.location";
/// `ssl.certificate.location`.
pub const SSL_CERTIFICATE_LOCATION: &str = "ssl.certificate.location";
/// `ssl.key.location`.
pub const SSL_KEY_LOCATION: &str = "ssl.key.location";
/// `ssl.endpoint.identification.algorithm`.
pub const SSL_ENDPOINT_IDENTIFICATION: &str = "ssl.endpoint.identification.algorithm";
/// `sasl.mechanism` (Kafka's name).
pub const SASL_MECHANISM: &str = "sasl.mechanism";
/// `sasl.mechanisms` (librdkafka's name for the same setting).
pub const SASL_MECHANISMS: &str = "sasl.mechanisms";
/// `sasl.username`.
pub const SASL_USERNAME: &str = "sasl.username";
/// `sasl.password`.
pub const SASL_PASSWORD: &str = "sasl.password";

/// Every key [`SecurityConfig::set`] accepts.
pub const KEYS: &[&str] = &[
    SECURITY_PROTOCOL,
    SSL_CA_LOCATION,
    SSL_CERTIFICATE_LOCATION,
    SSL_KEY_LOCATION,
    SSL_ENDPOINT_IDENTIFICATION,
    SASL_MECHANISM,
    SASL_MECHANISMS,
    SASL_USERNAME,
    SASL_PASSWORD,
];

/// Keys of the Java client that have a PEM-file equivalent here, with what to use.
const JAVA_KEYS: &[(&str, &str)] = &[
    ("ssl.truststore.location", SSL_CA_LOCATION),
    (
        "ssl.keystore.location",
        "ssl.certificate.location and ssl.key.location",
    ),
    ("sasl.jaas.config", "sasl.username and sasl.password"),
];

/// How connections are protected: Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    /// Plain TCP, no authentication.
    #[default]
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL authentication over plain TCP (the password crosses the network in clear
    /// with PLAIN).
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name (`SASL_SSL`).
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// The protocol of a name, in any case (Kafka upper-cases it too).
    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Whether connections run over TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the broker's certificate must name the host connected to:
/// `ssl.endpoint.identification.algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointIdentification {
    /// `https`: the certificate must name the host (a DNS name or an IP address in its
    /// subject alternative names).
    #[default]
    Https,
    /// `none` (or empty): any host; the certificate chain is still verified.
    None,
}

/// A client's security settings, as written; [`SecurityConfig::build`] checks them and
/// loads the files they name.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecurityConfig {
    /// `security.protocol`.
    pub protocol: SecurityProtocol,
    /// `ssl.ca.location`: PEM file of trusted CA certificates.
    pub ssl_ca_location: Option<PathBuf>,
    /// `ssl.certificate.location`: PEM client certificate chain.
    pub ssl_certificate_location: Option<PathBuf>,
    /// `ssl.key.location`: PEM private key of the client certificate.
    pub ssl_key_location: Option<PathBuf>,
    /// `ssl.endpoint.identification.algorithm`.
    pub ssl_endpoint_identification: EndpointIdentification,
    /// `sasl.mechanism`.
    pub sasl_mechanism: Option<Mechanism>,
    /// `sasl.username`.
    pub sasl_username: Option<String>,
    /// `sasl.password`.
    pub sasl_password: Option<String>,
}

impl fmt::Debug for SecurityConfig {
    /// Everything but the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("protocol", &self.protocol)
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("ssl_certificate_location", &self.ssl_certificate_location)
            .field("ssl_key_location", &self.ssl_key_location)
            .field(
                "ssl_endpoint_identification",
                &self.ssl_endpoint_identification,
            )
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field(
                "sasl_password",
                &self.sasl_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl SecurityConfig {
    /// The settings of `key = value` pairs, applied in order (a later value of a key
    /// wins). Fails with [`Error::Config`] naming the first unknown key or bad value.
    pub fn from_properties<K, V>(properties: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut config = SecurityConfig::default();
        for (key, value) in properties {
            config.set(key.as_ref(), value.as_ref())?;
        }
        Ok(config)
    }

    /// Sets one property. Paths and names are taken as given; whether the files exist
    /// and the settings fit together is checked by [`SecurityConfig::build`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            SECURITY_PROTOCOL => {
                self.protocol = SecurityProtocol::parse(value).ok_or_else(|| {
                    invalid(
                        key,
                        format!("{value:?} is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
                    )
                })?;
            }
            SSL_CA_LOCATION => self.ssl_ca_location = Some(path(key, value)?),
            SSL_CERTIFICATE_LOCATION => self.ssl_certificate_location = Some(path(key, value)?),
            SSL_KEY_LOCATION => self.ssl_key_location = Some(path(key, value)?),
            SSL_ENDPOINT_IDENTIFICATION => {
                self.ssl_endpoint_identification = match value.to_ascii_lowercase().as_str() {
                    "https" => EndpointIdentification::Https,
                    "none" | "" => EndpointIdentification::None,
                    _ => return Err(invalid(key, format!("{value:?} is not https or none"))),
                };
            }
            SASL_MECHANISM | SASL_MECHANISMS => {
                let mechanism = Mechanism::parse(&value.to_ascii_uppercase()).ok_or_else(|| {
                    invalid(
                        key,
                        format!(
                            "{value:?} is not supported: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
                        ),
                    )
                })?;
                self.sasl_mechanism = Some(mechanism);
            }
            SASL_USERNAME => self.sasl_username = Some(value.to_string()),
            SASL_PASSWORD => self.sasl_password = Some(value.to_string()),
            _ => return Err(unknown(key)),
        }
        Ok(())
    }
}

fn path(key: &str, value: &str) -> Result<PathBuf> {
    if value.is_empty() {
        return Err(invalid(key, "the path is empty".to_string()));
    }
    Ok(PathBuf::from(value))
}

/// [`Error::Config`] for `key`.
pub(crate) fn invalid(key: &str, reason: String) -> Error {
    Error::Config {
        setting: key.to_string(),
        reason,
    }
}

fn unknown(key: &str) -> Error {
    let reason = match JAVA_KEYS.iter().find(|(java, _)| *java == key) {
        Some((_, instead)) => format!("a Java client setting that is not supported; use {instead}"),
        None => format!("unknown setting (known: {})", KEYS.join(", ")),
    };
    invalid(key, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_and_librdkafka_names_are_read() {
        let c = SecurityConfig::from_properties([
            ("security.protocol", "sasl_ssl"),
            ("ssl.ca.location", "/etc/ca.pem"),
            ("ssl.certificate.location", "/etc/me.pem"),
            ("ssl.key.location", "/etc/me.key"),
            ("ssl.endpoint.identification.algorithm", ""),
            ("sasl.mechanisms", "scram-sha-256"),
            ("sasl.username", "alice"),
            ("sasl.password", "p=w:d"),
        ])
        .unwrap();
        assert_eq!(c.protocol, SecurityProtocol::SaslSsl);
        assert_eq!(c.ssl_ca_location, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(c.ssl_key_location, Some(PathBuf::from("/etc/me.key")));
        assert_eq!(c.ssl_endpoint_identification, EndpointIdentification::None);
        assert_eq!(c.sasl_mechanism, Some(Mechanism::ScramSha256));
        assert_eq!(c.sasl_password.as_deref(), Some("p=w:d"));
        // Kafka's name for the mechanism; a later value wins.
        let c = SecurityConfig::from_properties([
            ("sasl.mechanism", "PLAIN"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
        ])
        .unwrap();
        assert_eq!(c.sasl_mechanism, Some(Mechanism::ScramSha512));
        assert_eq!(c.protocol, SecurityProtocol::Plaintext);
        assert_eq!(c.ssl_endpoint_identification, EndpointIdentification::Https);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = |k: &str, v: &str| {
            SecurityConfig::from_properties([(k, v)])
                .unwrap_err()
                .to_string()
        };
        let e = err("bootstrap.server", "x");
        assert!(
            e.starts_with("bootstrap.server: unknown setting (known: security.protocol"),
            "{e}"
        );
        let e = err("ssl.truststore.location", "x.jks");
        assert!(e.contains("use ssl.ca.location"), "{e}");
        let e = err("security.protocol", "TLS");
        assert!(
            e.starts_with("security.protocol: \"TLS\" is not PLAINTEXT"),
            "{e}"
        );
        let e = err("sasl.mechanism", "GSSAPI");
        assert!(e.contains("\"GSSAPI\" is not supported"), "{e}");
        let e = err("ssl.endpoint.identification.algorithm", "strict");
        assert!(e.contains("is not https or none"), "{e}");
        assert!(err("ssl.ca.location", "").contains("empty"));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let c = SecurityConfig::from_properties([("sasl.password", "hunter2")]).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
