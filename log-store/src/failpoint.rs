//! Named crash points on the persist paths, for crash tests.
//!
//! Each step of a persist path that a crash could interrupt calls [`check`] with the
//! step's name (`"raft.before_flush"`, `"log.reset.after_checkpoint"`, …). Normally that
//! is one relaxed atomic load and returns `Ok`. A test [`arm`]s a point on its own thread:
//! the point's next hit (after `skip` hits) returns an I/O error instead, and the caller
//! stops as if the process died there: whatever the step before it made durable is on
//! disk, nothing after it is. The test then drops the component, optionally throws away
//! what was not synced (a power loss), reopens it from its files and checks the
//! invariants.
//!
//! Points are armed per thread, so tests running in parallel in one binary do not fire
//! each other's points; a point hit on another thread (a runtime worker) never fires.
//! Every name a persist path uses is listed in [`POINTS`] (or in [`SEGMENT_POINTS`],
//! [`DELETE_POINTS`], [`SIDECAR_POINTS`], [`AUDIT_POINTS`] or, for offline work on a closed log, [`OFFLINE_POINTS`]), so a test
//! can crash at each.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Every crash point, by the step it interrupts. A point is hit just *before* its step.
pub const POINTS: &[&str] = &[
    // replication: one Ready of a Raft group (replication/src/group.rs)
    "raft.before_flush",
    "raft.before_hard_state",
    "raft.before_conf_save",
    "raft.before_commit_save",
    // replication: installing a snapshot (replication/src/storage.rs)
    "raft.snapshot.before_state",
    "raft.snapshot.before_log_reset",
    // replication: the raft.state file (replication/src/state.rs)
    "raft.state.before_rename",
    // log-store: restarting a log at a snapshot (Log::reset)
    "log.reset.before_segments",
    // log-store: rolling a segment (Log::roll), and the flush that makes it durable
    // (Log::flush, Log::complete_flush)
    "log.roll.before_create",
    "log.roll.before_checkpoint",
    // log-store: retention and DeleteRecords (Log::delete_oldest)
    "log.delete.before_segments",
];

/// Crash points of an audit log's seal (`Log::apply_durable_audit_seal`), which the
/// log-store's audit tests (`tests/audit.rs`) stop at; the replication simulation logs
/// no seals.
pub const AUDIT_POINTS: &[&str] = &["audit.seal.before_rename"];

/// Crash points inside one append or truncation of a segment, where a rebuildable
/// entry table is synced or loses its flag (`Segment::append_meta`,
/// `Segment::truncate_from_raft_index`). The log-store's crash tests
/// (`tests/rebuild.rs`) stop at each; the replication simulation does not arm them: its
/// power-loss model truncates logs itself on the thread that arms points.
pub const SEGMENT_POINTS: &[&str] = &[
    "log.meta.before_write",
    "log.meta.before_sync",
    "log.truncate.before_flag",
    "log.truncate.before_cut",
];

/// Crash points of a segment deletion's later steps (`Log::delete_oldest`, after
/// `log.delete.before_segments`): renaming a segment's files `*.deleted`, the entry table
/// last, and removing them from disk once `file.delete.delay.ms` has passed (at once
/// when it is 0, else at a later retention pass or deletion). The log-store's crash tests
/// (`tests/delete_delay.rs`) stop at each. They are not in [`POINTS`], every one of which
/// the replication simulation expects to fire: its runs never wait out the delay.
pub const DELETE_POINTS: &[&str] = &["log.delete.before_table_rename", "log.delete.before_purge"];

/// Crash points of a sidecar write (`StagedSidecar::write`, `Log::install_sidecar`).
/// Sidecars are rebuildable, so a crash at either only costs a scan; the broker's crash
/// tests (`broker/src/partition/sidecars/tests.rs`) stop at each and check the state read back.
pub const SIDECAR_POINTS: &[&str] = &["log.sidecar.before_sync", "log.sidecar.before_rename"];

/// Crash points of offline work on a closed log, which no Raft group drives (so the
/// replication simulation, which crashes at every point of [`POINTS`], never reaches
/// them); their own crash tests stop at each.
pub const OFFLINE_POINTS: &[&str] = &[
    // log-store: giving a term to a log written without one (restamp_zero_terms)
    "log.restamp.before_table",
    "log.restamp.before_checkpoint",
];

/// Threads with an armed point; zero keeps [`check`] to one load.
static ARMED_THREADS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's armed point and the hits it still lets through.
    static ARMED: RefCell<Option<(&'static str, u32)>> = const { RefCell::new(None) };
    /// Points that fired on this thread since the last [`take_fired`].
    static FIRED: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

/// Called by a persist path just before the step `point`: `Err` when a test armed it on
/// this thread and its turn came (the caller returns the error as an I/O failure).
pub fn check(point: &'static str) -> std::io::Result<()> {
    if ARMED_THREADS.load(Ordering::Relaxed) == 0 {
        return Ok(());
    }
    let fire = ARMED.with(|armed| {
        let mut armed = armed.borrow_mut();
        match armed.as_mut() {
            Some((name, skip)) if *name == point => {
                if *skip > 0 {
                    *skip -= 1;
                    false
                } else {
                    *armed = None;
                    ARMED_THREADS.fetch_sub(1, Ordering::Relaxed);
                    true
                }
            }
            _ => false,
        }
    });
    if !fire {
        return Ok(());
    }
    FIRED.with(|f| f.borrow_mut().push(point));
    Err(std::io::Error::other(format!("crash point {point}")))
}

/// Arms `point` on this thread: it fires once, at its hit after `skip` others. Replaces
/// whatever this thread had armed.
pub fn arm(point: &'static str, skip: u32) {
    ARMED.with(|armed| {
        if armed.borrow_mut().replace((point, skip)).is_none() {
            ARMED_THREADS.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// Disarms this thread's point, if it has not fired.
pub fn disarm() {
    ARMED.with(|armed| {
        if armed.borrow_mut().take().is_some() {
            ARMED_THREADS.fetch_sub(1, Ordering::Relaxed);
        }
    });
}

/// The points that fired on this thread since the last call, in order.
pub fn take_fired() -> Vec<&'static str> {
    FIRED.with(|f| std::mem::take(&mut *f.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_point_fires_once_after_its_skips_and_only_on_its_thread() {
        arm("raft.before_flush", 1);
        std::thread::spawn(|| assert!(check("raft.before_flush").is_ok()))
            .join()
            .unwrap();
        assert!(check("raft.before_hard_state").is_ok());
        assert!(check("raft.before_flush").is_ok());
        assert!(check("raft.before_flush").is_err());
        assert!(check("raft.before_flush").is_ok());
        assert_eq!(take_fired(), vec!["raft.before_flush"]);
        assert!(take_fired().is_empty());
        arm("log.reset.before_segments", 0);
        disarm();
        assert!(check("log.reset.before_segments").is_ok());
    }
}
