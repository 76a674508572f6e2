//! The producers a partition's leader knows (DescribeProducers): each idempotent or
//! transactional producer with a batch or marker in the log, and where its open
//! transaction here began. Operators use it to find what holds the last stable
//! offset back.

use super::{loaded, Mode, Partition, PartitionError, PartitionResult};
use crate::producer_state::ActiveProducer;

impl Partition {
    /// Every producer the leader tracks, with the first offset of its open transaction
    /// here (`None`: none open). Only the leader answers.
    pub fn producers(&self) -> PartitionResult<Vec<(ActiveProducer, Option<u64>)>> {
        let Mode::Hosted(h) = &self.mode else {
            return Err(PartitionError::NotLeader);
        };
        let view = *h.view.borrow();
        if !view.is_leader {
            return Err(PartitionError::NotLeader);
        }
        let state = loaded(&h.state, &h.log, view.term, &self.shared.metrics)?;
        Ok(state
            .producers
            .active()
            .into_iter()
            .map(|p| (p, state.txns.open_since(p.producer_id)))
            .collect())
    }
}
