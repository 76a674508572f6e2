//! What the coordinator tells about its transactional ids: the states behind
//! ListTransactions and DescribeTransactions.

use super::records::TxnValue;
use super::{TxnCoordinator, TxnError};
use crate::leadership::NotServed;

impl TxnCoordinator {
    /// Every id coordinated here, with its state. While a partition this broker leads
    /// is still being loaded the list would be incomplete: LoadInProgress then.
    pub fn list(&self) -> Result<Vec<(String, TxnValue)>, TxnError> {
        let loading = self
            .partitions()
            .iter()
            .any(|p| self.loaded.serves(p) == Err(NotServed::Loading));
        if loading {
            return Err(TxnError::LoadInProgress);
        }
        let mut ids: Vec<(String, TxnValue)> = self
            .snapshot()
            .into_iter()
            .filter(|(id, _)| self.serves(id).is_ok())
            .collect();
        ids.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(ids)
    }

    /// The state of `id` when this broker coordinates it (`None`: no such id).
    pub fn describe(&self, id: &str) -> Result<Option<TxnValue>, TxnError> {
        self.serves(id)?;
        Ok(self.txns().get(id).and_then(|e| e.get()))
    }
}
