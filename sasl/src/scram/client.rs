//! The client's side of a SCRAM exchange: client-first, then client-final from the
//! server-first message, then a check of the server-final message.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::{attributes, escape_name, expect, hash, hmac, nonce, salted_password, utf8};
use super::{client_key, ScramError, MIN_ITERATIONS};
use crate::Mechanism;

/// The most iterations a client computes for a server: Kafka's own maximum, which
/// bounds the work (and the time the client spends hashing) a hostile server can ask
/// for.
const CLIENT_MAX_ITERATIONS: u32 = super::MAX_ITERATIONS;
/// No authorization id, no channel binding.
const GS2_HEADER: &str = "n,,";

/// A client exchange that has sent its first message. Its `Debug` leaves the
/// password out.
pub struct ScramClient {
    mechanism: Mechanism,
    password: Vec<u8>,
    nonce: String,
    /// client-first-message-bare
    bare: String,
}

/// A client exchange that has sent its proof and waits for the server's signature.
#[derive(Debug)]
pub struct ScramClientFinal {
    server_signature: Vec<u8>,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("bare", &self.bare)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// Starts an exchange for `user`: the client and its first message.
    pub fn start(
        mechanism: Mechanism,
        user: &str,
        password: &[u8],
    ) -> Result<(ScramClient, Vec<u8>), ScramError> {
        let nonce = nonce()?;
        let bare = format!("n={},r={nonce}", escape_name(user));
        let first = format!("{GS2_HEADER}{bare}").into_bytes();
        let client = ScramClient {
            mechanism,
            password: password.to_vec(),
            nonce,
            bare,
        };
        Ok((client, first))
    }

    /// Answers the server-first message with the client-final one (the proof).
    pub fn respond(self, server_first: &[u8]) -> Result<(ScramClientFinal, Vec<u8>), ScramError> {
        let msg = utf8(server_first)?;
        let attrs = attributes(msg)?;
        if let Some(e) = attrs.iter().find(|(k, _)| *k == 'e') {
            return Err(ScramError::ServerError(e.1.to_string()));
        }
        let nonce = expect(&attrs, 0, 'r')?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        let salt = B64
            .decode(expect(&attrs, 1, 's')?)
            .map_err(|_| ScramError::Malformed("the salt is not base64"))?;
        let iterations: u32 = expect(&attrs, 2, 'i')?
            .parse()
            .map_err(|_| ScramError::Malformed("the iteration count is not a number"))?;
        if !(MIN_ITERATIONS..=CLIENT_MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::Iterations(iterations));
        }
        let m = self.mechanism;
        let salted = salted_password(m, &self.password, &salt, iterations);
        let without_proof = format!("c={},r={nonce}", B64.encode(GS2_HEADER));
        let auth_message = format!("{},{msg},{without_proof}", self.bare);
        let key = client_key(m, &salted);
        let signature = hmac(m, &hash(m, &key), auth_message.as_bytes());
        let proof: Vec<u8> = key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        let server_key = hmac(m, &salted, b"Server Key");
        let final_state = ScramClientFinal {
            server_signature: hmac(m, &server_key, auth_message.as_bytes()),
        };
        let client_final = format!("{without_proof},p={}", B64.encode(proof));
        Ok((final_state, client_final.into_bytes()))
    }
}

impl ScramClientFinal {
    /// Checks the server-final message: the server proved it holds the credential.
    pub fn verify(self, server_final: &[u8]) -> Result<(), ScramError> {
        let attrs = attributes(utf8(server_final)?)?;
        match attrs.first() {
            Some(('e', why)) => Err(ScramError::ServerError(why.to_string())),
            Some(('v', v)) => {
                let got = B64
                    .decode(v)
                    .map_err(|_| ScramError::Malformed("the verifier is not base64"))?;
                if bool::from(got.ct_eq(&self.server_signature)) {
                    Ok(())
                } else {
                    Err(ScramError::ServerSignature)
                }
            }
            _ => Err(ScramError::Malformed("no verifier")),
        }
    }
}
