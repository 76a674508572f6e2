//! Finding a group's coordinator (FindCoordinator, key type 0) or a transactional id's
//! (key type 1), and keeping a connection of its own to it.
//!
//! The coordinator of a key is one broker; while it loads the key or moves, brokers
//! answer COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR,
//! and the lookup retries with backoff until its bound passes
//! ([`Error::NoCoordinator`]).

use std::time::{Duration, Instant};

use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use crate::cluster::Cluster;
use crate::connection::{Connection, Request};
use crate::error::{
    Error, KafkaCode, Result, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
    NOT_COORDINATOR,
};

/// What a coordinator is looked up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinatorKind {
    /// A consumer group (FindCoordinator key type 0).
    Group,
    /// A transactional id (key type 1).
    Transaction,
}

impl CoordinatorKind {
    fn key_type(self) -> i8 {
        match self {
            CoordinatorKind::Group => 0,
            CoordinatorKind::Transaction => 1,
        }
    }

    fn describe(self, key: &str) -> String {
        match self {
            CoordinatorKind::Group => format!("group {key:?}"),
            CoordinatorKind::Transaction => format!("transactional id {key:?}"),
        }
    }
}
/// First wait between lookups; doubles up to [`LOOKUP_BACKOFF_MAX`].
const LOOKUP_BACKOFF: Duration = Duration::from_millis(100);
const LOOKUP_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The broker coordinating a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorAddr {
    /// Its node id.
    pub node_id: i32,
    /// `host:port` as the broker advertises it.
    pub addr: String,
}

/// Whether `code` means "ask again who the coordinator is" (or wait for it to load).
pub fn is_coordinator_error(code: i16) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
    )
}

/// Asks any broker which broker coordinates `key` (a group or transactional id, by
/// `kind`), retrying while the answer is "not available yet" or the brokers are
/// unreachable, for at most `timeout`.
pub async fn find_coordinator(
    cluster: &Cluster,
    kind: CoordinatorKind,
    key: &str,
    timeout: Duration,
) -> Result<CoordinatorAddr> {
    let deadline = Instant::now() + timeout;
    let mut backoff = LOOKUP_BACKOFF;
    loop {
        let last_error = match lookup(cluster, kind, key).await {
            Ok(addr) => return Ok(addr),
            Err(e) if e.is_retriable() => e,
            Err(e) => return Err(e),
        };
        if Instant::now() + backoff >= deadline {
            return Err(Error::NoCoordinator {
                key: kind.describe(key),
                timeout,
                last_error: last_error.to_string(),
            });
        }
        debug!(key, error = %last_error, "coordinator lookup failed; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(LOOKUP_BACKOFF_MAX);
    }
}

/// One FindCoordinator exchange.
async fn lookup(cluster: &Cluster, kind: CoordinatorKind, name: &str) -> Result<CoordinatorAddr> {
    let key = StrBytes::from_string(name.to_string());
    let response = cluster
        .send_any_with(|version| {
            let request = FindCoordinatorRequest::default().with_key_type(kind.key_type());
            // v4 batches keys; earlier versions name one key.
            if version >= 4 {
                request.with_coordinator_keys(vec![key])
            } else {
                request.with_key(key)
            }
        })
        .await?;
    let context = || format!("find the coordinator of {}", kind.describe(name));
    let (code, message, node_id, host, port) = match response.coordinators.first() {
        Some(c) => (
            c.error_code,
            c.error_message.as_deref(),
            c.node_id.0,
            &c.host,
            c.port,
        ),
        None => (
            response.error_code,
            response.error_message.as_deref(),
            response.node_id.0,
            &response.host,
            response.port,
        ),
    };
    Error::check(code, context, message)?;
    if node_id < 0 || host.is_empty() || !(1..=i32::from(u16::MAX)).contains(&port) {
        // A broker that answers "no error" without a usable address: treat as not
        // available yet, so the lookup retries.
        return Err(Error::Kafka {
            context: context(),
            code: KafkaCode(COORDINATOR_NOT_AVAILABLE),
            message: Some(format!("answered node {node_id} at {host:?}:{port}")),
        });
    }
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(CoordinatorAddr { node_id, addr })
}

/// A group's (or transactional producer's) own connection to its coordinator, found
/// and opened on first use and again after [`CoordinatorLink::invalidate`] or a broken
/// connection.
#[derive(Debug)]
pub(crate) struct CoordinatorLink {
    kind: CoordinatorKind,
    group: String,
    coordinator: Option<CoordinatorAddr>,
    conn: Option<Connection>,
}

impl CoordinatorLink {
    pub(crate) fn new(kind: CoordinatorKind, key: &str) -> CoordinatorLink {
        CoordinatorLink {
            kind,
            group: key.to_string(),
            coordinator: None,
            conn: None,
        }
    }

    /// The coordinator last found, if it is still believed current.
    pub(crate) fn coordinator(&self) -> Option<&CoordinatorAddr> {
        self.coordinator.as_ref()
    }

    /// Forgets the coordinator: the next request looks it up again.
    pub(crate) fn invalidate(&mut self) {
        self.coordinator = None;
        self.conn = None;
    }

    /// A connection to the coordinator, looking it up (for at most the request timeout)
    /// and connecting as needed.
    pub(crate) async fn connection(&mut self, cluster: &Cluster) -> Result<&mut Connection> {
        if self.conn.as_ref().is_some_and(Connection::is_broken) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let coordinator = match &self.coordinator {
                Some(c) => c.clone(),
                None => {
                    let timeout = cluster.request_timeout();
                    find_coordinator(cluster, self.kind, &self.group, timeout).await?
                }
            };
            debug!(group = %self.group, coordinator = ?coordinator, "connecting to the group coordinator");
            let conn =
                match Connection::connect(&coordinator.addr, cluster.config().connection.clone())
                    .await
                {
                    Ok(conn) => conn,
                    Err(e) => {
                        self.coordinator = None;
                        return Err(e);
                    }
                };
            self.coordinator = Some(coordinator);
            self.conn = Some(conn);
        }
        match self.conn.as_mut() {
            Some(conn) => Ok(conn),
            None => Err(Error::Group {
                group: self.group.clone(),
                reason: "no coordinator connection".into(),
            }),
        }
    }

    /// Sends a version-dependent request to the coordinator within `timeout`. A broken
    /// connection is dropped (the next call reconnects); error codes are the caller's.
    pub(crate) async fn send<R: Request>(
        &mut self,
        cluster: &Cluster,
        timeout: Duration,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response> {
        let conn = self.connection(cluster).await?;
        let result = conn.send_built(build, timeout).await;
        if conn.is_broken() {
            self.conn = None;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_codes_are_recognised() {
        assert!(is_coordinator_error(COORDINATOR_NOT_AVAILABLE));
        assert!(is_coordinator_error(NOT_COORDINATOR));
        assert!(is_coordinator_error(COORDINATOR_LOAD_IN_PROGRESS));
        assert!(!is_coordinator_error(0));
        assert!(!is_coordinator_error(crate::error::REBALANCE_IN_PROGRESS));
        // The lookup's retry loop relies on these being retriable.
        for code in [
            COORDINATOR_NOT_AVAILABLE,
            NOT_COORDINATOR,
            COORDINATOR_LOAD_IN_PROGRESS,
        ] {
            assert!(KafkaCode(code).is_retriable());
        }
    }
}
