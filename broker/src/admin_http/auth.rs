//! Who may use the admin port (`admin.api.require.auth`): HTTP Basic with a SCRAM
//! user's password (checked as SASL PLAIN is, against the user's SCRAM credential), or
//! `Authorization: Bearer` with the token of `admin.api.token.file`. `/health` never
//! needs credentials, `/metrics` not when `admin.api.public.metrics`. Changes need the
//! token or a principal of `super.users` (ALTER on the Cluster resource).
//!
//! A missing or wrong credential answers 401 with `WWW-Authenticate`; failures count
//! against the client address as SASL failures do (`FailedLogins`), and an address past
//! its limit is refused before any password is hashed. Every refusal is logged with the
//! address and counted in `strata_admin_requests_refused_total{reason}`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use subtle::ConstantTimeEq;
use tracing::{debug, warn};

use super::listener::ClientAddr;
use crate::acl;
use crate::cluster::metadata::users::password_matches;
use crate::config::admin::AdminApiSettings;
use crate::config::audit_log::EventType;
use crate::metrics::OutcomeLabels;
use crate::Broker;

/// The admin port's access rules, loaded at start.
#[derive(Debug)]
pub struct AdminAuth {
    require: bool,
    public_metrics: bool,
    token: Option<Vec<u8>>,
}

/// Who made a request (kept in its extensions for the change routes).
#[derive(Debug, Clone)]
pub(super) enum Caller {
    Anyone,
    Token,
    User(String),
}

impl Caller {
    /// The principal the audit trail names.
    pub(super) fn principal(&self) -> String {
        match self {
            Caller::Anyone => "User:ANONYMOUS".into(),
            Caller::Token => "admin-token".into(),
            Caller::User(user) => format!("User:{user}"),
        }
    }
}

/// Records an admin-port event in the audit trail.
fn record(
    state: &AuthState,
    kind: EventType,
    principal: String,
    peer: SocketAddr,
    what: String,
    outcome: Result<(), String>,
) {
    let trail = &state.broker.audit_trail;
    if trail.records(kind) {
        let event = crate::audit_trail::admin_event(kind, principal, Some(peer), what, outcome);
        trail.record(&state.broker.metrics, event);
    }
}

/// For the change routes: records each change made (and its HTTP status) in the audit
/// trail.
pub async fn record_change(
    State(state): State<AuthState>,
    ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
    request: Request,
    next: Next,
) -> Response {
    let what = format!("{} {}", request.method(), request.uri().path());
    let principal = request
        .extensions()
        .get::<Caller>()
        .map_or_else(|| Caller::Anyone.principal(), Caller::principal);
    let response = next.run(request).await;
    let status = response.status();
    let outcome = if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    };
    record(&state, EventType::Admin, principal, peer, what, outcome);
    response
}

impl AdminAuth {
    /// Reads the token file (its first line); an error names the file.
    pub fn load(settings: &AdminApiSettings) -> Result<AdminAuth, String> {
        let token = match &settings.token_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("admin.api.token.file {}: {e}", path.display()))?;
                let token = text.lines().next().unwrap_or("").trim().to_string();
                if token.len() < 16 {
                    return Err(format!(
                        "admin.api.token.file {}: the token (first line) must have at \
                         least 16 characters",
                        path.display()
                    ));
                }
                Some(token.into_bytes())
            }
        };
        Ok(AdminAuth {
            require: settings.require_auth,
            public_metrics: settings.public_metrics,
            token,
        })
    }
}

/// The state the middleware needs.
#[derive(Clone)]
pub struct AuthState {
    pub auth: Arc<AdminAuth>,
    pub broker: Arc<Broker>,
}

