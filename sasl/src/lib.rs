//! SASL exchanges as Kafka speaks them, for both ends: PLAIN (RFC 4616) and
//! SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677), without channel binding, as
//! Kafka's own SCRAM does.
//!
//! The broker keeps a [`ScramCredential`] per user and mechanism (salt, iteration count,
//! stored key, server key), never the password; [`ScramServer`] checks a client's proof
//! against it. [`ScramClient`] is the client's side. The primitives (HMAC, SHA-2,
//! PBKDF2) are RustCrypto's.

mod plain;
mod scram;

pub use plain::{parse_plain, PlainError};
pub use scram::client::{ScramClient, ScramClientFinal};
pub use scram::server::ScramServer;
pub use scram::{
    credential, credential_from_salted, new_salt, salted_password, verify_password,
    ScramCredential, ScramError, MAX_ITERATIONS, MIN_ITERATIONS,
};

/// A SASL mechanism the broker offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    /// Every mechanism, in the order SaslHandshake lists them.
    pub const ALL: [Mechanism; 3] = [
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
        Mechanism::Plain,
    ];

    /// The IANA name (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism of an IANA name (exact, upper-case, as clients send it).
    pub fn parse(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's number for a SCRAM mechanism (DescribeUserScramCredentials and
    /// AlterUserScramCredentials): 1 for SHA-256, 2 for SHA-512; `None` for PLAIN.
    pub fn kafka_scram_type(self) -> Option<i8> {
        match self {
            Mechanism::Plain => None,
            Mechanism::ScramSha256 => Some(1),
            Mechanism::ScramSha512 => Some(2),
        }
    }

    /// The SCRAM mechanism of Kafka's number.
    pub fn from_kafka_scram_type(t: i8) -> Option<Mechanism> {
        match t {
            1 => Some(Mechanism::ScramSha256),
            2 => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }
}
