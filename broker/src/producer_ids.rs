//! Producer-id allocation for InitProducerId. Ids are never reused across restarts: the
//! broker reserves them in blocks and makes the end of the current block durable in
//! `producer_ids` before handing out any id from it. A crash wastes the rest of a block.
//!
//! This is the single node's allocator. In a cluster the controller grants each broker
//! blocks of ids (`Cluster::allocate_producer_id`, Kafka's AllocateProducerIds), so two
//! brokers never hand out the same id: an id shared by two producers would make one's
//! sequences look out of order to the other.

use std::io::Write;
use std::path::{Path, PathBuf};

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
    pub fn open(data_dir: &Path) -> Result<ProducerIds> {
        let path = data_dir.join(FILE_NAME);
        let block_end = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|&v| v >= 0)
                .ok_or_else(|| BrokerError::CorruptFile {
                    path: path.clone(),
                    reason: format!("expected a non-negative integer, found {:?}", text.trim()),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(BrokerError::io(&path, e)),
        };
        Ok(ProducerIds {
            path,
            next: block_end,
            block_end,
        })
    }

    /// The next unused id.
    pub fn allocate(&mut self) -> Result<i64> {
        if self.next >= self.block_end {
            let end = self.next + PRODUCER_ID_BLOCK_SIZE;
            write_atomically(&self.path, end.to_string().as_bytes())?;
            self.block_end = end;
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename, then syncs the
/// directory: after a crash the file holds the old or the new content, never a mix.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| BrokerError::io(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| BrokerError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| BrokerError::io(path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BrokerError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_reopen_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = ProducerIds::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..3).map(|_| ids.allocate().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(ids);
        let mut ids = ProducerIds::open(dir.path()).unwrap();
        assert_eq!(ids.allocate().unwrap(), PRODUCER_ID_BLOCK_SIZE);
        std::fs::write(dir.path().join(FILE_NAME), "garbage").unwrap();
        assert!(matches!(
            ProducerIds::open(dir.path()),
            Err(BrokerError::CorruptFile { .. })
        ));
    }
}
