//! One connection's identity: where it came from, the listener it came in on, and how
//! far its SASL authentication has got.
//!
//! On a SASL listener a connection starts unauthenticated: it may send ApiVersions,
//! SaslHandshake and SaslAuthenticate, and any other request closes it, as Kafka does.
//! Once authenticated its principal is `User:<name>`; a connection of a PLAINTEXT or
//! SSL listener is `User:ANONYMOUS`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use sasl::{Mechanism, ScramServer};

/// Where a connection stands in its SASL authentication.
#[derive(Debug)]
pub enum Auth {
    /// The listener does not authenticate with SASL.
    Open,
    /// Waiting for SaslHandshake.
    Handshake,
    /// Mechanism chosen; waiting for the first SaslAuthenticate.
    Chosen(Mechanism),
    /// A SCRAM exchange waiting for the client's final message.
    Scram(ScramServer),
    /// Authenticated as this user.
    Authenticated(String),
    /// Failed or misused: the connection closes after its answer.
    Failed,
}

/// What a connection learns from the listener it came in on.
#[derive(Debug, Clone)]
pub struct ListenerId {
    pub name: Arc<str>,
    /// The SASL mechanisms it offers (empty: no SASL).
    pub mechanisms: Arc<[Mechanism]>,
    /// How a client certificate's subject becomes a principal (TLS listeners).
    pub principal_rules: Arc<crate::principal::PrincipalRules>,
}

impl ListenerId {
    /// The session of a new connection from `peer`.
    pub fn session(&self, peer: Option<SocketAddr>) -> Session {
        Session::new(peer, self.name.clone(), self.mechanisms.clone())
    }
}

/// Who is on the other end of a connection, and where it came in.
#[derive(Debug)]
pub struct Session {
    pub peer: Option<SocketAddr>,
    /// The name of the listener it connected to (Metadata answers with that
    /// listener's addresses).
    pub listener: Arc<str>,
    /// The SASL mechanisms the listener offers (empty: no SASL).
    pub mechanisms: Arc<[Mechanism]>,
    auth: Mutex<Auth>,
    /// The name a verified client certificate maps to (mutual TLS).
    certificate: Mutex<Option<String>>,
    /// Set when the connection must close once its pending answers are written.
    closing: AtomicBool,
}

impl Session {
    pub fn new(
        peer: Option<SocketAddr>,
        listener: Arc<str>,
        mechanisms: Arc<[Mechanism]>,
    ) -> Session {
        let auth = if mechanisms.is_empty() {
            Auth::Open
        } else {
            Auth::Handshake
        };
        Session {
            peer,
            listener,
            mechanisms,
            auth: Mutex::new(auth),
            certificate: Mutex::new(None),
            closing: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Auth> {
        // The state is replaced whole under the lock: a poisoned one is still whole.
        self.auth.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a request of `api` may be served now: before authentication only the
    /// SASL exchange and ApiVersions.
    pub fn may_serve(&self, api: ApiKey) -> bool {
        matches!(
            api,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        ) || matches!(*self.lock(), Auth::Open | Auth::Authenticated(_))
    }

    /// Whether the connection is past SASL authentication (or needs none).
    pub fn authenticated_or_open(&self) -> bool {
        matches!(*self.lock(), Auth::Open | Auth::Authenticated(_))
    }

    /// Takes the authentication state out (leaving [`Auth::Failed`] until it is
    /// put back with [`Session::set_auth`]).
    pub fn take_auth(&self) -> Auth {
        std::mem::replace(&mut *self.lock(), Auth::Failed)
    }

    pub fn set_auth(&self, auth: Auth) {
        *self.lock() = auth;
    }

    /// Notes the name of the client's verified certificate.
    pub fn set_certificate_name(&self, name: String) {
        *self.certificate.lock().unwrap_or_else(|p| p.into_inner()) = Some(name);
    }

    /// `User:<name>` of a SASL authentication, else of the client certificate, else
    /// `User:ANONYMOUS`.
    pub fn principal(&self) -> String {
        if let Auth::Authenticated(user) = &*self.lock() {
            return format!("User:{user}");
        }
        match &*self.certificate.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(name) => format!("User:{name}"),
            None => "User:ANONYMOUS".to_string(),
        }
    }

    /// Closes the connection once the answers already accepted are written.
    pub fn close_after_reply(&self) {
        self.closing.store(true, Ordering::Release);
    }

    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }
}

/// Failed authentications per client address: past [`FailedLogins::MAX_PER_WINDOW`]
/// in a [`FailedLogins::WINDOW`], an address's further attempts fail at once, before
/// any password is hashed, so guessing is slow and cannot take the broker's CPU.
#[derive(Debug, Default)]
pub struct FailedLogins {
    by_address: Mutex<std::collections::HashMap<IpAddr, (Instant, u32)>>,
}

impl FailedLogins {
    pub const MAX_PER_WINDOW: u32 = 20;
    pub const WINDOW: Duration = Duration::from_secs(60);
    /// Addresses remembered at most (the oldest windows are dropped beyond it).
    const MAX_ADDRESSES: usize = 100_000;

    /// Whether `ip` used up its failures of the current window.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        let map = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&ip)
            .is_some_and(|&(since, n)| since.elapsed() < Self::WINDOW && n >= Self::MAX_PER_WINDOW)
    }

    /// Counts a failure of `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let mut map = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= Self::MAX_ADDRESSES && !map.contains_key(&ip) {
            map.retain(|_, (since, _)| since.elapsed() < Self::WINDOW);
            if map.len() >= Self::MAX_ADDRESSES {
                // Full of live windows: new addresses go uncounted rather than grow it.
                return;
            }
        }
        let entry = map.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= Self::WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sasl_session_serves_only_the_exchange_until_authenticated() {
        let s = Session::new(None, "SASL".into(), vec![Mechanism::Plain].into());
        assert!(s.may_serve(ApiKey::ApiVersions) && s.may_serve(ApiKey::SaslHandshake));
        assert!(!s.may_serve(ApiKey::Metadata) && !s.may_serve(ApiKey::Produce));
        assert_eq!(s.principal(), "User:ANONYMOUS");
        s.set_auth(Auth::Authenticated("alice".into()));
        assert!(s.may_serve(ApiKey::Produce));
        assert_eq!(s.principal(), "User:alice");
        let open = Session::new(None, "PLAINTEXT".into(), Vec::new().into());
        assert!(open.may_serve(ApiKey::Produce));
        open.set_certificate_name("CN=alice".into());
        assert_eq!(open.principal(), "User:CN=alice");
    }

    #[test]
    fn an_address_is_blocked_after_its_failures() {
        let f = FailedLogins::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..FailedLogins::MAX_PER_WINDOW {
            assert!(!f.blocked(ip));
            f.failed(ip);
        }
        assert!(f.blocked(ip));
        assert!(!f.blocked([10, 0, 0, 2].into()));
    }
}
