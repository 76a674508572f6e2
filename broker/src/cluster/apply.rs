//! Applying the controller's committed records ([`Cluster::run`]): each goes into the
//! metadata state, then the broker reconciles the change, then waiters are woken.
//! Checkpoints let a node drop the log before them; the controller's leader proposes
//! one every `metadata.snapshot.records` records.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use log_store::Batches;
use tracing::{debug, info, warn};

use super::metadata::{Change, MetaRecord};
use super::{decode_records, Cluster};

/// Bytes of the controller log read per step when applying.
const APPLY_READ_BYTES: usize = 1 << 20;
/// How long the controller leader waits before proposing a checkpoint again (one that
/// was overtaken by other records is not valid).
const CHECKPOINT_RETRY: Duration = Duration::from_secs(2);

/// Where the applying loop stands in the controller log.
#[derive(Debug, Default)]
struct Applying {
    /// The offset of the next record to apply.
    next: u64,
    /// Records applied since the last checkpoint.
    since_checkpoint: u64,
    /// When this node last proposed a checkpoint.
    proposed_at: Option<Instant>,
    /// The log start seen at the previous pass.
    seen_start: Option<u64>,
    /// The next checkpoint was reached by jumping to the leader's log start.
    jumped: bool,
}

impl Cluster {
    /// Applies the controller's committed records, in order, forever: each goes into
    /// the state, then `reconcile` acts on the change (opens or removes replicas), then
    /// waiters are woken. A valid checkpoint lets this node drop the log before it;
    /// while leading the controller, this node proposes one whenever
    /// `metadata.snapshot.records` records were applied since the last.
    pub async fn run<F, Fut>(
        self: Arc<Self>,
        mut reconcile: F,
        mut shutdown: crate::shutdown::Shutdown,
    ) where
        F: FnMut(Change) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut view = self.controller.clone();
        let mut at = Applying::default();
        loop {
            self.skip_to_log_start(&mut at);
            let hw = view.borrow_and_update().committed_offset;
            self.apply_through(&mut at, hw, &mut reconcile).await;
            let wanted = at.since_checkpoint >= self.settings.checkpoint_records
                && self.controller_leader() == Some(self.node_id)
                && at.next > 0;
            if wanted
                && at
                    .proposed_at
                    .is_none_or(|t| t.elapsed() >= CHECKPOINT_RETRY)
            {
                at.proposed_at = Some(Instant::now());
                self.propose_checkpoint(at.next - 1).await;
            }
            tokio::select! {
                changed = view.changed() => if changed.is_err() { return },
                // A checkpoint overtaken by other records is proposed again even if
                // nothing else happens.
                _ = tokio::time::sleep(CHECKPOINT_RETRY), if wanted => {}
                _ = shutdown.wait() => return,
            }
        }
    }

    /// The log starts later than the next record when a snapshot from the leader
    /// replaced it (this node fell behind its retention) or at a restart after a
    /// checkpoint: the first record there is a checkpoint with the whole state.
    fn skip_to_log_start(&self, at: &mut Applying) {
        let start = self.controller_log_start();
        if at.next < start {
            // A start that moved while this node ran is a snapshot, not the restart.
            if at.seen_start.is_some_and(|s| s < start) {
                at.jumped = true;
                info!(
                    from = at.next,
                    checkpoint = start,
                    "controller log restarted at a checkpoint (this node fell behind)"
                );
            }
            at.next = start;
        }
        at.seen_start = Some(start);
    }

    /// Applies the committed records from `at.next` up to `hw`.
    async fn apply_through<F, Fut>(&self, at: &mut Applying, hw: u64, reconcile: &mut F)
    where
        F: FnMut(Change) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        while at.next < hw {
            let chunk = match self.read_controller(at.next, hw) {
                Ok(c) if !c.is_empty() => c,
                Ok(_) => break,
                Err(e) => {
                    warn!(offset = at.next, error = e, "reading the controller log");
                    break;
                }
            };
            for item in Batches::new(chunk) {
                let Ok((header, bytes)) = item else {
                    warn!(
                        offset = at.next,
                        "undecodable controller batch; stopping this pass"
                    );
                    break;
                };
                at.next = header.last_offset() as u64 + 1;
                for (offset, record) in decode_records(bytes) {
                    self.apply_one(at, offset, record, reconcile).await;
                }
                self.applied.send_modify(|v| *v = at.next);
            }
        }
    }

    /// Applies one record and reconciles what it changed; after the checkpoint a jump
    /// reached, the replicas nothing places here any more are pruned.
    async fn apply_one<F, Fut>(
        &self,
        at: &mut Applying,
        offset: u64,
        record: MetaRecord,
        reconcile: &mut F,
    ) where
        F: FnMut(Change) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let (change, checkpoint) = self
            .state
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .apply_at(offset, record);
        if checkpoint {
            at.since_checkpoint = 0;
            self.trim_controller_log(offset);
        } else {
            at.since_checkpoint += 1;
        }
        let prune = at.jumped && change == Change::All;
        if change != Change::None {
            reconcile(change).await;
        }
        if prune {
            at.jumped = false;
            reconcile(Change::PruneReplicas).await;
        }
    }

    async fn propose_checkpoint(&self, through: u64) {
        let state = Box::new(self.state().clone());
        debug!(through, "proposing a controller checkpoint");
        self.send(&MetaRecord::Checkpoint { through, state }).await;
    }

    fn controller_log_start(&self) -> u64 {
        self.controller_log
            .read()
            .map(|l| l.log_start_offset())
            .unwrap_or(0)
    }

    /// Drops the controller log before the checkpoint at `offset` (whole segments; the
    /// log start moves to the checkpoint, where a restart replays from).
    fn trim_controller_log(&self, offset: u64) {
        let mut log = self
            .controller_log
            .write()
            .unwrap_or_else(|p| p.into_inner());
        match log.delete_before(offset) {
            Ok(start) => debug!(log_start = start, "controller log trimmed at a checkpoint"),
            Err(e) => warn!(offset, error = %e, "trimming the controller log at a checkpoint"),
        }
    }

    fn read_controller(&self, from: u64, hw: u64) -> std::result::Result<Bytes, String> {
        let log = self
            .controller_log
            .read()
            .map_err(|_| "lock poisoned".to_string())?;
        log.read_bounded(from, APPLY_READ_BYTES, hw)
            .map_err(|e| e.to_string())
    }
}
