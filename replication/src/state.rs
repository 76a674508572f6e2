//! The Raft state that is not in the log: the hard state (term, vote, commit), the
//! configuration (voters, learners, joint-consensus halves) and the last installed
//! snapshot, persisted in `raft.state` next to the partition's segments.
//!
//! Format (little endian): magic `SRST`, version 3, payload length u32, payload, CRC-32
//! (`crc32fast`) of version, length and payload. The payload is the hard state's three
//! u64s, then the current configuration, then the configuration history: a u32 count
//! and that many (Raft index u64, configuration) pairs, then the installed snapshot: its
//! index, term, next Kafka offset and log start offset (four u64s; all zero when none).
//! A configuration is `auto_leave` as one byte, then four lists (voters, learners,
//! voters_outgoing, learners_next), each a u32 count and that many u64 ids. Versions 1
//! (no history, no snapshot) and 2 (no snapshot) are still read. Writes go through a
//! synced temporary file and a rename, then a directory sync: after a crash the file
//! holds the old state or the new one, never a mix.
//!
//! The stored commit is the *applied* index at the time of the write: every entry up to
//! it is durable in the log and its effects (configuration changes) are in this file.
//! It is written when something else must be (term, vote, configuration, snapshot) and
//! otherwise every [`COMMIT_SAVE_ENTRIES`] applied entries or [`COMMIT_SAVE_TICKS`]
//! ticks, not at every commit move; a restarted replica relearns the rest from its
//! leader (`docs/replication.md`).
//!
//! The history exists for snapshots: a snapshot taken at the entry just before the log's
//! first retained entry must carry the configuration *as of that entry*, and the
//! configuration changes after it are replayed by the follower from the entries. Each
//! applied change is recorded with its index; entries older than the log's start are
//! pruned (the newest of them stays, it is the configuration at the start).
//!
//! The installed snapshot is the commit point of a snapshot installation: the state
//! naming it is written first, then the log is restarted after its index. A crash in
//! between leaves a state whose snapshot lies past the log's start, and opening the
//! storage finishes the restart ([`crate::LogStorage::new`]).

use std::path::Path;

use raft::eraftpb::{ConfState, HardState};

use crate::error::{ReplicationError, Result};

/// File name of the persisted Raft state inside a partition directory.
pub const STATE_FILE: &str = "raft.state";
const MAGIC: &[u8; 4] = b"SRST";
const VERSION: u8 = 3;
const VERSION_WITHOUT_SNAPSHOT: u8 = 2;
const VERSION_WITHOUT_HISTORY: u8 = 1;
/// Applied entries after which the commit index is written even though nothing else
/// changed: a restart re-applies at most this many entries.
pub const COMMIT_SAVE_ENTRIES: u64 = 1024;
/// Ticks after which a moved commit index is written (`Group::save_commit_if_stale`;
/// about a second at the broker's 100 ms tick): a restarted replica's state, such as the
/// controller's metadata, is at most that stale before it hears from its leader.
pub const COMMIT_SAVE_TICKS: usize = 10;
/// Ids per list a sane configuration never exceeds; bounds what a damaged file can make
/// us allocate.
pub const MAX_IDS_PER_LIST: u32 = 1024;
/// Configurations kept in the history; the oldest go first beyond it (a log would need
/// this many membership changes in its retained part before a snapshot could carry a
/// configuration that is too new).
pub const MAX_CONF_HISTORY: usize = 256;

/// Hard state and configuration as last persisted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersistedState {
    pub hard: HardState,
    /// The configuration after the last applied change.
    pub conf: ConfState,
    /// (Raft index, configuration from that index on), oldest first.
    pub conf_history: Vec<(u64, ConfState)>,
    /// The last snapshot installed (all zero: none).
    pub snapshot: InstalledSnapshot,
}

/// Where the last installed snapshot restarted the log: after Raft entry `index` (of
/// `term`), at Kafka offset `next_offset`, with `log_start_offset` as the leader's log
/// start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstalledSnapshot {
    pub index: u64,
    pub term: u64,
    pub next_offset: u64,
    pub log_start_offset: u64,
}

