//! What a handler knows about the request it answers ([`RequestContext`]).

use std::sync::{Arc, Mutex};

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;

use crate::audit_trail::{Activity, Event, Resource};
use crate::config::audit_log::EventType;
use crate::session::Session;
use crate::Broker;

/// What a handler knows about the request it answers, and the error codes it returned
/// (for metrics).
#[derive(Debug)]
pub struct RequestContext {
    pub broker: Arc<Broker>,
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<StrBytes>,
    /// The client's address (DescribeGroups shows it as the member's host).
    pub peer: Option<std::net::SocketAddr>,
    /// The connection's client and listener.
    pub session: Arc<Session>,
    errors: Mutex<Vec<i16>>,
}

impl RequestContext {
    pub fn new(
        broker: Arc<Broker>,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        client_id: Option<StrBytes>,
        session: Arc<Session>,
    ) -> RequestContext {
        RequestContext {
            broker,
            api,
            version,
            correlation_id,
            client_id,
            peer: session.peer,
            session,
            errors: Mutex::new(Vec::new()),
        }
    }

    /// Passes `code` through, noting it when it is an error.
    pub fn code(&self, code: i16) -> i16 {
        if code != 0 {
            if let Ok(mut errors) = self.errors.lock() {
                errors.push(code);
            }
        }
        code
    }

    /// The request header's client id, empty when absent.
    pub fn client_id_string(&self) -> String {
        self.client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default()
    }

    /// Who client quotas see: the principal's user name and the client id.
    pub fn quota_identity(&self) -> (String, String) {
        let principal = self.session.principal();
        let user = principal.strip_prefix("User:").unwrap_or(&principal);
        (user.to_string(), self.client_id_string())
    }

    /// An audit-trail event about this request (its principal, client and listener).
    pub fn audit_event(
        &self,
        kind: EventType,
        activity: Activity,
        resources: Vec<Resource>,
        outcome: Result<(), String>,
    ) -> Event {
        Event {
            kind,
            activity,
            time_ms: crate::internal_batch::now_ms(),
            principal: self.session.principal(),
            client: self.peer,
            service: "kafka",
            listener: Some(self.session.listener.to_string()),
            operation: format!("{:?}", self.api),
            resources,
            success: outcome.is_ok(),
            detail: outcome.err(),
            auth_protocol: None,
        }
    }

    /// The client's host as Kafka shows it (`/127.0.0.1`).
    pub fn client_host(&self) -> String {
        self.peer
            .map(|p| format!("/{}", p.ip()))
            .unwrap_or_default()
    }

    /// The error codes noted so far, emptying the list (the connection counts them).
    pub(crate) fn take_errors(&self) -> Vec<i16> {
        self.errors
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }
}
