//! Which partitions of an internal topic a coordinator (groups, transactions) has
//! loaded, and in which Raft term. A coordinator serves the keys of a partition only
//! while this node leads it and has replayed it in the current term; it replays a
//! partition once its log is fully committed (so it holds every acknowledged change),
//! and drops what it loaded when the leadership moves away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::{info, warn};

use crate::partition::Partition;

/// A coordinator's keys, loaded and dropped a partition at a time.
pub trait Keys {
    /// What the keys are ("groups", "transactions") and their topic, for the logs.
    const WHAT: &'static str;
    const TOPIC: &'static str;
    /// Forgets the keys of partition `index`.
    fn unload(&self, index: i32);
    /// Replays partition `p` into the keys; how many records it read.
    fn replay(&self, p: &Partition) -> Result<u64, String>;
}

/// What to do with one partition at a coordinator's tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Nothing changed (or the new leader's log is not fully committed yet).
    Keep,
    /// This node leads in `term` and has not loaded the partition in it: replay it.
    Load { term: u64 },
    /// This node loaded the partition but no longer leads it: drop its keys.
    Drop,
}

/// Why a key's partition cannot be served here now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotServed {
    /// Another node leads the partition.
    NotLeader,
    /// This node leads it but has not loaded it in its current term.
    Loading,
}

/// The loaded partitions of one coordinator, by index, with their terms.
#[derive(Debug, Default)]
pub struct Loaded(Mutex<HashMap<i32, u64>>);

impl Loaded {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<i32, u64>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The step for `p` now.
    fn step(&self, p: &Partition) -> Step {
        let current = self.map().get(&p.index()).copied();
        match p.view() {
            Some(v) if v.is_leader => {
                let caught_up = p.offsets().is_ok_and(|o| o.high_watermark == o.log_end);
                if current == Some(v.term) || !caught_up {
                    Step::Keep
                } else {
                    Step::Load { term: v.term }
                }
            }
            _ if current.is_some() => Step::Drop,
            _ => Step::Keep,
        }
    }

    /// Takes every step of `partitions` for `keys`: loads the partitions this node
    /// has come to lead, drops those it no longer leads. A failed replay is logged and
    /// tried again at the next call.
    pub fn follow<K: Keys>(&self, keys: &K, partitions: &[Arc<Partition>]) {
        for p in partitions {
            let index = p.index();
            match self.step(p) {
                Step::Keep => {}
                Step::Load { term } => {
                    keys.unload(index);
                    let started = Instant::now();
                    match keys.replay(p) {
                        Ok(records) => {
                            info!(
                                partition = index,
                                term,
                                records,
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "now coordinating the {} of this {} partition",
                                K::WHAT,
                                K::TOPIC
                            );
                            self.map().insert(index, term);
                        }
                        Err(e) => {
                            warn!(partition = index, error = %e, "loading {} failed; will retry", K::WHAT)
                        }
                    }
                }
                Step::Drop => {
                    self.map().remove(&index);
                    keys.unload(index);
                    info!(
                        partition = index,
                        "no longer coordinating the {} of this {} partition",
                        K::WHAT,
                        K::TOPIC
                    );
                }
            }
        }
    }

    /// The term in which `p` is served here, or why it is not.
    pub fn serves(&self, p: &Partition) -> Result<u64, NotServed> {
        let view = p
            .view()
            .filter(|v| v.is_leader)
            .ok_or(NotServed::NotLeader)?;
        match self.map().get(&p.index()) {
            Some(&term) if term == view.term => Ok(term),
            _ => Err(NotServed::Loading),
        }
    }
}
