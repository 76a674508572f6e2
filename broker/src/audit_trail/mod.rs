//! The broker's own audit trail: one structured event per security-relevant action
//! (authentications, authorization denials, changes through the Kafka API and through
//! the admin port), written to the internal audit topic `__strata_audit_log`, itself an
//! audit topic (append-only, with its Merkle tree and signed heads).
//!
//! Recording never blocks the request path: an event goes into a bounded buffer
//! (`audit.log.buffer.events`) that one task drains into batches; when the buffer is
//! full the event is dropped and counted (`strata_audit_log_events_total{outcome=
//! "dropped"}`), as are events that could not be written (`failed`). Which kinds are
//! recorded is `audit.log.event.types`; nothing is, unless `audit.log.enabled`.

mod event;
mod management;
mod writer;

use std::sync::Mutex;

use tokio::sync::mpsc;

pub use event::{Activity, Event, Resource};
pub use management::{management_event, outcome_of, Pending};
pub use writer::{answer_events_call, append_here, run, AUDIT_LOG_TOPIC};

use crate::config::audit_log::{AuditLogConfig, EventType};
use crate::metrics::{Metrics, OutcomeLabels};

/// The trail's buffer and settings.
#[derive(Debug)]
pub struct AuditTrail {
    config: AuditLogConfig,
    sender: mpsc::Sender<Event>,
    /// Taken by the writer task when it starts.
    receiver: Mutex<Option<mpsc::Receiver<Event>>>,
}

impl AuditTrail {
    pub fn new(config: AuditLogConfig) -> AuditTrail {
        let (sender, receiver) = mpsc::channel(config.buffer_events.max(1));
        AuditTrail {
            config,
            sender,
            receiver: Mutex::new(Some(receiver)),
        }
    }

    /// Whether events of `kind` are recorded.
    pub fn records(&self, kind: EventType) -> bool {
        self.config.records(kind)
    }

    /// Hands `event` to the writer without waiting; counts it dropped when the buffer
    /// is full (or the writer stopped).
    pub fn record(&self, metrics: &Metrics, event: Event) {
        if !self.records(event.kind) {
            return;
        }
        if self.sender.try_send(event).is_err() {
            count(metrics, "dropped", 1);
        }
    }

    /// The buffer's other end, for the writer (once).
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<Event>> {
        self.receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The settings.
    pub fn config(&self) -> &AuditLogConfig {
        &self.config
    }
}

/// Adds `n` to `strata_audit_log_events_total{outcome}`.
pub(crate) fn count(metrics: &Metrics, outcome: &str, n: u64) {
    metrics
        .audit_log_events
        .get_or_create(&OutcomeLabels {
            outcome: outcome.into(),
        })
        .inc_by(n);
}

use crate::internal_batch::now_ms;

/// An event about an admin-port request.
pub fn admin_event(
    kind: EventType,
    principal: String,
    client: Option<std::net::SocketAddr>,
    operation: String,
    outcome: Result<(), String>,
) -> Event {
    Event {
        kind,
        activity: if kind == EventType::Authenticate {
            Activity::Logon
        } else {
            Activity::Other
        },
        time_ms: now_ms(),
        principal,
        client,
        service: "admin",
        listener: None,
        operation,
        resources: Vec::new(),
        success: outcome.is_ok(),
        detail: outcome.err(),
        auth_protocol: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventType) -> Event {
        admin_event(kind, "User:op".into(), None, "POST /x".into(), Ok(()))
    }

    #[test]
    fn a_full_buffer_drops_and_counts_without_waiting() {
        let metrics = Metrics::default();
        let config = AuditLogConfig {
            enabled: true,
            event_types: vec![EventType::Admin],
            buffer_events: 2,
            ..AuditLogConfig::default()
        };
        let trail = AuditTrail::new(config);
        for _ in 0..5 {
            trail.record(&metrics, event(EventType::Admin));
        }
        // A kind not recorded is neither kept nor dropped.
        trail.record(&metrics, event(EventType::Authenticate));
        let dropped = metrics
            .audit_log_events
            .get_or_create(&OutcomeLabels {
                outcome: "dropped".into(),
            })
            .get();
        assert_eq!(dropped, 3);
        let mut kept = trail.take_receiver().expect("the writer's end");
        assert!(trail.take_receiver().is_none(), "taken once");
        let mut n = 0;
        while let Ok(e) = kept.try_recv() {
            assert_eq!(e.kind, EventType::Admin);
            n += 1;
        }
        assert_eq!(n, 2);
    }

    #[test]
    fn nothing_is_recorded_unless_enabled() {
        let trail = AuditTrail::new(AuditLogConfig::default());
        assert!(!trail.records(EventType::Management));
        let config = AuditLogConfig {
            enabled: true,
            ..AuditLogConfig::default()
        };
        assert!(EventType::ALL
            .iter()
            .all(|&k| AuditTrail::new(config.clone()).records(k)));
    }
}
