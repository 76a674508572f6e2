//! An audit topic's Merkle tree on this replica (`audit.enabled`; the log keeps it):
//! heads and proofs over the committed batches only, so a head never covers a batch a
//! new leader could take back; the heads the leader logs through Raft; and whether this
//! replica's tree disagrees with one of them (then it serves nothing: `check_leader`).

use std::sync::atomic::Ordering;

use log_store::log::AuditSeal;
use log_store::merkle::{Hash, LoggedHead};
use log_store::{AuditDivergence, AuditHead, HeadMark, InclusionProof, LogError};
use replication::group::AuditEntry;

use super::{proposed, Mode, Partition, PartitionError, PartitionResult};

impl Partition {
    /// The head of the tree of this replica's committed batches.
    pub fn audit_head(&self) -> PartitionResult<AuditHead> {
        self.check_tree_agrees()?;
        let hw = self.high_watermark();
        self.with_log(|log| log.audit_head(hw))?
            .map_err(PartitionError::Log)
    }

    /// The inclusion proof of the batch holding `offset` in the tree of `tree_size`
    /// leaves (`None`: the committed head's), with that tree's root.
    pub fn audit_inclusion(
        &self,
        offset: u64,
        tree_size: Option<u64>,
    ) -> PartitionResult<(InclusionProof, Hash)> {
        self.check_tree_agrees()?;
        let committed = self.committed_audit_size()?;
        let size = tree_size.unwrap_or(committed);
        check_committed(committed, size)?;
        self.with_log(|log| {
            let proof = log.audit_inclusion(offset, size)?;
            Ok((proof, log.audit_root(size)?))
        })?
        .map_err(PartitionError::Log)
    }

    /// The consistency proof between the trees of `first` and `second` leaves, with
    /// their roots.
    pub fn audit_consistency(
        &self,
        first: u64,
        second: u64,
    ) -> PartitionResult<(Vec<Hash>, Hash, Hash)> {
        self.check_tree_agrees()?;
        check_committed(self.committed_audit_size()?, second)?;
        self.with_log(|log| {
            let proof = log.audit_consistency(first, second)?;
            Ok((proof, log.audit_root(first)?, log.audit_root(second)?))
        })?
        .map_err(PartitionError::Log)
    }

    /// The committed head when it is larger than the last head logged (`None`: nothing
    /// new to log), with the last logged head.
    pub fn audit_head_to_log(&self) -> PartitionResult<(Option<AuditHead>, Option<HeadMark>)> {
        let hw = self.high_watermark();
        self.with_log(|log| {
            let last = log.audit_heads().last().copied();
            let head = log.audit_head(hw)?;
            let grew = head.size > last.map_or(0, |m| m.tree_size);
            Ok((grew.then_some(head), last))
        })?
        .map_err(PartitionError::Log)
    }

    /// Logs `head` (this partition's, as signed) through Raft, on the leader; resolves
    /// once the entry committed, every replica having checked it as it appended it.
    pub async fn log_audit_head(&self, head: &LoggedHead) -> PartitionResult<()> {
        let Mode::Hosted(h) = &self.mode else {
            return Err(PartitionError::NotLeader);
        };
        self.check_leader()?;
        proposed(
            h.node
                .log_audit_entry(h.group, AuditEntry::Head(head.encode())),
        )
        .await?;
        Ok(())
    }

    /// Seals the first `tree_size` committed leaves, whose root the exporter computed
    /// as `root` from the batches it archived (so it holds what this tree does), by
    /// logging the seal through Raft on the leader; resolves once the entry committed.
    /// From then on the segments before the seal's `next_offset` may be removed
    /// (`log_store::log::AuditSeal`). Returns the seal with the frontier of its leaves.
    pub async fn seal_audit(
        &self,
        tree_size: u64,
        root: Hash,
    ) -> PartitionResult<(AuditSeal, Vec<Hash>)> {
        let Mode::Hosted(h) = &self.mode else {
            return Err(PartitionError::NotLeader);
        };
        self.check_leader()?;
        self.check_tree_agrees()?;
        check_committed(self.committed_audit_size()?, tree_size)?;
        let (seal, frontier) = self
            .with_log(|log| {
                Ok((
                    log.audit_seal_for(tree_size)?,
                    log.audit_frontier(tree_size)?,
                ))
            })?
            .map_err(PartitionError::Log)?;
        if seal.root != root {
            let why = format!(
                "the root given for {tree_size} leaves is not this tree's ({}): the export does not hold these batches",
                log_store::merkle::to_hex(&seal.root)
            );
            return Err(PartitionError::Log(LogError::AuditRange(why)));
        }
        proposed(
            h.node
                .log_audit_entry(h.group, AuditEntry::Seal(seal.encode())),
        )
        .await?;
        Ok((seal, frontier))
    }

