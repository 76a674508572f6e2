//! Producer-id allocation for InitProducerId. Ids are never reused across restarts: the
//! broker reserves them in blocks and makes the end of the current block durable in
//! `producer_ids` (checksummed, [`crate::checked_file`]) before handing out any id from
//! it. A crash wastes the rest of a block.
//!
//! This is the single node's allocator. In a cluster the controller grants each broker
//! blocks of ids (`Cluster::allocate_producer_id`, Kafka's AllocateProducerIds), so two
//! brokers never hand out the same id: an id shared by two producers would make one's
//! sequences look out of order to the other.

use std::path::{Path, PathBuf};

use crate::checked_file::{self, Read};
use crate::error::{BrokerError, Result};

/// Ids reserved per durable write.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
const FILE_NAME: &str = "producer_ids";

/// Hands out unique producer ids. Not synchronized; the broker holds it under a lock.
#[derive(Debug)]
pub struct ProducerIds {
    path: PathBuf,
    next: i64,
    block_end: i64,
}

impl ProducerIds {
    /// Loads the reservation from `data_dir`; ids start after the last reserved block.
    /// A directory made this start (`fresh`) gets the file; in any other a missing file
    /// is an error, as ids would start again at 0 and collide with producers the logs
    /// still remember.
    pub fn open(data_dir: &Path, fresh: bool) -> Result<ProducerIds> {
        let path = data_dir.join(FILE_NAME);
        let text = match checked_file::read(&path)? {
            Read::Checked(text) | Read::Unchecked(text) => text,
            Read::Missing if fresh => {
                checked_file::write(&path, "0")?;
                "0".into()
            }
            Read::Missing => {
                return Err(BrokerError::CorruptFile {
                    path,
                    reason: "missing: producer ids would be handed out again; restore the \
                             file from a backup"
                        .into(),
                })
            }
        };
        let block_end = text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|&v| v >= 0)
            .ok_or_else(|| BrokerError::CorruptFile {
                path: path.clone(),
                reason: format!("expected a non-negative integer, found {:?}", text.trim()),
            })?;
        Ok(ProducerIds {
            path,
            next: block_end,
            block_end,
        })
    }

    /// The end of the reservation: no id at or above it was ever handed out.
    pub fn reserved_end(&self) -> i64 {
        self.block_end
    }

    /// The next unused id.
    pub fn allocate(&mut self) -> Result<i64> {
        if self.next >= self.block_end {
            let end = self.next + PRODUCER_ID_BLOCK_SIZE;
            checked_file::write(&self.path, &end.to_string())?;
            self.block_end = end;
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_reopen_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            matches!(
                ProducerIds::open(dir.path(), false),
                Err(BrokerError::CorruptFile { .. })
            ),
            "missing in a directory that is not new"
        );
        let mut ids = ProducerIds::open(dir.path(), true).unwrap();
        let first: Vec<i64> = (0..3).map(|_| ids.allocate().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(ids);
        let mut ids = ProducerIds::open(dir.path(), false).unwrap();
        assert_eq!(ids.allocate().unwrap(), PRODUCER_ID_BLOCK_SIZE);
        let path = dir.path().join(FILE_NAME);
        let good = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, good.replacen("2000", "9000", 1)).unwrap();
        assert!(
            matches!(
                ProducerIds::open(dir.path(), false),
                Err(BrokerError::CorruptFile { .. })
            ),
            "a changed reservation fails its checksum"
        );
        // An older release's file (no checksum) is read.
        std::fs::write(&path, "3000\n").unwrap();
        let mut ids = ProducerIds::open(dir.path(), false).unwrap();
        assert_eq!(ids.allocate().unwrap(), 3000);
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(
            ProducerIds::open(dir.path(), false),
            Err(BrokerError::CorruptFile { .. })
        ));
    }
}
