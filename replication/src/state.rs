//! The Raft state that is not in the log: the hard state (term, vote, commit) and the
//! configuration (voters, learners, joint-consensus halves), persisted in `raft.state`
//! next to the partition's segments.
//!
//! Format (little endian): magic `SRST`, version 1, payload length u32, payload, CRC-32
//! (`crc32fast`) of version, length and payload. The payload is the hard state's three
//! u64s, `auto_leave` as one byte, then four lists (voters, learners, voters_outgoing,
//! learners_next), each a u32 count and that many u64 ids. Writes go through a synced
//! temporary file and a rename, then a directory sync: after a crash the file holds the
//! old state or the new one, never a mix.

use std::io::Write;
use std::path::{Path, PathBuf};

use raft::eraftpb::{ConfState, HardState};

use crate::error::{ReplicationError, Result};

/// File name of the persisted Raft state inside a partition directory.
pub const STATE_FILE: &str = "raft.state";
const MAGIC: &[u8; 4] = b"SRST";
const VERSION: u8 = 1;
/// Ids per list a sane configuration never exceeds; bounds what a damaged file can make
/// us allocate.
pub const MAX_IDS_PER_LIST: u32 = 1024;

/// Hard state and configuration as last persisted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersistedState {
    pub hard: HardState,
    pub conf: ConfState,
}

fn corrupt(path: &Path, reason: impl Into<String>) -> ReplicationError {
    ReplicationError::CorruptState {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn encode(state: &PersistedState) -> Vec<u8> {
    let mut payload = Vec::with_capacity(64);
    payload.extend_from_slice(&state.hard.term.to_le_bytes());
    payload.extend_from_slice(&state.hard.vote.to_le_bytes());
    payload.extend_from_slice(&state.hard.commit.to_le_bytes());
    payload.push(u8::from(state.conf.auto_leave));
    for list in [
        &state.conf.voters,
        &state.conf.learners,
        &state.conf.voters_outgoing,
        &state.conf.learners_next,
    ] {
        payload.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for id in list {
            payload.extend_from_slice(&id.to_le_bytes());
        }
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
    if body[0] != VERSION {
        return Err(corrupt(path, format!("unknown version {}", body[0])));
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
    if !r.0.is_empty() {
        return Err(corrupt(path, "bytes after the last list"));
    }
    let [voters, learners, voters_outgoing, learners_next] = lists;
    let conf = ConfState {
        voters,
        learners,
        voters_outgoing,
        learners_next,
        auto_leave,
        ..Default::default()
    };
    Ok(PersistedState { hard, conf })
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

/// Persists `state` in `dir` atomically and durably.
pub fn save(dir: &Path, state: &PersistedState) -> Result<()> {
    let path = dir.join(STATE_FILE);
    let tmp: PathBuf = dir.join(format!("{STATE_FILE}.tmp"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReplicationError::StateIo { path, source }
    };
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&encode(state))
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
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
        }
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
