//! Write caching: a group whose appends count as persisted once they are written to the
//! log (in the page cache), before their `fdatasync`.
//!
//! With it a follower acknowledges an append as soon as it wrote it, and a leader counts
//! its own entries toward the commit as soon as it wrote them, so an entry commits once
//! a majority holds it in memory. The flush still runs, in the background: at most
//! [`FlushPolicy::flush_after`] after the first entry it has not covered, or at once
//! when [`FlushPolicy::flush_bytes`] of entries wait for it. What a process crash
//! (`kill -9`) leaves in the page cache survives it; what a power loss (or an operating
//! system crash) takes from a majority of replicas within that window is lost, even
//! though it was committed. Votes, terms, snapshots and truncations are persisted as
//! without caching (in place, before the messages that depend on them).
//!
//! The policy is shared ([`WriteCaching`] is a handle): whoever owns the topic's
//! configuration changes it at run time and the group's next Ready follows.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// When a write-caching group's background flush runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// The longest an appended entry waits for its flush (`flush.ms`).
    pub flush_after: Duration,
    /// Entry bytes waiting that start the flush at once (`flush.bytes`).
    pub flush_bytes: u64,
}

#[derive(Debug, Default)]
struct Shared {
    enabled: AtomicBool,
    flush_after_ms: AtomicU64,
    flush_bytes: AtomicU64,
}

/// A group's write-caching policy, shared with whoever changes it (off by default).
#[derive(Debug, Clone, Default)]
pub struct WriteCaching(Arc<Shared>);

impl WriteCaching {
    /// A handle with `policy` in force (`None`: off).
    pub fn new(policy: Option<FlushPolicy>) -> WriteCaching {
        let w = WriteCaching::default();
        w.set(policy);
        w
    }

    /// Turns caching on with `policy`, or off with `None`. Entries written while it was
    /// on are flushed by the group's next flush either way.
    pub fn set(&self, policy: Option<FlushPolicy>) {
        if let Some(p) = policy {
            let ms = u64::try_from(p.flush_after.as_millis()).unwrap_or(u64::MAX);
            self.0.flush_after_ms.store(ms, Ordering::Relaxed);
            self.0.flush_bytes.store(p.flush_bytes, Ordering::Relaxed);
        }
        self.0.enabled.store(policy.is_some(), Ordering::Release);
    }

    /// The policy in force, `None` when caching is off.
    pub fn get(&self) -> Option<FlushPolicy> {
        if !self.0.enabled.load(Ordering::Acquire) {
            return None;
        }
        Some(FlushPolicy {
            flush_after: Duration::from_millis(self.0.flush_after_ms.load(Ordering::Relaxed)),
            flush_bytes: self.0.flush_bytes.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_carries_changes_to_its_clones() {
        let w = WriteCaching::default();
        assert_eq!(w.get(), None);
        let seen = w.clone();
        let policy = FlushPolicy {
            flush_after: Duration::from_millis(100),
            flush_bytes: 262_144,
        };
        w.set(Some(policy));
        assert_eq!(seen.get(), Some(policy));
        w.set(None);
        assert_eq!(seen.get(), None);
        assert_eq!(WriteCaching::new(Some(policy)).get(), Some(policy));
    }
}
