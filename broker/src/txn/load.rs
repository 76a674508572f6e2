//! Loading transactional ids from `__transaction_state` whenever this broker becomes
//! (or stops being) the leader of one of its partitions; the latest record per id
//! wins, tombstones delete. Prepared transactions found there are finished by the
//! coordinator's next tick, ongoing ones are aborted on their timeout.

use bytes::Bytes;
use log_store::BatchHeader;
use tracing::warn;

use super::records::{decode_key, TxnValue};
use super::TxnCoordinator;
use crate::leadership::Keys;
use crate::partition::Partition;
use crate::record_fields::partition_for;
use crate::topics::TXN_STATE_TOPIC;

impl TxnCoordinator {
    /// Loads the ids of each partition this node has come to lead, and drops those of
    /// partitions it no longer leads.
    pub(super) fn follow_leadership(&self) {
        self.loaded.follow(self, &self.partitions());
    }

    /// Drops the ids of partition `index`. An id whose markers are being written keeps
    /// its task, which fails to complete it once this broker no longer leads.
    fn unload_partition(&self, index: i32) {
        let n = self.partitions().len() as i32;
        self.txns().retain(|id, _| partition_for(id, n) != index);
    }

    /// Replays one partition into the id map; the records read.
    fn replay_partition(&self, p: &Partition) -> Result<u64, crate::partition::PartitionError> {
        let mut found: std::collections::HashMap<String, Option<TxnValue>> = Default::default();
        let mut records = 0;
        p.replay(|header, bytes| records += replay_batch(header, bytes, p.index(), &mut found))?;
        let mut txns = self.txns();
        for (id, value) in found {
            if let Some(v) = value {
                txns.entry(id).or_default().set(Some(v));
            }
        }
        Ok(records)
    }
}

fn replay_batch(
    header: &BatchHeader,
    bytes: Bytes,
    index: i32,
    found: &mut std::collections::HashMap<String, Option<TxnValue>>,
) -> u64 {
    if header.is_control() {
        return 0;
    }
    let records = match crate::internal_batch::decode(bytes) {
        Ok(r) => r,
        Err(e) => {
            warn!(partition = index, offset = header.base_offset, error = %e, "undecodable {TXN_STATE_TOPIC} batch skipped");
            return 0;
        }
    };
    let read = records.len() as u64;
    for (key, value, offset) in records {
        let Some(key) = key else { continue };
        let decoded =
            decode_key(key).and_then(|id| value.map(TxnValue::decode).transpose().map(|v| (id, v)));
        match decoded {
            Ok((id, v)) => {
                found.insert(id, v);
            }
            Err(e) => {
                warn!(partition = index, offset, error = %e, "skipping a {TXN_STATE_TOPIC} record")
            }
        }
    }
    read
}

impl Keys for TxnCoordinator {
    const WHAT: &'static str = "transactions";
    const TOPIC: &'static str = TXN_STATE_TOPIC;

    fn unload(&self, index: i32) {
        self.unload_partition(index);
    }

    fn replay(&self, p: &Partition) -> Result<u64, String> {
        self.replay_partition(p).map_err(|e| e.to_string())
    }
}
