//! An audit topic's Merkle tree on this replica (`audit.enabled`; the log keeps it):
//! heads and proofs over the committed batches only, so a head never covers a batch a
//! new leader could take back.

use log_store::merkle::Hash;
use log_store::{AuditHead, InclusionProof};

use super::{Partition, PartitionError, PartitionResult};

impl Partition {
    /// The head of the tree of this replica's committed batches.
    pub fn audit_head(&self) -> PartitionResult<AuditHead> {
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
        check_committed(self.committed_audit_size()?, second)?;
        self.with_log(|log| {
            let proof = log.audit_consistency(first, second)?;
            Ok((proof, log.audit_root(first)?, log.audit_root(second)?))
        })?
        .map_err(PartitionError::Log)
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
