//! Starting and finishing a group's flush on the node task.
//!
//! A group's deferred Readies wait for one flush at a time, run on the blocking pool.
//! A **lone voter** (a leader with no other replica: its own flush alone commits) holds
//! the flush for up to [`LAZY_FLUSH_DELAY`] while nobody waits for the commit, so a
//! stream of acks=1 appends shares one `fdatasync` per interval instead of paying one
//! per turn. The flush starts at once when an [`Ack::Quorum`] proposal or a membership
//! change waits on the group, or someone asked for it ([`NodeHandle::hurry`], e.g. a
//! Fetch long poll at the log end). Groups with other replicas flush at once: their
//! followers' acknowledgements, not a timer, decide when entries commit.
//!
//! A group with **write caching** (see [`WriteCaching`]) commits without its flush, so
//! nothing waits for it: it is held up to the policy's `flush_after` from the first
//! entry it covers, or starts once `flush_bytes` of entries wait.
//!
//! [`WriteCaching`]: crate::group::WriteCaching
//!
//! [`NodeHandle::hurry`]: super::NodeHandle::hurry

use tokio::time::Instant;

use super::{Ack, Flushed, Node, LAZY_FLUSH_DELAY};
use crate::error::ReplicationError;
use crate::group::Group;

/// Resolves at `at`, or never when no flush is held.
pub(super) async fn due(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Node {
    /// Touches every group whose held flush is due, so the turn starts it.
    pub(super) fn due_flushes(&mut self, touched: &mut Vec<u64>) {
        let now = Instant::now();
        touched.extend(
            self.lazy
                .iter()
                .filter(|(_, &at)| at <= now)
                .map(|(&group, _)| group),
        );
    }

    /// Whether a proposal that must not wait out [`LAZY_FLUSH_DELAY`] waits on `group`.
    fn awaited(&self, group: u64) -> bool {
        self.waiting
            .get(&group)
            .is_some_and(|w| w.iter().any(|(_, ack, _)| *ack == Ack::Quorum))
    }

    /// Starts the flush `group`'s deferred Readies wait for, unless one runs already
    /// (its end starts the next) or a lone voter may hold it a little longer.
    pub(super) fn start_flush(&mut self, group: u64) {
        if self.flushing.contains_key(&group) {
            return;
        }
        let Some(g) = self.groups.get(&group) else {
            return;
        };
        let Some(job) = g.flush_job() else {
            // Nothing to flush: a request to hurry has been served.
            self.hurried.remove(&group);
            return;
        };
        let hold = match g.write_cached() {
            // Nothing waits for this flush but the policy: hold it up to its delay
            // from the first entry it covers, unless enough bytes wait.
            (Some(policy), bytes) if bytes < policy.flush_bytes => Some(policy.flush_after),
            (Some(_), _) => None,
            (None, _)
                if Group::is_lone_voter(g)
                    && !self.hurried.contains(&group)
                    && !self.awaited(group) =>
            {
                Some(LAZY_FLUSH_DELAY)
            }
            (None, _) => None,
        };
        if let Some(delay) = hold {
            let now = Instant::now();
            let at = *self.lazy.entry(group).or_insert(now + delay);
            if now < at {
                return;
            }
        }
        self.lazy.remove(&group);
        self.hurried.remove(&group);
        self.flush_tokens += 1;
        let token = self.flush_tokens;
        self.flushing.insert(group, token);
        let done = self.flushed_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = job.run();
            // The node stopped if nobody listens: nothing is waiting for the answer.
            let _ = done.send(Flushed {
                group,
                token,
                job,
                result,
            });
        });
    }

    /// A flush ended: the group learns what is durable and sends what waited for it. A
    /// failed flush ends the node (see [`start`](super::start)).
    pub(super) fn flushed(
        &mut self,
        f: Flushed,
        touched: &mut Vec<u64>,
    ) -> Result<(), ReplicationError> {
        if self.flushing.get(&f.group) != Some(&f.token) {
            return Ok(());
        }
        self.flushing.remove(&f.group);
        if let Err(e) = f.result {
            tracing::error!(group = f.group, error = %e, "a Raft group failed to flush; stopping the node");
            return Err(e);
        }
        if let Some(g) = self.groups.get_mut(&f.group) {
            for m in g.flushed(&f.job) {
                super::send(&self.transport, f.group, m);
            }
            touched.push(f.group);
        }
        Ok(())
    }
}
