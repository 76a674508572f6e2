//! The broker's side of a SCRAM exchange: client-first → server-first, then
//! client-final → server-final.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::{attributes, expect, hash, hmac, nonce, unescape_name, utf8};
use super::{ScramCredential, ScramError, MIN_ITERATIONS};
use crate::Mechanism;

/// An exchange waiting for the client's final message.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: Mechanism,
    user: String,
    /// `None` for an unknown user: the exchange goes on and fails at the proof, so
    /// the answers do not tell which user names exist.
    credential: Option<ScramCredential>,
    gs2_header: String,
    nonce: String,
    /// client-first-message-bare "," server-first-message
    auth_prefix: String,
}

impl ScramServer {
    /// Reads the client's first message and answers with the server-first message.
    /// `lookup` gives the user's credential, if it has one.
    pub fn start(
        mechanism: Mechanism,
        client_first: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<(ScramServer, Vec<u8>), ScramError> {
        let msg = utf8(client_first)?;
        let (gs2_header, bare) = split_gs2(msg)?;
        let attrs = attributes(bare)?;
        if attrs.first().is_some_and(|(k, _)| *k == 'm') {
            return Err(ScramError::Malformed(
                "mandatory extensions are not supported",
            ));
        }
        let user = unescape_name(expect(&attrs, 0, 'n')?)?;
        let client_nonce = expect(&attrs, 1, 'r')?;
        if user.is_empty() || client_nonce.is_empty() {
            return Err(ScramError::Malformed("an empty user name or nonce"));
        }
        if let Some(authzid) = gs2_header.split(',').nth(1).filter(|a| !a.is_empty()) {
            if unescape_name(authzid.strip_prefix("a=").unwrap_or(authzid))? != user {
                return Err(ScramError::AuthzidMismatch);
            }
        }
        let credential = lookup(&user);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (fake_salt(mechanism, &user)?, MIN_ITERATIONS),
        };
        let nonce = format!("{client_nonce}{}", nonce()?);
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
        let server = ScramServer {
            mechanism,
            user,
            credential,
            gs2_header: gs2_header.to_string(),
            nonce,
            auth_prefix: format!("{bare},{server_first}"),
        };
        Ok((server, server_first.into_bytes()))
    }

    /// The user name the client gave.
    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Checks the client's proof: the authenticated user name and the server-final
    /// message (which proves to the client that the server holds its credential).
    pub fn finish(self, client_final: &[u8]) -> Result<(String, Vec<u8>), ScramError> {
        let msg = utf8(client_final)?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let attrs = attributes(without_proof)?;
        let binding = B64
            .decode(expect(&attrs, 0, 'c')?)
            .map_err(|_| ScramError::Malformed("channel binding is not base64"))?;
        if binding != self.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBinding);
        }
        // Kafka checks that the nonce *ends with* the server's, and librdkafka before
        // 2.2 sends the client's nonce twice ("r=" client nonce + the whole server
        // nonce), so exact equality would lock those clients out. The server's random
        // part is still required, which is what makes the exchange fresh.
        if !expect(&attrs, 1, 'r')?.ends_with(&self.nonce) {
            return Err(ScramError::NonceMismatch);
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("the proof is not base64"))?;
        let Some(credential) = &self.credential else {
            return Err(ScramError::InvalidCredentials);
        };
        let auth_message = format!("{},{without_proof}", self.auth_prefix);
        let m = self.mechanism;
        let signature = hmac(m, &credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(ScramError::InvalidCredentials);
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        let matches: bool = hash(m, &client_key).ct_eq(&credential.stored_key).into();
        if !matches {
            return Err(ScramError::InvalidCredentials);
        }
        let verifier = hmac(m, &credential.server_key, auth_message.as_bytes());
        let server_final = format!("v={}", B64.encode(verifier));
        Ok((self.user, server_final.into_bytes()))
    }
}

/// The salt offered for a user without a credential: the same for every attempt at
/// that name, as a real one would be, and not derivable outside this process.
fn fake_salt(m: Mechanism, user: &str) -> Result<Vec<u8>, ScramError> {
    static KEY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let key = match KEY.get() {
        Some(key) => key,
        None => {
            let fresh = super::random(32)?;
            KEY.get_or_init(|| fresh)
        }
    };
    let mut salt = hmac(m, key, user.as_bytes());
    salt.truncate(32);
    Ok(salt)
}

/// Splits `gs2-header` (`n,,` or `n,a=user,`; `y,,` for a client that could bind but
/// thinks the server cannot) from the bare message.
fn split_gs2(msg: &str) -> Result<(&str, &str), ScramError> {
    let flag_end = msg
        .find(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    match &msg[..flag_end] {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("a bad GS2 channel-binding flag")),
    }
    let authzid_end = msg[flag_end + 1..]
        .find(',')
        .map(|i| flag_end + 1 + i)
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    Ok((&msg[..=authzid_end], &msg[authzid_end + 1..]))
}
