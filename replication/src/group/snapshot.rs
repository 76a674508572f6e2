//! Snapshots on the receiving side: the one raft-rs accepted in a Ready, the one that
//! names other replicas (installed here, after raft-rs's own checks), and the virtual
//! snapshot a new group's log starts from.

use raft::eraftpb::Message;
use raft::RawNode;

use super::{raft_err, Group, ReadyOutput, BOOTSTRAP_INDEX, BOOTSTRAP_TERM};
use crate::error::Result;
use crate::storage::LogStorage;

impl Group {
    /// raft-rs refuses a snapshot whose configuration does not name this replica. That
    /// is the normal case for a replica just added to a group whose log start is older
    /// than its addition: the configuration at the leader's log start predates it, and
    /// the entry adding it follows as an ordinary append. Such a snapshot is installed
    /// directly and the Raft node restarted over the installed state; the message is then
    /// stepped as usual, and raft-rs answers the leader that this replica has everything
    /// up to the snapshot.
    ///
    /// Only a snapshot raft-rs itself would not ignore for other reasons is installed:
    /// from a leader of this replica's term or a newer one (a deposed leader's delayed
    /// snapshot is ignored, as raft-rs ignores any message of an older term), past this
    /// replica's commit index, and not matching an entry this replica already holds (a
    /// duplicate delivered after the entries that followed it must not wipe them).
    pub(super) fn install_snapshot_naming_others(&mut self, message: &Message) -> Result<()> {
        let snap = message.get_snapshot();
        let meta = snap.get_metadata();
        let cs = meta.get_conf_state();
        let named = cs
            .voters
            .iter()
            .chain(&cs.learners)
            .chain(&cs.voters_outgoing)
            .any(|&n| n == self.id);
        let raft = &self.node.raft;
        if named
            || snap.data.is_empty()
            || message.term < raft.term
            || meta.index <= raft.raft_log.committed
            || raft.raft_log.match_term(meta.index, meta.term)
        {
            return Ok(());
        }
        let data = self.storage.apply_snapshot(snap)?;
        let mut config = self.config.clone();
        config.applied = meta.index;
        self.node = RawNode::new(&config, self.storage.clone(), &self.logger)
            .map_err(|e| raft_err("restart after a snapshot", e))?;
        self.applied = meta.index;
        self.committed_offset = data.next_offset;
        self.snapshots_installed += 1;
        tracing::info!(
            group = self.id,
            index = meta.index,
            next_offset = data.next_offset,
            "installed a snapshot that predates this replica's membership"
        );
        Ok(())
    }

    /// Installs the snapshot of a Ready (raft-rs accepted it: this replica fell behind
    /// the leader's retention): the log restarts where the leader's retained entries
    /// begin, and they follow as ordinary appends.
    pub(super) fn install_ready_snapshot(
        &mut self,
        snap: &raft::eraftpb::Snapshot,
        out: &mut ReadyOutput,
    ) -> Result<()> {
        let data = self.storage.apply_snapshot(snap)?;
        self.applied = snap.get_metadata().index;
        self.committed_offset = data.next_offset;
        self.snapshots_installed += 1;
        out.snapshot = Some(self.applied);
        tracing::info!(
            group = self.id,
            index = self.applied,
            next_offset = data.next_offset,
            "installed a snapshot from the leader"
        );
        Ok(())
    }
}

/// Starts a new group's replica: its empty log restarts after [`BOOTSTRAP_INDEX`], whose
/// (virtual) snapshot holds `voters`.
pub(super) fn bootstrap(storage: &LogStorage, voters: &[u64]) -> Result<()> {
    let conf = raft::eraftpb::ConfState {
        voters: voters.to_vec(),
        ..Default::default()
    };
    {
        let log = storage.log().read().unwrap_or_else(|p| p.into_inner());
        let empty = log.last_raft_index() <= BOOTSTRAP_INDEX && log.next_offset() == 0;
        drop(log);
        if !empty {
            // A log written before bootstrapping existed (or by the single-node broker):
            // keep it; the configuration applies from the start.
            return storage.set_conf_state(0, conf);
        }
    }
    let mut snap = raft::eraftpb::Snapshot {
        data: crate::storage::SnapshotData {
            next_offset: 0,
            log_start_offset: 0,
        }
        .encode()
        .into(),
        ..Default::default()
    };
    let meta = snap.mut_metadata();
    meta.index = BOOTSTRAP_INDEX;
    meta.term = BOOTSTRAP_TERM;
    meta.set_conf_state(conf);
    // Sets the term to BOOTSTRAP_TERM and the commit to BOOTSTRAP_INDEX with it.
    storage.apply_snapshot(&snap).map(|_| ())
}
