//! raft-rs [`Storage`] over a `log-store` partition log: the partition log *is* the Raft
//! log (ARCHITECTURE.md: one write per byte, no second WAL).
//!
//! Entry mapping:
//! - `EntryNormal` with data: a Kafka RecordBatch v2, stored as a data entry; the log
//!   assigns its offsets (`baseOffset` = next offset) and stamps the term into
//!   `partitionLeaderEpoch`, both outside the CRC. Every replica appends the same entries
//!   in the same order, so every replica assigns the same offsets. Reading the entry back
//!   returns the stored (patched) bytes; a follower appending them patches the same values.
//! - `EntryNormal` without data (the leader's no-op at the start of its term): a `Noop`
//!   entry, which takes no Kafka offset.
//! - `EntryConfChange` / `EntryConfChangeV2`: non-data entries keeping their payload.
//!
//! Not persisted: an entry's `context` and `sync_log` (Strata proposes neither).
//!
//! The log is shared (`Arc<RwLock<Log>>`) with the partition's readers. Writes (append,
//! truncate, hard state) come from the one task that runs this group's Ready loop.

use std::path::PathBuf;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use log_store::{EntryKind, Log, LogError};
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::error::{ReplicationError, Result};
use crate::state::{self, PersistedState};

/// A partition log and its Raft state, as raft-rs sees them.
#[derive(Debug, Clone)]
pub struct LogStorage {
    dir: PathBuf,
    log: Arc<RwLock<Log>>,
    state: Arc<RwLock<PersistedState>>,
}

fn other(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

impl LogStorage {
    /// Wraps an open log, loading the Raft state persisted beside it.
    pub fn new(log: Arc<RwLock<Log>>) -> Result<LogStorage> {
        let dir = read(&log).dir().to_path_buf();
        let state = state::load(&dir)?;
        Ok(LogStorage {
            dir,
            log,
            state: Arc::new(RwLock::new(state)),
        })
    }

    /// The log, shared with readers.
    pub fn log(&self) -> &Arc<RwLock<Log>> {
        &self.log
    }

    fn log_err(&self, source: LogError) -> ReplicationError {
        ReplicationError::Log {
            dir: self.dir.clone(),
            source,
        }
    }

    /// Appends entries from a Ready (or a message): entries at or below the current last
    /// index replace what is there (Raft conflict resolution truncates the suffix, and the
    /// Kafka offsets rewind with it). Not durable until [`LogStorage::flush`].
    pub fn append(&self, entries: &[Entry]) -> Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut log = write(&self.log);
        let last = log.last_raft_index();
        if first.index <= last {
            log.truncate_from_raft_index(first.index)
                .map_err(|e| self.log_err(e))?;
        }
        for e in entries {
            let expected = log.last_raft_index() + 1;
            if e.index != expected {
                return Err(ReplicationError::BadEntries {
                    dir: self.dir.clone(),
                    reason: format!("entry {} does not follow {}", e.index, expected - 1),
                });
            }
            let appended = match (e.get_entry_type(), e.data.is_empty()) {
                (EntryType::EntryNormal, false) => {
                    let mut batch = e.data.to_vec();
                    log.append_with_term(e.term, &mut batch).map(|_| ())
                }
                (EntryType::EntryNormal, true) => {
                    log.append_meta(e.term, EntryKind::Noop, &[]).map(|_| ())
                }
                (EntryType::EntryConfChange, _) => log
                    .append_meta(e.term, EntryKind::ConfChange, &e.data)
                    .map(|_| ()),
                (EntryType::EntryConfChangeV2, _) => log
                    .append_meta(e.term, EntryKind::ConfChangeV2, &e.data)
                    .map(|_| ()),
            };
            appended.map_err(|e| self.log_err(e))?;
        }
        Ok(())
    }

    /// Makes appended entries durable (one `fdatasync` for everything appended since the
    /// last flush). Returns the last durable Raft index.
    pub fn flush(&self) -> Result<u64> {
        let mut log = write(&self.log);
        log.flush().map_err(|e| self.log_err(e))?;
        Ok(log.flushed_raft_index())
    }

    /// Persists a new hard state (term, vote, commit) durably before returning.
    pub fn set_hard_state(&self, hard: HardState) -> Result<()> {
        let mut st = write(&self.state);
        if st.hard == hard {
            return Ok(());
        }
        let next = PersistedState {
            hard,
            conf: st.conf.clone(),
        };
        state::save(&self.dir, &next)?;
        *st = next;
        Ok(())
    }

    /// Persists only the commit index of the hard state (raft-rs reports it separately
    /// in a LightReady).
    pub fn set_commit(&self, commit: u64) -> Result<()> {
        let mut hard = read(&self.state).hard.clone();
        hard.commit = commit;
        self.set_hard_state(hard)
    }

    /// Persists a new configuration durably before returning.
    pub fn set_conf_state(&self, conf: ConfState) -> Result<()> {
        let mut st = write(&self.state);
        if st.conf == conf {
            return Ok(());
        }
        let next = PersistedState {
            hard: st.hard.clone(),
            conf,
        };
        state::save(&self.dir, &next)?;
        *st = next;
        Ok(())
    }

    /// The persisted hard state and configuration.
    pub fn persisted(&self) -> PersistedState {
        read(&self.state).clone()
    }

    fn entry(&self, log: &Log, index: u64) -> raft::Result<Entry> {
        let info = log.entry(index).map_err(other)?;
        let data = log.entry_payload(index).map_err(other)?;
        let entry_type = match info.kind {
            EntryKind::ConfChange => EntryType::EntryConfChange,
            EntryKind::ConfChangeV2 => EntryType::EntryConfChangeV2,
            _ => EntryType::EntryNormal,
        };
        let mut e = Entry {
            term: info.term,
            index,
            data,
            ..Default::default()
        };
        e.set_entry_type(entry_type);
        Ok(e)
    }
}

/// Locks for reading; a poisoned lock still guards a log whose every method left it
/// consistent or returned an error, so the data is usable.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl Storage for LogStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let st = read(&self.state);
        Ok(RaftState {
            hard_state: st.hard.clone(),
            conf_state: st.conf.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let log = read(&self.log);
        let (first, last) = (log.first_raft_index(), log.last_raft_index());
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > last + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let mut out = Vec::with_capacity((high - low).min(1024) as usize);
        let mut size = 0u64;
        for index in low..high {
            let e = self.entry(&log, index)?;
            size = size.saturating_add(e.data.len() as u64 + 16);
            // At least one entry, however large (raft-rs's `limit_size` rule).
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let log = read(&self.log);
        let (first, last) = (log.first_raft_index(), log.last_raft_index());
        if index + 1 < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if index > last {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        log.term_of(index).map_err(other)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(read(&self.log).first_raft_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(read(&self.log).last_raft_index())
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // Catching up a follower whose needed entries retention already deleted needs
        // segment-shipping snapshots (the replication issue, item 5); until then raft-rs
        // retries later and the follower stays behind.
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}