fn refuse(state: &AuthState, status: StatusCode, reason: &str, why: &str) -> Response {
    let labels = OutcomeLabels {
        outcome: reason.into(),
    };
    state
        .broker
        .metrics
        .admin_refused
        .get_or_create(&labels)
        .inc();
    let body = format!("{}\n", serde_json::json!({ "error": why }));
    let json = (header::CONTENT_TYPE, "application/json");
    if status == StatusCode::UNAUTHORIZED {
        let challenge = (header::WWW_AUTHENTICATE, r#"Basic realm="strata", Bearer"#);
        return (status, [json, challenge], body).into_response();
    }
    (status, [json], body).into_response()
}

/// Authenticates every request but `/health` (and `/metrics` when public).
pub async fn authenticate(
    State(state): State<AuthState>,
    ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let auth = &state.auth;
    let open = request.uri().path() == "/health"
        || (auth.public_metrics && request.uri().path() == "/metrics");
    if !auth.require || open {
        request.extensions_mut().insert(Caller::Anyone);
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let caller = match given {
        None => Err("credentials needed: HTTP Basic (a SCRAM user) or a bearer token"),
        Some(value) => check(&state, peer, &value).await,
    };
    match caller {
        Ok(caller) => {
            debug!(%peer, ?caller, path = request.uri().path(), "admin request");
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(why) => {
            warn!(%peer, path = request.uri().path(), reason = why, "admin request refused");
            let what = format!("{} {}", request.method(), request.uri().path());
            let unknown = Caller::Anyone.principal();
            record(
                &state,
                EventType::Authenticate,
                unknown,
                peer,
                what,
                Err(why.into()),
            );
            // As Kafka's `connection.failed.authentication.delay.ms`: guessing is slow.
            tokio::time::sleep(crate::handlers::FAILED_AUTHENTICATION_DELAY).await;
            refuse(&state, StatusCode::UNAUTHORIZED, "unauthenticated", why)
        }
    }
}

/// Checks an `Authorization` value: the caller, or why not.
async fn check(state: &AuthState, peer: SocketAddr, value: &str) -> Result<Caller, &'static str> {
    let failed_logins = &state.broker.failed_logins;
    if failed_logins.blocked(peer.ip()) {
        return Err("too many failed authentications from this address; retry later");
    }
    let outcome = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let ok = state
                .auth
                .token
                .as_ref()
                .is_some_and(|t| bool::from(t.as_slice().ct_eq(token.trim().as_bytes())));
            ok.then_some(Caller::Token).ok_or("invalid bearer token")
        }
        Some((scheme, encoded)) if scheme.eq_ignore_ascii_case("basic") => {
            basic(state, encoded.trim()).await
        }
        _ => Err("the Authorization header is neither Basic nor Bearer"),
    };
    if outcome.is_err() {
        failed_logins.failed(peer.ip());
    }
    outcome
}

/// HTTP Basic: the user's password against its SCRAM credential ([`password_matches`]).
async fn basic(state: &AuthState, encoded: &str) -> Result<Caller, &'static str> {
    const INVALID: &str = "invalid user name or password";
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| "the Basic credentials are not base64")?;
    let text = String::from_utf8(decoded).map_err(|_| "the Basic credentials are not UTF-8")?;
    let (user, password) = text
        .split_once(':')
        .ok_or("the Basic credentials are not user:password")?;
    let found = state.broker.cluster.state().scram.password_credential(user);
    if password_matches(found, password.as_bytes().to_vec()).await {
        Ok(Caller::User(user.to_string()))
    } else {
        Err(INVALID)
    }
}

/// Whether `user` from `peer` may change the cluster: ALTER on the Cluster by the
/// ACLs once an authorizer is configured, else being one of `super.users`.
fn user_may_alter(broker: &Broker, user: &str, peer: std::net::SocketAddr) -> bool {
    let settings = &broker.config.authorizer;
    let caller = acl::Caller {
        principal: format!("User:{user}"),
        host: peer.ip().to_canonical().to_string(),
    };
    if !settings.enabled {
        return settings.is_super(&caller.principal);
    }
    let state = broker.cluster.state();
    let decision = acl::Decision {
        settings,
        acls: &state.acls,
    };
    decision.allows(
        &caller,
        acl::Operation::Alter,
        acl::ResourceType::Cluster,
        acl::CLUSTER_NAME,
    )
}

/// For the change routes: the token, or a user with ALTER on the Cluster resource.
pub async fn may_alter_cluster(
    State(state): State<AuthState>,
    ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = match request.extensions().get::<Caller>() {
        Some(Caller::Token) => true,
        Some(Caller::Anyone) => !state.auth.require,
        Some(Caller::User(user)) => user_may_alter(&state.broker, user, peer),
        None => false,
    };
    if allowed {
        return next.run(request).await;
    }
    let why = "this change needs ALTER on the Cluster (a principal of super.users, or an \
               ACL when an authorizer is configured) or the admin token";
    let principal = request
        .extensions()
        .get::<Caller>()
        .map_or_else(|| Caller::Anyone.principal(), Caller::principal);
    let what = format!("{} {}", request.method(), request.uri().path());
    record(
        &state,
        EventType::Authorize,
        principal,
        peer,
        what,
        Err(why.into()),
    );
    warn!(
        path = request.uri().path(),
        "admin change refused: not a super user"
    );
    refuse(&state, StatusCode::FORBIDDEN, "forbidden", why)
}
