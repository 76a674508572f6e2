//! SCRAM (RFC 5802) with SHA-256 and SHA-512: the stored credential, the key
//! derivations, and the attribute syntax of its messages.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::Mechanism;

pub mod client;
pub mod server;

/// Kafka's bounds on a SCRAM credential's iteration count.
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;
/// Bytes of a new salt.
const SALT_BYTES: usize = 32;
/// Random bytes behind each side's nonce.
const NONCE_BYTES: usize = 24;

/// What the broker keeps of a user's password for one mechanism (RFC 5802 section 3):
/// enough to check a proof, not enough to make one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// Why a SCRAM exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("SCRAM channel binding is not supported")]
    ChannelBinding,
    #[error("the SCRAM authorization id is not the user name")]
    AuthzidMismatch,
    #[error("the SCRAM nonce does not continue the exchange")]
    NonceMismatch,
    #[error("authentication failed: invalid user name or password")]
    InvalidCredentials,
    #[error("the server's iteration count {0} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    Iterations(u32),
    #[error("the server's SCRAM signature does not match: it does not hold this password")]
    ServerSignature,
    #[error("the server refused the SCRAM exchange: {0}")]
    ServerError(String),
    #[error("no randomness from the operating system")]
    Random,
}

/// A fresh random salt.
pub fn new_salt() -> Result<Vec<u8>, ScramError> {
    random(SALT_BYTES)
}

fn random(n: usize) -> Result<Vec<u8>, ScramError> {
    let mut bytes = vec![0u8; n];
    getrandom::getrandom(&mut bytes).map_err(|_| ScramError::Random)?;
    Ok(bytes)
}

/// A printable nonce (base64 has no `,`).
fn nonce() -> Result<String, ScramError> {
    Ok(B64.encode(random(NONCE_BYTES)?))
}

fn hmac(m: Mechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    match m {
        Mechanism::ScramSha512 => {
            let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

fn hash(m: Mechanism, data: &[u8]) -> Vec<u8> {
    match m {
        Mechanism::ScramSha512 => Sha512::digest(data).to_vec(),
        _ => Sha256::digest(data).to_vec(),
    }
}

/// `Hi(password, salt, i)`: PBKDF2 with the mechanism's HMAC.
pub fn salted_password(m: Mechanism, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    match m {
        Mechanism::ScramSha512 => {
            let mut out = vec![0u8; 64];
            pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
            out
        }
        _ => {
            let mut out = vec![0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
            out
        }
    }
}

fn client_key(m: Mechanism, salted: &[u8]) -> Vec<u8> {
    hmac(m, salted, b"Client Key")
}

/// The credential of a salted password (what AlterUserScramCredentials carries).
pub fn credential_from_salted(
    m: Mechanism,
    salted: &[u8],
    salt: Vec<u8>,
    iterations: u32,
) -> ScramCredential {
    ScramCredential {
        salt,
        iterations,
        stored_key: hash(m, &client_key(m, salted)),
        server_key: hmac(m, salted, b"Server Key"),
    }
}

/// The credential of a password.
pub fn credential(
    m: Mechanism,
    password: &[u8],
    salt: Vec<u8>,
    iterations: u32,
) -> ScramCredential {
    let salted = salted_password(m, password, &salt, iterations);
    credential_from_salted(m, &salted, salt, iterations)
}

/// Whether `password` is the one behind `credential` (how PLAIN is checked against a
/// SCRAM credential); compared in constant time.
pub fn verify_password(m: Mechanism, password: &[u8], credential: &ScramCredential) -> bool {
    let salted = salted_password(m, password, &credential.salt, credential.iterations);
    let stored = hash(m, &client_key(m, &salted));
    subtle::ConstantTimeEq::ct_eq(stored.as_slice(), credential.stored_key.as_slice()).into()
}

/// `a=value` attributes of a SCRAM message, in order.
fn attributes(msg: &str) -> Result<Vec<(char, &str)>, ScramError> {
    msg.split(',')
        .map(|part| {
            let mut chars = part.chars();
            match (chars.next(), chars.next()) {
                (Some(k), Some('=')) if k.is_ascii_alphabetic() => Ok((k, &part[2..])),
                _ => Err(ScramError::Malformed("an attribute is not a=value")),
            }
        })
        .collect()
}

/// The value of attribute `key` at position `at`.
fn expect<'a>(attrs: &[(char, &'a str)], at: usize, key: char) -> Result<&'a str, ScramError> {
    match attrs.get(at) {
        Some((k, v)) if *k == key => Ok(v),
        _ => Err(ScramError::Malformed("an expected attribute is missing")),
    }
}

/// `saslname` escaping of a user name (`,` → `=2C`, `=` → `=3D`).
fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn unescape_name(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3);
        out.push(match code {
            Some("2C") => ',',
            Some("3D") => '=',
            _ => return Err(ScramError::Malformed("a bad escape in the user name")),
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn utf8(msg: &[u8]) -> Result<&str, ScramError> {
    std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))
}

#[cfg(test)]
mod tests;
