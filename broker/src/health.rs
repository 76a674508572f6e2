//! Whether this broker can still keep its promises, and what stops it when it cannot.
//!
//! Guarantees: a long-lived task that panics or ends with an error (the Raft node task
//! after a storage error, the controller's apply loop, the group coordinator, the
//! cleaner, …) and a partition whose `fdatasync` failed are never silent: each is logged
//! at error level, counted in `strata_broker_failures_total`, turns `GET /health` into a
//! 503 naming the reasons, and asks the process to stop (fail-stop): `strata serve`
//! then shuts down in order and exits non-zero. A half-alive broker that answers some
//! requests while a dead task holds others is worse than a stopped one, which clients
//! and orchestrators route around.

use std::future::Future;
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;
use tracing::error;

/// Reasons kept for `/health` (the first ones; later failures are only counted).
pub const MAX_FAILURE_REASONS: usize = 16;

/// The broker's failures so far.
#[derive(Debug)]
pub struct Health {
    /// `strata_broker_failures_total`.
    pub failures: Counter,
    reasons: Mutex<Vec<String>>,
    /// Conditions that last while they last, by name.
    degraded: Mutex<std::collections::BTreeMap<&'static str, String>>,
    /// What start-up still waits for before the broker can keep its promises.
    starting: Mutex<Option<String>>,
    /// Becomes true at the first failure: the serving process stops.
    failed: watch::Sender<bool>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            failures: Counter::default(),
            reasons: Mutex::new(Vec::new()),
            degraded: Mutex::default(),
            starting: Mutex::default(),
            failed: watch::channel(false).0,
        }
    }
}

impl Health {
    /// Records a failure that the broker cannot recover from: logged, kept for
    /// `/health`, and the stop is requested.
    pub fn fail(&self, reason: impl Into<String>) {
        let reason = reason.into();
        error!(reason = %reason, "broker failure; stopping");
        self.failures.inc();
        let mut reasons = self.reasons.lock().unwrap_or_else(|p| p.into_inner());
        if reasons.len() < MAX_FAILURE_REASONS {
            reasons.push(reason);
        }
        drop(reasons);
        self.failed.send_replace(true);
    }

    /// Sets (`Some`) or clears (`None`) the degraded condition `name`.
    pub fn set_degraded(&self, name: &'static str, reason: Option<String>) {
        let mut degraded = self.degraded.lock().unwrap_or_else(|p| p.into_inner());
        match reason {
            Some(r) => {
                if degraded.insert(name, r.clone()).is_none() {
                    tracing::warn!(condition = name, reason = %r, "broker degraded");
                }
            }
            None => {
                if degraded.remove(name).is_some() {
                    tracing::info!(condition = name, "broker no longer degraded");
                }
            }
        }
    }

    /// Sets (`Some`) or clears (`None`) what start-up still waits for.
    pub fn set_starting(&self, waiting_for: Option<String>) {
        *self.starting.lock().unwrap_or_else(|p| p.into_inner()) = waiting_for;
    }

    /// [`Status::Ok`] while nothing failed, nothing is degraded and start-up is over;
    /// [`Status::Unhealthy`] with the failures, then the degraded conditions
    /// (`degraded: …`), one per line; else [`Status::Starting`].
    pub fn status(&self) -> Status {
        let mut lines = self
            .reasons
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let degraded = self.degraded.lock().unwrap_or_else(|p| p.into_inner());
        lines.extend(degraded.values().map(|r| format!("degraded: {r}")));
        if !lines.is_empty() {
            return Status::Unhealthy(lines.join("\n"));
        }
        match &*self.starting.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(waiting_for) => Status::Starting(waiting_for.clone()),
            None => Status::Ok,
        }
    }

    /// Resolves once a failure was recorded (at once if one already was).
    pub fn failed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.failed.subscribe();
        async move {
            // The sender lives as long as the broker; a closed channel means the broker
            // is gone, and nothing is left to stop.
            let _ = rx.wait_for(|failed| *failed).await;
        }
    }
}

/// What `GET /health` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Serving, and able to keep its promises.
    Ok,
    /// Not yet able to serve everything: what start-up still waits for.
    Starting(String),
    /// Failed or degraded: the reasons, one per line.
    Unhealthy(String),
}

/// What a supervised task gives back when it ends: nothing, or a typed error.
pub trait TaskEnd {
    /// Why the task's end is a failure, if it is one.
    fn failure(self) -> Option<String>;
}

impl TaskEnd for () {
    fn failure(self) -> Option<String> {
        None
    }
}

impl<E: std::fmt::Display> TaskEnd for Result<(), E> {
    fn failure(self) -> Option<String> {
        self.err().map(|e| e.to_string())
    }
}

/// Watches `task` (named `name`): if it panics or ends with an error, `on_failure` is
/// called with the reason (see [`Health::fail`]). A task that ends normally (shutdown)
/// is not a failure. The returned watcher ends once `task` ended and was judged.
pub fn supervise<T: TaskEnd + Send + 'static>(
    name: &'static str,
    task: tokio::task::JoinHandle<T>,
    on_failure: impl FnOnce(String) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let reason = match task.await {
            Ok(end) => end.failure().map(|e| format!("task {name} failed: {e}")),
            Err(e) if e.is_panic() => Some(format!("task {name} panicked: {}", panic_text(e))),
            // Cancelled: the runtime is shutting down.
            Err(_) => None,
        };
        if let Some(reason) = reason {
            on_failure(reason);
        }
    })
}

fn panic_text(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn explode() {
        panic!("disk on fire")
    }

    #[tokio::test]
    async fn a_panicking_or_failing_task_fails_the_broker_and_a_finished_one_does_not() {
        let health = Arc::new(Health::default());
        let watch = |h: &Arc<Health>| {
            let h = h.clone();
            move |reason: String| h.fail(reason)
        };
        supervise("quiet", tokio::spawn(async {}), watch(&health))
            .await
            .unwrap();
        let ok: Result<(), String> = Ok(());
        supervise("fine", tokio::spawn(async move { ok }), watch(&health))
            .await
            .unwrap();
        assert_eq!(health.status(), Status::Ok);

        let failed = health.failed();
        supervise("flusher", tokio::spawn(async { explode() }), watch(&health))
            .await
            .unwrap();
        failed.await;
        let err: Result<(), String> = Err("fsync: EIO".into());
        supervise("node", tokio::spawn(async move { err }), watch(&health))
            .await
            .unwrap();
        let Status::Unhealthy(reasons) = health.status() else {
            panic!("failures must make the broker unhealthy")
        };
        assert!(
            reasons.contains("task flusher panicked: disk on fire"),
            "{reasons}"
        );
        assert!(
            reasons.contains("task node failed: fsync: EIO"),
            "{reasons}"
        );
    }
}
