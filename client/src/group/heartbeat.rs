//! The heartbeat task: keeps a member's session alive while the application processes
//! records, on a connection of its own to the coordinator, one Heartbeat every
//! `heartbeat.interval.ms`.
//!
//! It does not change the member itself: it reports what the coordinator answered (or
//! that the session is probably lost) through a watch channel, and the consumer acts on
//! it at its next poll. It keeps heartbeating after reporting REBALANCE_IN_PROGRESS (so
//! the session survives until the consumer rejoins) and stops after anything else that
//! ends the membership. It stops when its [`Heartbeat`] handle is dropped.

use std::time::{Duration, Instant};

use kafka_protocol::messages::{GroupId, HeartbeatRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info_span, Instrument};

use crate::connection::{Connection, ConnectionConfig};
use crate::error::REBALANCE_IN_PROGRESS;
use crate::group::coordinator::CoordinatorAddr;

/// What the heartbeat task has to tell the consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Nothing new.
    Healthy,
    /// The coordinator answered this error code.
    Code(i16),
    /// No heartbeat got through for a whole session timeout: the coordinator has
    /// probably expired the member.
    SessionLost,
}

/// Who heartbeats, and how often.
#[derive(Debug, Clone)]
pub struct HeartbeatSpec {
    /// The group id.
    pub group: String,
    /// The generation joined.
    pub generation: i32,
    /// The member id.
    pub member_id: String,
    /// The static member's `group.instance.id`.
    pub instance_id: Option<String>,
    /// Time between heartbeats.
    pub interval: Duration,
    /// The session timeout the member joined with.
    pub session_timeout: Duration,
}

/// A running heartbeat task; dropping it stops the task.
#[derive(Debug)]
pub struct Heartbeat {
    task: JoinHandle<()>,
    signal: watch::Receiver<Signal>,
}

impl Heartbeat {
    /// Starts heartbeating to `coordinator`; the first heartbeat goes one interval
    /// from now.
    pub fn start(
        coordinator: CoordinatorAddr,
        connection: ConnectionConfig,
        spec: HeartbeatSpec,
    ) -> Heartbeat {
        let (tx, signal) = watch::channel(Signal::Healthy);
        let span = info_span!("heartbeat", group = %spec.group, member = %spec.member_id, generation = spec.generation);
        let task = tokio::spawn(run(coordinator, connection, spec, tx).instrument(span));
        Heartbeat { task, signal }
    }

    /// The latest signal (not consumed: it stays until the task reports another).
    pub fn signal(&self) -> Signal {
        *self.signal.borrow()
    }

    /// Waits until the task reports something new (or has stopped).
    pub async fn changed(&mut self) {
        if self.signal.changed().await.is_err() {
            // The task ended; never wake again for it.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    coordinator: CoordinatorAddr,
    config: ConnectionConfig,
    spec: HeartbeatSpec,
    tx: watch::Sender<Signal>,
) {
    let mut conn: Option<Connection> = None;
    let mut last_ok = Instant::now();
    // A heartbeat that takes longer than the session is useless.
    let timeout = config.request_timeout.min(spec.session_timeout);
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + spec.interval, spec.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let result = async {
            let c = match conn.take() {
                Some(c) if !c.is_broken() => conn.insert(c),
                _ => conn.insert(Connection::connect(&coordinator.addr, config.clone()).await?),
            };
            c.send_built(|version| request(&spec, version), timeout)
                .await
        }
        .await;
        match result {
            Ok(response) if response.error_code == 0 => last_ok = Instant::now(),
            Ok(response) => {
                debug!(
                    code = response.error_code,
                    "heartbeat answered with an error"
                );
                let _ = tx.send(Signal::Code(response.error_code));
                if response.error_code == REBALANCE_IN_PROGRESS {
                    // Still a member until the consumer rejoins: keep the session.
                    last_ok = Instant::now();
                    continue;
                }
                return;
            }
            Err(e) => {
                debug!(error = %e, "heartbeat failed");
                conn = None;
                if last_ok.elapsed() >= spec.session_timeout {
                    let _ = tx.send(Signal::SessionLost);
                    return;
                }
            }
        }
    }
}

fn request(spec: &HeartbeatSpec, version: i16) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(spec.group.clone())))
        .with_generation_id(spec.generation)
        .with_member_id(StrBytes::from_string(spec.member_id.clone()))
        // v3+ carries the static member's id.
        .with_group_instance_id(
            spec.instance_id
                .clone()
                .filter(|_| version >= 3)
                .map(StrBytes::from_string),
        )
}