    /// The seal in force on this replica (`None`: none yet) with the frontier of its
    /// leaves.
    pub fn audit_seal(&self) -> PartitionResult<Option<(AuditSeal, Vec<Hash>)>> {
        self.check_tree_agrees()?;
        self.with_log(|log| {
            let Some(seal) = log.audit_seal() else {
                return Ok(None);
            };
            Ok(Some((seal, log.audit_frontier(seal.tree_size)?)))
        })?
        .map_err(PartitionError::Log)
    }

    /// Leaves this replica's seal covers (0 without one).
    pub fn audit_sealed_size(&self) -> u64 {
        self.with_log(|log| log.audit_seal().map_or(0, |s| s.tree_size))
            .unwrap_or(0)
    }

    /// The offset before which this replica's audit log may lose records (its seal's;
    /// 0 without one).
    pub fn audit_sealed_offset(&self) -> u64 {
        self.with_log(|log| log.audit_sealed_offset()).unwrap_or(0)
    }

    /// The committed logged heads after Raft index `after`, oldest first, at most
    /// `limit`, with their Raft indexes.
    pub fn logged_heads(
        &self,
        after: u64,
        limit: usize,
    ) -> PartitionResult<Vec<(u64, LoggedHead)>> {
        self.check_tree_agrees()?;
        let committed = self.view().map_or(0, |v| v.committed_index);
        self.with_log(|log| {
            log.audit_heads()
                .iter()
                .filter(|m| m.raft_index > after && m.raft_index <= committed)
                .take(limit)
                .map(|m| Ok((m.raft_index, log.logged_head(m.raft_index)?)))
                .collect::<log_store::Result<Vec<_>>>()
        })?
        .map_err(PartitionError::Log)
    }

    /// The last committed logged head.
    pub fn last_logged_head(&self) -> Option<HeadMark> {
        let committed = self.view().map_or(0, |v| v.committed_index);
        self.with_log(|log| {
            let heads = log.audit_heads();
            heads
                .iter()
                .rev()
                .find(|m| m.raft_index <= committed)
                .copied()
        })
        .ok()
        .flatten()
    }

    /// The first logged head this replica's tree disagrees with (the log's finding; who
    /// is wrong is for the broker's poll of the other replicas to say).
    pub fn audit_disagreement(&self) -> Option<AuditDivergence> {
        self.with_log(|log| log.audit_divergence()).ok().flatten()
    }

    /// Takes the replica out of service (its tree is not the group's), or back in.
    pub fn set_tree_diverged(&self, diverged: bool) {
        if let Mode::Hosted(h) = &self.mode {
            h.diverged.store(diverged, Ordering::Release);
        }
    }

    /// Whether the replica is out of service because its tree diverged.
    pub fn tree_diverged(&self) -> bool {
        matches!(&self.mode, Mode::Hosted(h) if h.diverged.load(Ordering::Acquire))
    }

    /// Whether this replica keeps the partition's audit tree (its log starts at 0).
    pub fn keeps_audit_tree(&self) -> bool {
        self.with_log(|log| log.audit_size(0).is_ok())
            .unwrap_or(false)
    }

    /// This replica's root of the tree of the first `size` leaves, committed or not
    /// (`None`: no tree here, or fewer leaves).
    pub fn audit_root(&self, size: u64) -> Option<Hash> {
        self.with_log(|log| log.audit_root(size).ok())
            .ok()
            .flatten()
    }

    /// Refuses when this replica's tree disagrees with a logged head.
    pub(super) fn check_tree_agrees(&self) -> PartitionResult<()> {
        match &self.mode {
            Mode::Hosted(h) if h.diverged.load(Ordering::Acquire) => {
                Err(PartitionError::AuditDiverged)
            }
            _ => Ok(()),
        }
    }

    /// Leaves of the tree of this replica's committed batches.
    fn committed_audit_size(&self) -> PartitionResult<u64> {
        let hw = self.high_watermark();
        self.with_log(|log| log.audit_size(hw))?
            .map_err(PartitionError::Log)
    }
}

/// Refuses a tree size past the committed head's.
fn check_committed(committed: u64, size: u64) -> PartitionResult<()> {
    if size > committed {
        let why = format!("tree size {size} is past the committed head's {committed}");
        return Err(PartitionError::Log(log_store::LogError::AuditRange(why)));
    }
    Ok(())
}
