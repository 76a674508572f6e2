//! raft-rs [`Storage`] over a `log-store` partition log: the partition log *is* the Raft
//! log (one write per byte, no second WAL).
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
//! - `EntryNormal` whose context is [`LOG_START_CONTEXT`] (a replicated DeleteRecords): a
//!   `LogStart` entry keeping its 8-byte offset; it takes no Kafka offset, and the
//!   context is given back when the entry is read.
//! - `EntryNormal` whose context is [`AUDIT_HEAD_CONTEXT`] (an audit log's tree head) or
//!   [`AUDIT_SEAL_CONTEXT`] (its seal): an `AuditHead` or `AuditSeal` entry keeping its
//!   payload, likewise.
//!
//! Not persisted: any other `context`, and `sync_log` (Strata proposes neither).
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
    state: Arc<RwLock<StateCell>>,
}

/// The Raft state in memory, and the commit index the file last received.
#[derive(Debug)]
struct StateCell {
    /// Its `hard.commit` is the applied index (see [`LogStorage::note_applied`]).
    state: PersistedState,
    saved_commit: u64,
}

impl StateCell {
    /// Writes `next` (durably) and makes it the state.
    fn save(&mut self, dir: &std::path::Path, next: PersistedState) -> Result<()> {
        state::save(dir, &next)?;
        self.saved_commit = next.hard.commit;
        self.state = next;
        Ok(())
    }
}

