//! SASL authentication of a new connection, after ApiVersions and before any other
//! request: SaslHandshake v1 names the mechanism, then SaslAuthenticate requests carry
//! the tokens of [`SaslExchange`] until it is complete. Any refusal ends the connection
//! with [`Error::Authentication`] carrying the broker's message.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use super::Connection;
use crate::error::{Error, KafkaCode, Result};
use crate::security::exchange::SaslExchange;
use crate::security::SaslCredentials;

/// SaslAuthenticate round trips allowed before the exchange must be complete (SCRAM
/// needs two, PLAIN one).
const MAX_SASL_ROUNDS: usize = 4;

impl Connection {
    /// Authenticates this connection as `credentials`' user.
    pub(super) async fn authenticate(&mut self, credentials: &SaslCredentials) -> Result<()> {
        let mechanism = credentials.mechanism.name();
        self.sasl_handshake(mechanism).await?;
        let (mut exchange, mut token) = SaslExchange::start(
            credentials.mechanism,
            &credentials.username,
            &credentials.password,
        )
        .map_err(|e| self.refused(mechanism, e.to_string()))?;
        for _ in 0..MAX_SASL_ROUNDS {
            let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
            let response = self.send(&request).await?;
            if response.error_code != 0 {
                let reason = broker_reason(response.error_code, response.error_message.as_deref());
                return Err(self.refused(mechanism, reason));
            }
            match exchange.step(&response.auth_bytes) {
                Ok(Some(next)) => token = next,
                Ok(None) => {
                    let user = &credentials.username;
                    debug!(addr = %self.addr, mechanism, user, "authenticated");
                    return Ok(());
                }
                Err(e) => return Err(self.refused(mechanism, e.to_string())),
            }
        }
        Err(self.refused(
            mechanism,
            format!("the exchange did not finish within {MAX_SASL_ROUNDS} rounds"),
        ))
    }

    /// SaslHandshake v1: the broker enables `mechanism` on this listener, and tokens
    /// travel in SaslAuthenticate requests.
    async fn sasl_handshake(&mut self, mechanism: &'static str) -> Result<()> {
        let offered = [ApiKey::SaslHandshake, ApiKey::SaslAuthenticate]
            .iter()
            .all(|api| self.api_version(*api).is_some());
        if !offered {
            return Err(self.refused(
                mechanism,
                "the broker offers no SASL (SaslHandshake v1 and SaslAuthenticate) on this \
                 listener: is security.protocol right?"
                    .to_string(),
            ));
        }
        let request =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let response = self.send(&request).await?;
        if response.error_code == 0 {
            return Ok(());
        }
        let enabled: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
        let code = KafkaCode(response.error_code);
        let reason = if enabled.is_empty() {
            format!("{code}: the listener enables no SASL mechanism: is security.protocol right?")
        } else {
            format!("{code} (the listener enables: {})", enabled.join(", "))
        };
        Err(self.refused(mechanism, reason))
    }

    fn refused(&self, mechanism: &'static str, reason: String) -> Error {
        Error::Authentication {
            addr: self.addr.clone(),
            mechanism,
            reason,
        }
    }
}

/// The broker's message, or its error code's name when it sent none.
fn broker_reason(code: i16, message: Option<&str>) -> String {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => m.to_string(),
        None => KafkaCode(code).to_string(),
    }
}
