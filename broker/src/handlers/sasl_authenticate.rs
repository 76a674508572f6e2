//! SaslAuthenticate (v0–2): the tokens of the mechanism SaslHandshake chose. PLAIN is
//! one token, checked against the user's SCRAM credential (the broker keeps no
//! passwords); SCRAM takes two (client-first, client-final). A failure answers
//! SASL_AUTHENTICATION_FAILED after `FAILED_AUTHENTICATION_DELAY`, as Kafka's
//! `connection.failed.authentication.delay.ms`, and closes the connection; an address
//! with too many recent failures fails at once (`FailedLogins`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use sasl::{Mechanism, ScramServer};
use tracing::{info, warn};

use super::{message, RequestContext};
use crate::cluster::metadata::users::password_matches;
use crate::config::audit_log::EventType;
use crate::metrics::SaslLabels;
use crate::session::Auth;

/// Kafka's default `connection.failed.authentication.delay.ms`.
pub const FAILED_AUTHENTICATION_DELAY: Duration = Duration::from_millis(100);

/// What one token led to.
enum Step {
    /// More tokens to come: the state to keep and the answer.
    Continue(Auth, Bytes),
    /// Authenticated as this user, with the final answer.
    Done(String, Bytes),
    /// Refused, with the reason for the client (and the log).
    Failed(String),
}

pub async fn handle(
    ctx: Arc<RequestContext>,
    request: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let session = &ctx.session;
    if session.mechanisms.is_empty() {
        // A PLAINTEXT or SSL listener: nothing to authenticate.
        return SaslAuthenticateResponse::default()
            .with_error_code(ctx.code(ResponseError::IllegalSaslState.code()))
            .with_error_message(message("this listener does not use SASL"));
    }
    let state = session.take_auth();
    let mechanism = match &state {
        Auth::Chosen(m) => *m,
        Auth::Scram(s) => s.mechanism(),
        _ => {
            session.close_after_reply();
            return SaslAuthenticateResponse::default()
                .with_error_code(ctx.code(ResponseError::IllegalSaslState.code()))
                .with_error_message(message("SaslAuthenticate outside a SASL exchange"));
        }
    };
    let ip = session.peer.map(|p| p.ip());
    let blocked = ip.is_some_and(|ip| ctx.broker.failed_logins.blocked(ip));
    let step = if blocked {
        Step::Failed("too many failed authentications from this address; retry later".into())
    } else {
        match state {
            Auth::Chosen(Mechanism::Plain) => plain(&ctx, &request.auth_bytes).await,
            Auth::Chosen(m) => scram_first(&ctx, m, &request.auth_bytes),
            Auth::Scram(server) => scram_final(server, &request.auth_bytes),
            // `mechanism` above returned for every other state.
            _ => Step::Failed("SaslAuthenticate outside a SASL exchange".into()),
        }
    };
    answer(&ctx, mechanism, step).await
}

async fn answer(
    ctx: &RequestContext,
    mechanism: Mechanism,
    step: Step,
) -> SaslAuthenticateResponse {
    let session = &ctx.session;
    let count = |outcome: &str| {
        let labels = SaslLabels {
            listener: session.listener.to_string(),
            mechanism: mechanism.name().into(),
            outcome: outcome.into(),
        };
        ctx.broker
            .metrics
            .sasl_authentications
            .get_or_create(&labels)
            .inc();
    };
    let ok = |bytes| SaslAuthenticateResponse::default().with_auth_bytes(bytes);
    match step {
        Step::Continue(state, bytes) => {
            session.set_auth(state);
            ok(bytes)
        }
        Step::Done(user, bytes) => {
            count("ok");
            record_login(ctx, mechanism, Some(&user), Ok(()));
            info!(peer = ?session.peer, listener = %session.listener, principal = %format!("User:{user}"), mechanism = mechanism.name(), "authenticated");
            session.set_auth(Auth::Authenticated(user));
            ok(bytes)
        }
        Step::Failed(why) => {
            count("failed");
            record_login(ctx, mechanism, None, Err(why.clone()));
            warn!(peer = ?session.peer, listener = %session.listener, mechanism = mechanism.name(), reason = why, "authentication failed; closing");
            if let Some(ip) = session.peer.map(|p| p.ip()) {
                ctx.broker.failed_logins.failed(ip);
            }
            tokio::time::sleep(FAILED_AUTHENTICATION_DELAY).await;
            session.close_after_reply();
            SaslAuthenticateResponse::default()
                .with_error_code(ctx.code(ResponseError::SaslAuthenticationFailed.code()))
                .with_error_message(message(format!(
                    "Authentication failed with SASL mechanism {}: {why}",
                    mechanism.name()
                )))
        }
    }
}

const INVALID: &str = "invalid user name or password";

/// PLAIN: the password is checked against the user's SCRAM credential
/// ([`password_matches`]).
async fn plain(ctx: &RequestContext, token: &[u8]) -> Step {
    let (user, password) = match sasl::parse_plain(token) {
        Ok(parsed) => parsed,
        Err(e) => return Step::Failed(e.to_string()),
    };
    let found = ctx.broker.cluster.state().scram.password_credential(&user);
    if password_matches(found, password).await {
        Step::Done(user, Bytes::new())
    } else {
        Step::Failed(INVALID.into())
    }
}

fn scram_first(ctx: &RequestContext, m: Mechanism, token: &[u8]) -> Step {
    let lookup = |user: &str| ctx.broker.cluster.state().scram.get(user, m).cloned();
    match ScramServer::start(m, token, lookup) {
        Ok((server, first)) => Step::Continue(Auth::Scram(server), Bytes::from(first)),
        Err(e) => Step::Failed(e.to_string()),
    }
}

fn scram_final(server: ScramServer, token: &[u8]) -> Step {
    match server.finish(token) {
        Ok((user, last)) => Step::Done(user, Bytes::from(last)),
        Err(sasl::ScramError::InvalidCredentials) => Step::Failed(INVALID.into()),
        Err(e) => Step::Failed(e.to_string()),
    }
}

/// An authentication event for the audit trail: the user named on success (the
/// connection's principal before it otherwise).
fn record_login(
    ctx: &RequestContext,
    mechanism: Mechanism,
    user: Option<&str>,
    outcome: Result<(), String>,
) {
    let trail = &ctx.broker.audit_trail;
    if !trail.records(EventType::Authenticate) {
        return;
    }
    let mut event = ctx.audit_event(
        EventType::Authenticate,
        crate::audit_trail::Activity::Logon,
        Vec::new(),
        outcome,
    );
    if let Some(user) = user {
        event.principal = format!("User:{user}");
    }
    event.auth_protocol = Some(mechanism.name().to_string());
    trail.record(&ctx.broker.metrics, event);
}