fn other(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

impl LogStorage {
    /// Wraps an open log, loading the Raft state persisted beside it. A snapshot
    /// installation that a crash interrupted (its state written, the log not yet
    /// restarted) is finished here, and the commit index is brought into the log's
    /// range: never below the entry before the first (that prefix is committed: it went
    /// by snapshot or by retention, which stays below the commit), never past the last
    /// entry (a log damaged below its commit; the replica catches up from its leader).
    pub fn new(log: Arc<RwLock<Log>>) -> Result<LogStorage> {
        let dir = read(&log).dir().to_path_buf();
        let mut state = state::load(&dir)?;
        let storage_err = |source| ReplicationError::Log {
            dir: dir.clone(),
            source,
        };
        {
            let mut log = write(&log);
            let snap = state.snapshot;
            if snap.index > 0 && log.prev_raft_entry().0 < snap.index {
                tracing::warn!(dir = %dir.display(), index = snap.index,
                    "finishing a snapshot installation a crash interrupted");
                log.reset(snap.next_offset, snap.index + 1, snap.term)
                    .map_err(storage_err)?;
            }
            let (floor, last) = (log.prev_raft_entry().0, log.last_raft_index());
            if state.hard.commit > last {
                tracing::error!(dir = %dir.display(), commit = state.hard.commit, last,
                    "the log ends before its saved commit index; catching up from the leader");
            }
            state.hard.commit = state.hard.commit.min(last).max(floor);
        }
        let saved_commit = state.hard.commit;
        Ok(LogStorage {
            dir,
            log,
            state: Arc::new(RwLock::new(StateCell {
                state,
                saved_commit,
            })),
        })
    }

    /// The log, shared with readers.
    /// The directory of the log (and of the state file beside it).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

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
        self.append_vouched(entries, |_| false)
    }

    /// [`LogStorage::append`], but data entries for which `vouched` holds are written
    /// without computing their CRC-32C again: the caller checked it (a leader's own
    /// proposals, validated when proposed).
    pub fn append_vouched(
        &self,
        entries: &[Entry],
        vouched: impl Fn(&Entry) -> bool,
    ) -> Result<()> {
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
            let normal = e.get_entry_type() == EntryType::EntryNormal;
            let marked = normal.then(|| marked_kind(&e.context)).flatten();
            let appended = match (e.get_entry_type(), e.data.is_empty(), marked) {
                (_, _, Some(kind)) => log.append_meta(e.term, kind, &e.data).map(|_| ()),
                (EntryType::EntryNormal, false, None) if vouched(e) => {
                    log.append_vouched(e.term, &e.data).map(|_| ())
                }
                (EntryType::EntryNormal, false, None) => {
                    log.append_replicated(e.term, &e.data).map(|_| ())
                }
                (EntryType::EntryNormal, true, None) => {
                    log.append_meta(e.term, EntryKind::Noop, &[]).map(|_| ())
                }
                (EntryType::EntryConfChange, _, _) => log
                    .append_meta(e.term, EntryKind::ConfChange, &e.data)
                    .map(|_| ()),
                (EntryType::EntryConfChangeV2, _, _) => log
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

    /// Makes appended entries durable like [`LogStorage::flush`], but holds the log's lock
    /// only to prepare and to record the flush, not during the `fdatasync`: appends and
    /// reads go on meanwhile (entries appended during it are left for the next flush).
    pub fn flush_concurrently(&self) -> Result<()> {
        let pending = read(&self.log)
            .prepare_flush()
            .map_err(|e| self.log_err(e))?;
        let Some(pending) = pending else {
            return Ok(());
        };
        pending.sync().map_err(|e| self.log_err(e))?;
        write(&self.log)
            .complete_flush(pending)
            .map_err(|e| self.log_err(e))?;
        Ok(())
    }

    /// The term and vote in force (what the state file holds).
    pub fn term_and_vote(&self) -> (u64, u64) {
        let cell = read(&self.state);
        (cell.state.hard.term, cell.state.hard.vote)
    }

    /// The last Raft index in the log (durable or not).
    pub fn last_raft_index(&self) -> u64 {
        read(&self.log).last_raft_index()
    }

    /// Persists a new term and vote durably before returning (raft-rs's hard state; its
    /// commit index is not taken from here, see [`LogStorage::note_applied`]). Nothing is
    /// written when neither changed.
    pub fn set_hard_state(&self, hard: &HardState) -> Result<()> {
        let mut cell = write(&self.state);
        if cell.state.hard.term == hard.term && cell.state.hard.vote == hard.vote {
            return Ok(());
        }
        let mut next = cell.state.clone();
        next.hard.term = hard.term;
        next.hard.vote = hard.vote;
        cell.save(&self.dir, next)
    }

    /// Records that every entry up to `index` is applied (in memory). The state file
    /// learns it with its next write, or from [`LogStorage::save_commit_if_due`]: the
    /// commit index in the file may lag, never lead (docs/replication.md).
    pub fn note_applied(&self, index: u64) {
        let mut cell = write(&self.state);
        cell.state.hard.commit = cell.state.hard.commit.max(index);
    }

    /// Writes the applied index to the state file when it moved at least `entries`
    /// past what the file holds (0: whenever it moved). Returns whether it wrote.
    pub fn save_commit_if_due(&self, entries: u64) -> Result<bool> {
        let mut cell = write(&self.state);
        let behind = cell.state.hard.commit.saturating_sub(cell.saved_commit);
        if behind == 0 || behind < entries {
            return Ok(false);
        }
        log_store::failpoint::check("raft.before_commit_save").map_err(|source| {
            ReplicationError::StateIo {
                path: self.dir.join(state::STATE_FILE),
                source,
            }
        })?;
        let next = cell.state.clone();
        cell.save(&self.dir, next)?;
        Ok(true)
    }

    /// Makes a log written outside Raft (a single broker's, every entry given a term by
    /// `log_store::restamp_zero_terms`) the log of a group whose one voter is `voter`:
    /// the state file gets the configuration, the last entry's term, and a commit index
    /// at the last entry, so everything the log holds stays readable at once (a single
    /// broker had acknowledged all of it, and its log opened holding only durable
    /// batches). Refuses a storage that already has a configuration and a log that still
    /// holds term 0, which Raft reads as "no entry". An empty log is left to the
    /// bootstrap of `Group::open`.
    pub fn adopt(&self, voter: u64) -> Result<()> {
        let refuse = |reason: String| ReplicationError::Adopt {
            dir: self.dir.clone(),
            reason,
        };
        let (first, last, floor) = {
            let log = read(&self.log);
            (
                log.first_raft_index(),
                log.last_raft_index(),
                log.prev_raft_entry(),
            )
        };
        if last < first {
            return Ok(());
        }
        let first_term = read(&self.log)
            .term_of(first)
            .map_err(|e| self.log_err(e))?;
        if first_term == 0 || (floor.0 > 0 && floor.1 == 0) {
            return Err(refuse("it holds term 0: restamp it first".into()));
        }
        let last_term = read(&self.log).term_of(last).map_err(|e| self.log_err(e))?;
        let mut cell = write(&self.state);
        let conf = &cell.state.conf;
        if !conf.voters.is_empty() || !conf.learners.is_empty() {
            return Err(refuse(format!("it already has voters {:?}", conf.voters)));
        }
        let mut next = cell.state.clone();
        next.hard.term = next.hard.term.max(last_term);
        next.hard.commit = last;
        let conf = ConfState {
            voters: vec![voter],
            ..Default::default()
        };
        next.record_conf(0, conf, floor.0);
        cell.save(&self.dir, next)
    }

    /// Persists the configuration in force from Raft index `index` on (0: the initial
    /// configuration of a new group), durably before returning, together with the
    /// applied index (`index`: applying an entry applies everything before it).
    pub fn set_conf_state(&self, index: u64, conf: ConfState) -> Result<()> {
        let mut cell = write(&self.state);
        let st = &cell.state;
        if st.conf == conf && st.conf_history.last().is_some_and(|(i, _)| *i <= index) {
            return Ok(());
        }
        self.crash_point("raft.before_conf_save")?;
        let log_floor = read(&self.log).prev_raft_entry().0;
        let mut next = st.clone();
        next.hard.commit = next.hard.commit.max(index);
        next.record_conf(index, conf, log_floor);
        cell.save(&self.dir, next)
    }

    /// Installs a snapshot sent by the leader (see [`LogStorage::snapshot`]): the log is
    /// emptied and restarts after the snapshot's index at the Kafka offset the snapshot
    /// names, the configuration becomes the snapshot's, and the commit index moves to
    /// the snapshot's index (the vote is raft-rs's to move; the term is raised to the
    /// snapshot's when it was older). The leader then replicates its retained entries
    /// from the next index on by ordinary appends.
    ///
    /// Crash order: the state naming the snapshot is written first (its commit point),
    /// then the log restarts; [`LogStorage::new`] finishes a restart a crash cut short.
    pub fn apply_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotData> {
        let meta = snapshot.get_metadata();
        let data = SnapshotData::decode(&snapshot.data).map_err(|reason| {
            ReplicationError::BadEntries {
                dir: self.dir.clone(),
                reason: format!("snapshot at index {}: {reason}", meta.index),
            }
        })?;
        self.crash_point("raft.snapshot.before_state")?;
        {
            let mut cell = write(&self.state);
            let mut next = cell.state.clone();
            next.hard.commit = next.hard.commit.max(meta.index);
            if next.hard.term < meta.term {
                next.hard.term = meta.term;
                next.hard.vote = 0;
            }
            next.conf_history.clear();
            next.record_conf(meta.index, meta.get_conf_state().clone(), meta.index);
            next.snapshot = state::InstalledSnapshot {
                index: meta.index,
                term: meta.term,
                next_offset: data.next_offset,
                log_start_offset: data.log_start_offset,
            };
            cell.save(&self.dir, next)?;
        }
        self.crash_point("raft.snapshot.before_log_reset")?;
        let mut log = write(&self.log);
        log.reset(data.next_offset, meta.index + 1, meta.term)
            .map_err(|e| self.log_err(e))?;
        Ok(data)
    }

    /// A crash test's point of interruption (see `log_store::failpoint`); `Ok` in normal
    /// runs.
    pub(crate) fn crash_point(&self, point: &'static str) -> Result<()> {
        log_store::failpoint::check(point).map_err(|source| ReplicationError::StateIo {
            path: self.dir.clone(),
            source,
        })
    }

    /// The persisted hard state and configuration.
    /// (Its commit index is the applied index, which the file may not hold yet.)
    pub fn persisted(&self) -> PersistedState {
        read(&self.state).state.clone()
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
        if let Some(context) = context_of(info.kind) {
            e.context = context.to_vec().into();
        }
        e.set_entry_type(entry_type);
        Ok(e)
    }
}

/// The context that marks a normal entry as a replicated DeleteRecords
/// ([`EntryKind::LogStart`]; its data is the new log start offset, 8 bytes big-endian).
pub const LOG_START_CONTEXT: &[u8] = b"strata:log-start";

/// The context that marks a normal entry as an audit log's tree head
/// ([`EntryKind::AuditHead`]; its data is a `log_store::merkle::LoggedHead`).
pub const AUDIT_HEAD_CONTEXT: &[u8] = b"strata:audit-head";

/// The context that marks a normal entry as an audit log's seal
/// ([`EntryKind::AuditSeal`]; its data is a `log_store::log::AuditSeal`).
pub const AUDIT_SEAL_CONTEXT: &[u8] = b"strata:audit-seal";

/// The non-data kind a normal entry's context marks it as (`None`: its data decides).
pub fn marked_kind(context: &[u8]) -> Option<EntryKind> {
    match context {
        LOG_START_CONTEXT => Some(EntryKind::LogStart),
        AUDIT_HEAD_CONTEXT => Some(EntryKind::AuditHead),
        AUDIT_SEAL_CONTEXT => Some(EntryKind::AuditSeal),
        _ => None,
    }
}

/// The context a normal entry of `kind` is read back with.
fn context_of(kind: EntryKind) -> Option<&'static [u8]> {
    match kind {
        EntryKind::LogStart => Some(LOG_START_CONTEXT),
        EntryKind::AuditHead => Some(AUDIT_HEAD_CONTEXT),
        EntryKind::AuditSeal => Some(AUDIT_SEAL_CONTEXT),
        _ => None,
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
        let cell = read(&self.state);
        Ok(RaftState {
            hard_state: cell.state.hard.clone(),
            conf_state: cell.state.conf.clone(),
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

    /// A snapshot at the entry just before the first retained one: its index, term and
    /// the configuration then, and in its data the Kafka offset where the log continues.
    /// It carries no records: the follower empties its log, restarts it there, and the
    /// leader sends every retained entry after it by ordinary appends. So a follower that
    /// fell behind retention ends up with exactly the leader's retained log, offsets
    /// included.
    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let log = read(&self.log);
        let (index, term) = log.prev_raft_entry();
        let cell = read(&self.state);
        let st = &cell.state;
        // A snapshot may only hold committed entries (retention is bounded by the commit
        // index; this guards against a log whose prefix went some other way).
        if index == 0 || index > st.hard.commit {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let next_offset = log
            .segments()
            .first()
            .map(|s| s.base_offset)
            .unwrap_or_else(|| log.next_offset());
        let data = SnapshotData {
            next_offset,
            log_start_offset: log.log_start_offset(),
        };
        let mut snap = Snapshot {
            data: data.encode().into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(st.conf_at(index));
        Ok(snap)
    }
}

/// What a Strata snapshot's data holds (see [`LogStorage::snapshot`]): 1 version byte,
/// then two u64 (big endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotData {
    /// The Kafka offset of the first entry after the snapshot's index.
    pub next_offset: u64,
    /// The leader's log start offset (DeleteRecords may have moved it past
    /// `next_offset`).
    pub log_start_offset: u64,
}

const SNAPSHOT_DATA_VERSION: u8 = 1;

impl SnapshotData {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17);
        out.push(SNAPSHOT_DATA_VERSION);
        out.extend_from_slice(&self.next_offset.to_be_bytes());
        out.extend_from_slice(&self.log_start_offset.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> std::result::Result<SnapshotData, String> {
        let [version, rest @ ..] = bytes else {
            return Err("empty snapshot data".into());
        };
        if *version != SNAPSHOT_DATA_VERSION {
            return Err(format!("unknown snapshot data version {version}"));
        }
        let (Some(a), Some(b)) = (rest.get(..8), rest.get(8..16)) else {
            return Err("snapshot data too short".into());
        };
        if rest.len() != 16 {
            return Err("snapshot data too long".into());
        }
        let u = |s: &[u8]| {
            let mut b = [0u8; 8];
            b.copy_from_slice(s);
            u64::from_be_bytes(b)
        };
        Ok(SnapshotData {
            next_offset: u(a),
            log_start_offset: u(b),
        })
    }
}
