//! The client's side of one SASL exchange as a state machine without I/O: it gives the
//! first token, then takes each token the broker answers with and gives the next one,
//! until the exchange is complete. The caller carries the tokens (SaslAuthenticate).
//!
//! - PLAIN: one token, `NUL user NUL password`; the broker's answer completes it.
//! - SCRAM-SHA-256/512: client-first; the server-first answer gives client-final (the
//!   proof); the server-final answer must carry the server's signature, which proves
//!   that the broker holds the user's credential, and completes it.

use sasl::{Mechanism, ScramClient, ScramClientFinal, ScramError};

/// Why an exchange failed on the client's side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ExchangeError {
    /// A SCRAM message was malformed, or the broker's signature did not match.
    #[error(transparent)]
    Scram(#[from] ScramError),
    /// The broker sent a token after the exchange was complete.
    #[error("the broker went on after the exchange was complete")]
    AfterCompletion,
}

/// Where an exchange is.
#[derive(Debug)]
enum State {
    /// PLAIN's only token was sent.
    PlainSent,
    /// SCRAM client-first was sent.
    ScramFirstSent(ScramClient),
    /// SCRAM client-final was sent.
    ScramFinalSent(ScramClientFinal),
    /// Nothing more to send or check.
    Complete,
}

/// One SASL exchange, driven by [`SaslExchange::step`].
#[derive(Debug)]
pub(crate) struct SaslExchange {
    state: State,
}

impl SaslExchange {
    /// Starts an exchange for `user`: the exchange and the first token to send.
    pub(crate) fn start(
        mechanism: Mechanism,
        user: &str,
        password: &str,
    ) -> Result<(SaslExchange, Vec<u8>), ExchangeError> {
        match mechanism {
            Mechanism::Plain => {
                let token = [b"\0", user.as_bytes(), b"\0", password.as_bytes()].concat();
                Ok((SaslExchange::at(State::PlainSent), token))
            }
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                let (client, first) = ScramClient::start(mechanism, user, password.as_bytes())?;
                Ok((SaslExchange::at(State::ScramFirstSent(client)), first))
            }
        }
    }

    fn at(state: State) -> SaslExchange {
        SaslExchange { state }
    }

    /// Takes the broker's answer to the last token: the next token to send, or `None`
    /// once the exchange is complete (the caller then sends nothing more).
    pub(crate) fn step(&mut self, answer: &[u8]) -> Result<Option<Vec<u8>>, ExchangeError> {
        match std::mem::replace(&mut self.state, State::Complete) {
            State::PlainSent => Ok(None),
            State::ScramFirstSent(client) => {
                let (last, client_final) = client.respond(answer)?;
                self.state = State::ScramFinalSent(last);
                Ok(Some(client_final))
            }
            State::ScramFinalSent(last) => {
                last.verify(answer)?;
                Ok(None)
            }
            State::Complete => Err(ExchangeError::AfterCompletion),
        }
    }
}

#[cfg(test)]
mod tests {
    use sasl::{credential, new_salt, ScramCredential, ScramServer, MIN_ITERATIONS};

    use super::*;

    /// The broker's side of a SCRAM exchange, as a Kafka broker runs it: the first
    /// client token starts it, the second finishes it.
    enum Broker {
        Fresh,
        Started(ScramServer),
        Done(String),
    }

    /// Runs a whole exchange as `user` against `ScramServer` holding the credential
    /// `stored` of `holder`; the authenticated user name, or the first failure.
    fn scram(
        m: Mechanism,
        (holder, stored): (&str, &ScramCredential),
        user: &str,
        pw: &str,
    ) -> Result<String, String> {
        let (mut client, mut token) =
            SaslExchange::start(m, user, pw).map_err(|e| e.to_string())?;
        let mut broker = Broker::Fresh;
        for _ in 0..4 {
            let answer = match std::mem::replace(&mut broker, Broker::Fresh) {
                Broker::Fresh => {
                    let lookup = |u: &str| (u == holder).then(|| stored.clone());
                    let (server, first) =
                        ScramServer::start(m, &token, lookup).map_err(|e| e.to_string())?;
                    broker = Broker::Started(server);
                    first
                }
                Broker::Started(server) => {
                    let (who, last) = server.finish(&token).map_err(|e| e.to_string())?;
                    broker = Broker::Done(who);
                    last
                }
                Broker::Done(_) => return Err("the client sent a token too many".into()),
            };
            match client.step(&answer).map_err(|e| e.to_string())? {
                Some(next) => token = next,
                None => {
                    return match broker {
                        Broker::Done(who) => Ok(who),
                        _ => Err("the client stopped before the broker finished".into()),
                    };
                }
            }
        }
        Err("no end after 4 rounds".into())
    }

    #[test]
    fn scram_exchanges_authenticate_with_the_right_password_only() {
        for m in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            let stored = credential(m, b"s3cret", new_salt().unwrap(), MIN_ITERATIONS);
            let refused = Err("authentication failed: invalid user name or password".into());
            assert_eq!(
                scram(m, ("alice", &stored), "alice", "s3cret"),
                Ok("alice".into())
            );
            assert_eq!(
                scram(m, ("a,b=c", &stored), "a,b=c", "s3cret"),
                Ok("a,b=c".into())
            );
            assert_eq!(scram(m, ("alice", &stored), "bob", "s3cret"), refused);
            assert_eq!(scram(m, ("alice", &stored), "alice", "wrong"), refused);
        }
    }

    #[test]
    fn a_broker_without_the_credential_is_caught() {
        // A broker that answers the proof with a signature it did not compute: the
        // client refuses its final message.
        let m = Mechanism::ScramSha512;
        let (mut client, first) = SaslExchange::start(m, "alice", "pw").unwrap();
        let real = credential(m, b"pw", new_salt().unwrap(), MIN_ITERATIONS);
        let (server, server_first) = ScramServer::start(m, &first, |_| Some(real)).unwrap();
        let client_final = client.step(&server_first).unwrap().unwrap();
        let (_, server_final) = server.finish(&client_final).unwrap();
        // A well-formed verifier (64 zero bytes, base64) that is not the signature.
        let forged = format!("v={}==", "A".repeat(86)).into_bytes();
        assert_eq!(
            client.step(&forged),
            Err(ExchangeError::Scram(ScramError::ServerSignature))
        );
        assert!(client.step(&server_final).is_err(), "the exchange is over");
        let (mut client, _) = SaslExchange::start(m, "alice", "pw").unwrap();
        assert!(matches!(
            client.step(b"e=other-error"),
            Err(ExchangeError::Scram(ScramError::ServerError(_)))
        ));
    }

    #[test]
    fn plain_sends_one_token() {
        let (mut client, token) = SaslExchange::start(Mechanism::Plain, "alice", "pw").unwrap();
        assert_eq!(
            sasl::parse_plain(&token),
            Ok(("alice".to_string(), b"pw".to_vec()))
        );
        assert_eq!(client.step(b""), Ok(None));
        assert_eq!(client.step(b""), Err(ExchangeError::AfterCompletion));
    }
}