impl PersistedState {
    /// The configuration in force at Raft index `index` (after applying it): the newest
    /// history entry at or below `index`; the current configuration when the history
    /// does not reach back that far (a state written before the history existed).
    pub fn conf_at(&self, index: u64) -> ConfState {
        self.conf_history
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| self.conf.clone())
    }

    /// Records `conf` as the configuration from `index` on, dropping history entries the
    /// log no longer needs: all but the newest below `log_floor` (the index just before
    /// the log's first entry), and the oldest beyond [`MAX_CONF_HISTORY`].
    pub fn record_conf(&mut self, index: u64, conf: ConfState, log_floor: u64) {
        self.conf_history.retain(|(i, _)| *i < index);
        self.conf_history.push((index, conf.clone()));
        let below = self
            .conf_history
            .iter()
            .filter(|(i, _)| *i <= log_floor)
            .count();
        if below > 1 {
            self.conf_history.drain(..below - 1);
        }
        if self.conf_history.len() > MAX_CONF_HISTORY {
            let extra = self.conf_history.len() - MAX_CONF_HISTORY;
            self.conf_history.drain(..extra);
        }
        self.conf = conf;
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> ReplicationError {
    ReplicationError::CorruptState {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn encode_conf(conf: &ConfState, payload: &mut Vec<u8>) {
    payload.push(u8::from(conf.auto_leave));
    for list in [
        &conf.voters,
        &conf.learners,
        &conf.voters_outgoing,
        &conf.learners_next,
    ] {
        payload.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for id in list {
            payload.extend_from_slice(&id.to_le_bytes());
        }
    }
}

fn encode(state: &PersistedState) -> Vec<u8> {
    let mut payload = Vec::with_capacity(64);
    payload.extend_from_slice(&state.hard.term.to_le_bytes());
    payload.extend_from_slice(&state.hard.vote.to_le_bytes());
    payload.extend_from_slice(&state.hard.commit.to_le_bytes());
    encode_conf(&state.conf, &mut payload);
    payload.extend_from_slice(&(state.conf_history.len() as u32).to_le_bytes());
    for (index, conf) in &state.conf_history {
        payload.extend_from_slice(&index.to_le_bytes());
        encode_conf(conf, &mut payload);
    }
    let snap = &state.snapshot;
    for v in [
        snap.index,
        snap.term,
        snap.next_offset,
        snap.log_start_offset,
    ] {
        payload.extend_from_slice(&v.to_le_bytes());
    }
    let mut out = Vec::with_capacity(payload.len() + 13);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out[4..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Reads little-endian values off the front of a slice; `None` when it runs out.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
}

fn decode(path: &Path, bytes: &[u8]) -> Result<PersistedState> {
    if bytes.len() < 13 || &bytes[..4] != MAGIC {
        return Err(corrupt(
            path,
            "not a raft state file (bad magic or too short)",
        ));
    }
    let (body, crc) = bytes[4..].split_at(bytes.len() - 8);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != stored {
        return Err(corrupt(path, "checksum mismatch"));
    }
    let version = body[0];
    if !matches!(
        version,
        VERSION | VERSION_WITHOUT_SNAPSHOT | VERSION_WITHOUT_HISTORY
    ) {
        return Err(corrupt(path, format!("unknown version {version}")));
    }
    let len = u32::from_le_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let payload = &body[5..];
    if payload.len() != len {
        return Err(corrupt(path, "payload length does not match"));
    }
    let short = || corrupt(path, "payload ends early");
    let mut r = Reader(payload);
    let hard = HardState {
        term: r.u64().ok_or_else(short)?,
        vote: r.u64().ok_or_else(short)?,
        commit: r.u64().ok_or_else(short)?,
        ..Default::default()
    };
    let conf = decode_conf(path, &mut r)?;
    let mut conf_history = Vec::new();
    if version >= VERSION_WITHOUT_SNAPSHOT {
        let n = r.u32().ok_or_else(short)? as usize;
        if n > MAX_CONF_HISTORY {
            return Err(corrupt(path, format!("{n} configurations in the history")));
        }
        for _ in 0..n {
            let index = r.u64().ok_or_else(short)?;
            conf_history.push((index, decode_conf(path, &mut r)?));
        }
    }
    let mut snapshot = InstalledSnapshot::default();
    if version == VERSION {
        snapshot = InstalledSnapshot {
            index: r.u64().ok_or_else(short)?,
            term: r.u64().ok_or_else(short)?,
            next_offset: r.u64().ok_or_else(short)?,
            log_start_offset: r.u64().ok_or_else(short)?,
        };
    }
    if !r.0.is_empty() {
        return Err(corrupt(path, "bytes after the last list"));
    }
    Ok(PersistedState {
        hard,
        conf,
        conf_history,
        snapshot,
    })
}

fn decode_conf(path: &Path, r: &mut Reader<'_>) -> Result<ConfState> {
    let short = || corrupt(path, "payload ends early");
    let auto_leave = match r.take::<1>().ok_or_else(short)?[0] {
        0 => false,
        1 => true,
        b => return Err(corrupt(path, format!("auto_leave byte {b}"))),
    };
    let mut lists: [Vec<u64>; 4] = Default::default();
    for list in &mut lists {
        let n = r.u32().ok_or_else(short)?;
        if n > MAX_IDS_PER_LIST {
            return Err(corrupt(path, format!("{n} ids in one list")));
        }
        for _ in 0..n {
            list.push(r.u64().ok_or_else(short)?);
        }
    }
    let [voters, learners, voters_outgoing, learners_next] = lists;
    Ok(ConfState {
        voters,
        learners,
        voters_outgoing,
        learners_next,
        auto_leave,
        ..Default::default()
    })
}

/// Loads the state persisted in `dir`; the default (term 0, no configuration) when the
/// file does not exist yet. A damaged file is an error: guessing a term or a vote could
/// make this replica vote twice in a term.
pub fn load(dir: &Path) -> Result<PersistedState> {
    let path = dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => decode(&path, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PersistedState::default()),
        Err(source) => Err(ReplicationError::StateIo { path, source }),
    }
}

/// Persists `state` in `dir` atomically and durably (a synced temporary file renamed
/// over the old one; crash point `raft.state.before_rename` just before the rename).
pub fn save(dir: &Path, state: &PersistedState) -> Result<()> {
    let tmp = format!("{STATE_FILE}.tmp");
    log_store::checkpoint::replace_file(
        dir,
        &tmp,
        STATE_FILE,
        &encode(state),
        Some("raft.state.before_rename"),
    )
    .map_err(|e| match e {
        log_store::LogError::Io { path, source } => ReplicationError::StateIo { path, source },
        other => ReplicationError::StateIo {
            path: dir.join(STATE_FILE),
            source: std::io::Error::other(other),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PersistedState {
        PersistedState {
            hard: HardState {
                term: 7,
                vote: 2,
                commit: 1234,
                ..Default::default()
            },
            conf: ConfState {
                voters: vec![1, 2, 3],
                learners: vec![4],
                voters_outgoing: vec![1, 2],
                auto_leave: true,
                ..Default::default()
            },
            conf_history: vec![(
                0,
                ConfState {
                    voters: vec![1, 2, 3],
                    ..Default::default()
                },
            )],
            snapshot: InstalledSnapshot {
                index: 900,
                term: 6,
                next_offset: 51_000,
                log_start_offset: 50_500,
            },
        }
    }

    fn voters(ids: &[u64]) -> ConfState {
        ConfState {
            voters: ids.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn history_answers_the_configuration_at_an_index_and_is_pruned() {
        let mut st = PersistedState::default();
        st.record_conf(0, voters(&[1, 2, 3]), 0);
        st.record_conf(10, voters(&[1, 2, 3, 4]), 0);
        st.record_conf(20, voters(&[2, 3, 4]), 0);
        assert_eq!(st.conf_at(5), voters(&[1, 2, 3]));
        assert_eq!(st.conf_at(10), voters(&[1, 2, 3, 4]));
        assert_eq!(st.conf_at(99), voters(&[2, 3, 4]));
        assert_eq!(st.conf, voters(&[2, 3, 4]));
        // The log now starts after index 15: the configuration at 10 still answers 15.
        st.record_conf(30, voters(&[2, 3, 5]), 15);
        assert_eq!(st.conf_history.len(), 3);
        assert_eq!(st.conf_at(15), voters(&[1, 2, 3, 4]));
        // Re-recording an index (a replaced entry) drops what followed it.
        st.record_conf(20, voters(&[9]), 15);
        assert_eq!(st.conf_at(99), voters(&[9]));
        for i in 0..(MAX_CONF_HISTORY as u64 + 10) {
            st.record_conf(100 + i, voters(&[i]), 0);
        }
        assert_eq!(st.conf_history.len(), MAX_CONF_HISTORY);
    }

    /// `state` encoded as an older version: the current encoding with the `drop`
    /// trailing payload bytes (the fields that version lacks) cut, re-framed.
    fn encode_as(version: u8, state: &PersistedState, drop: usize) -> Vec<u8> {
        let mut bytes = encode(state);
        bytes[4] = version;
        let len = bytes.len();
        bytes.drain(len - 4 - drop..len - 4);
        let payload_len = (bytes.len() - 13) as u32;
        bytes[5..9].copy_from_slice(&payload_len.to_le_bytes());
        let crc = crc32fast::hash(&bytes[4..bytes.len() - 4]);
        let n = bytes.len();
        bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn older_versions_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = sample();
        old.snapshot = InstalledSnapshot::default();
        // Version 2: no installed snapshot (four u64s).
        std::fs::write(
            dir.path().join(STATE_FILE),
            encode_as(VERSION_WITHOUT_SNAPSHOT, &old, 32),
        )
        .unwrap();
        assert_eq!(load(dir.path()).unwrap(), old);
        // Version 1: no history either (its u32 count).
        old.conf_history.clear();
        std::fs::write(
            dir.path().join(STATE_FILE),
            encode_as(VERSION_WITHOUT_HISTORY, &old, 36),
        )
        .unwrap();
        assert_eq!(load(dir.path()).unwrap(), old);
    }

    #[test]
    fn round_trips_and_defaults_when_absent() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), PersistedState::default());
        save(dir.path(), &sample()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), sample());
        assert!(!dir.path().join(format!("{STATE_FILE}.tmp")).exists());
    }

    #[test]
    fn every_truncation_and_bit_flip_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = encode(&sample());
        let path = dir.path().join(STATE_FILE);
        for cut in 0..bytes.len() {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(load(dir.path()).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            std::fs::write(&path, &b).unwrap();
            assert!(load(dir.path()).is_err(), "bit {i}");
        }
    }
}
