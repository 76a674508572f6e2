//! Reading a partition's whole committed log batch by batch: how the coordinators
//! rebuild their state from their internal topics when they become its leader.

use bytes::Bytes;
use log_store::{BatchHeader, Batches, LogError};

use super::{Partition, PartitionError, PartitionResult};

/// Bytes read per step.
const REPLAY_READ_BYTES: usize = 1 << 20;

impl Partition {
    /// Calls `each` with every batch from the log start up to the high watermark, in
    /// offset order; a batch whose header does not parse ends the replay with an error.
    pub fn replay(&self, mut each: impl FnMut(&BatchHeader, Bytes)) -> PartitionResult<()> {
        let mut offset = self.offsets()?.log_start;
        loop {
            let chunk = self.read(offset, REPLAY_READ_BYTES)?;
            if chunk.is_empty() {
                return Ok(());
            }
            for item in Batches::new(chunk) {
                let (header, bytes) =
                    item.map_err(|e| PartitionError::Log(LogError::CorruptBatch(e)))?;
                offset = header.last_offset() as u64 + 1;
                each(&header, bytes);
            }
        }
    }
}
