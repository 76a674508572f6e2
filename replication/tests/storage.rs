//! `LogStorage` meets raft-rs's expectations of a `Storage`: terms and entries by index,
//! bounds (`Compacted` below the first index, `Unavailable` past the last), the size
//! limit that still returns one entry, conflict truncation that rewinds Kafka offsets,
//! hard state / configuration that survive a reopen, a commit index in the state file
//! that may lag the applied one but never leads the log, a snapshot installation a
//! crash interrupted, finished at the next open, and a single broker's log adopted.

use std::sync::{Arc, RwLock};

mod common;

use bytes::Bytes;
use log_store::{Log, LogConfig};
use raft::eraftpb::{ConfState, Entry, EntryType, HardState};
use raft::{GetEntriesContext, Storage, StorageError};
use replication::LogStorage;

fn entry(index: u64, term: u64, kind: EntryType, data: Bytes) -> Entry {
    let mut e = Entry {
        index,
        term,
        data,
        ..Default::default()
    };
    e.set_entry_type(kind);
    e
}

fn data(index: u64, term: u64, records: usize) -> Entry {
    entry(
        index,
        term,
        EntryType::EntryNormal,
        common::batch(index, records),
    )
}

fn open(dir: &std::path::Path) -> LogStorage {
    let config = LogConfig {
        segment_bytes: 1024,
        ..LogConfig::default()
    };
    let log = Log::open(dir, config).unwrap();
    LogStorage::new(Arc::new(RwLock::new(log))).unwrap()
}

fn ctx() -> GetEntriesContext {
    GetEntriesContext::empty(false)
}

#[test]
fn entries_terms_and_bounds_follow_raft_rs_rules() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 0));
    assert_eq!(s.term(0).unwrap(), 0);

    let mut entries = vec![entry(1, 1, EntryType::EntryNormal, Bytes::new())];
    for i in 2..=20 {
        entries.push(data(i, 1 + i / 10, 3));
    }
    entries.push(entry(
        21,
        3,
        EntryType::EntryConfChangeV2,
        Bytes::from_static(b"cc"),
    ));
    s.append(&entries).unwrap();
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 21));
    for e in &entries {
        assert_eq!(s.term(e.index).unwrap(), e.term, "term of {}", e.index);
    }
    assert!(matches!(
        s.term(22),
        Err(raft::Error::Store(StorageError::Unavailable))
    ));

    let got = s.entries(1, 22, None, ctx()).unwrap();
    assert_eq!(got.len(), 21);
    assert_eq!(got[0].get_entry_type(), EntryType::EntryNormal);
    assert!(got[0].data.is_empty(), "the no-op keeps no data");
    assert_eq!(got[20].get_entry_type(), EntryType::EntryConfChangeV2);
    assert_eq!(&got[20].data[..], b"cc");
    // Data entries come back as stored: same length, offsets assigned in order, 3 each.
    for (i, e) in got[1..20].iter().enumerate() {
        assert_eq!(e.data.len(), entries[i + 1].data.len());
        let base = i64::from_be_bytes(e.data[..8].try_into().unwrap());
        assert_eq!(base, 3 * i as i64, "entry {}", e.index);
    }
    // max_size: always at least one entry, never more than fits.
    let one = s.entries(2, 22, 1, ctx()).unwrap();
    assert_eq!(one.len(), 1);
    let size = (entries[1].data.len() + 16) as u64;
    assert_eq!(s.entries(2, 22, size * 3, ctx()).unwrap().len(), 3);
    assert!(matches!(
        s.entries(2, 23, None, ctx()),
        Err(raft::Error::Store(StorageError::Unavailable))
    ));

    // Retention moves the first index: below it is compacted, the term just before stays.
    {
        let mut log = s.log().write().unwrap();
        log.delete_before(30).unwrap();
    }
    let first = s.first_index().unwrap();
    assert!(first > 1, "whole segments before offset 30 were deleted");
    assert!(matches!(
        s.entries(first - 1, first + 1, None, ctx()),
        Err(raft::Error::Store(StorageError::Compacted))
    ));
    assert_eq!(
        s.term(first - 1).unwrap(),
        entries[(first - 2) as usize].term
    );
    if first >= 3 {
        assert!(matches!(
            s.term(first - 2),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
    }
}

#[test]
fn conflicting_entries_truncate_the_suffix_and_offsets_rewind() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.append(&(1..=10).map(|i| data(i, 1, 2)).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(s.log().read().unwrap().next_offset(), 20);
    // A new leader in term 2 overwrites from index 6: offsets 10.. are reassigned.
    s.append(&[data(6, 2, 5), data(7, 2, 5)]).unwrap();
    assert_eq!(s.last_index().unwrap(), 7);
    assert_eq!(s.term(5).unwrap(), 1);
    assert_eq!(s.term(6).unwrap(), 2);
    assert_eq!(s.log().read().unwrap().next_offset(), 20);
    let e7 = &s.entries(7, 8, None, ctx()).unwrap()[0];
    assert_eq!(i64::from_be_bytes(e7.data[..8].try_into().unwrap()), 15);
    // Entries that skip an index are refused.
    assert!(s.append(&[data(9, 2, 1)]).is_err());
    assert_eq!(s.last_index().unwrap(), 7);
}

#[test]
fn hard_state_configuration_and_entries_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        s.append(&(1..=5).map(|i| data(i, 3, 1)).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(s.flush().unwrap(), 5);
        s.set_hard_state(&HardState {
            term: 3,
            vote: 2,
            commit: 4,
            ..Default::default()
        })
        .unwrap();
        s.set_conf_state(
            0,
            ConfState {
                voters: vec![1, 2, 3],
                ..Default::default()
            },
        )
        .unwrap();
        s.note_applied(5);
        assert!(s.save_commit_if_due(0).unwrap());
    }
    let s = open(dir.path());
    let state = s.initial_state().unwrap();
    assert_eq!(
        (
            state.hard_state.term,
            state.hard_state.vote,
            state.hard_state.commit
        ),
        (3, 2, 5)
    );
    assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
    assert_eq!(s.last_index().unwrap(), 5);
    assert_eq!(s.term(5).unwrap(), 3);
}

#[test]
fn the_saved_commit_lags_the_applied_index_and_is_kept_in_the_log_range() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        s.append(&(1..=60).map(|i| data(i, 1, 1)).collect::<Vec<_>>())
            .unwrap();
        s.flush().unwrap();
        s.set_hard_state(&HardState {
            term: 1,
            vote: 1,
            ..Default::default()
        })
        .unwrap();
        s.note_applied(3);
        assert!(s.save_commit_if_due(0).unwrap());
        // Applied further, but not due for a write yet: the file keeps 3.
        s.note_applied(9);
        assert!(!s.save_commit_if_due(100).unwrap());
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 9);
    }
    let s = open(dir.path());
    assert_eq!(s.initial_state().unwrap().hard_state.commit, 3);
    // Retention moved the log start past the saved commit: the commit rises to the
    // entry before the first (raft-rs refuses a commit below it).
    s.log().write().unwrap().delete_before(40).unwrap();
    drop(s);
    let s = open(dir.path());
    let first = s.first_index().unwrap();
    assert!(
        first > 4,
        "retention deleted the first segments (first {first})"
    );
    assert_eq!(s.initial_state().unwrap().hard_state.commit, first - 1);
}

#[test]
fn a_snapshot_install_cut_short_by_a_crash_is_finished_at_open() {
    use replication::storage::SnapshotData;
    let dir = tempfile::tempdir().unwrap();
    let snapshot = |index: u64, term: u64| {
        let mut snap = raft::eraftpb::Snapshot {
            data: SnapshotData {
                next_offset: 500,
                log_start_offset: 500,
            }
            .encode()
            .into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        });
        snap
    };
    for point in [
        "raft.snapshot.before_state",
        "raft.state.before_rename",
        "raft.snapshot.before_log_reset",
        "log.reset.before_segments",
    ] {
        let _ = std::fs::remove_dir_all(dir.path());
        std::fs::create_dir_all(dir.path()).unwrap();
        {
            let s = open(dir.path());
            s.append(&(1..=10).map(|i| data(i, 1, 1)).collect::<Vec<_>>())
                .unwrap();
            s.flush().unwrap();
            log_store::failpoint::arm(point, 0);
            assert!(s.apply_snapshot(&snapshot(40, 3)).is_err(), "{point}");
            assert_eq!(log_store::failpoint::take_fired(), vec![point]);
        }
        let s = open(dir.path());
        let state = s.initial_state().unwrap();
        let installed = s.first_index().unwrap() == 41;
        if point == "raft.snapshot.before_state" || point == "raft.state.before_rename" {
            // The commit point was not reached: the old log and state, untouched.
            assert!(!installed, "{point}");
            assert_eq!(s.last_index().unwrap(), 10, "{point}");
            assert!(state.conf_state.voters.is_empty(), "{point}");
        } else {
            // Past the commit point: the open finished the log restart.
            assert!(installed, "{point}");
            assert_eq!(s.last_index().unwrap(), 40, "{point}");
            assert_eq!(s.term(40).unwrap(), 3, "{point}");
            assert_eq!(s.log().read().unwrap().next_offset(), 500, "{point}");
            assert_eq!(state.hard_state.commit, 40, "{point}");
            assert_eq!(state.conf_state.voters, vec![1, 2, 3], "{point}");
        }
    }
}

/// A snapshot whose configuration does not name the receiver is installed by Strata, not
/// raft-rs: only when raft-rs would not ignore it for another reason. A deposed leader's
/// delayed snapshot (an older term) must not wipe the entries this replica holds; the
/// same snapshot from the current term is installed.
#[test]
fn a_snapshot_from_an_older_term_never_wipes_the_log() {
    use raft::eraftpb::{Message, MessageType};
    use replication::group::{discard_logger, Group, Timing};
    use replication::storage::SnapshotData;
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.append(&(1..=10).map(|i| data(i, 5, 1)).collect::<Vec<_>>())
        .unwrap();
    s.flush().unwrap();
    s.set_conf_state(
        0,
        ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        },
    )
    .unwrap();
    s.set_hard_state(&HardState {
        term: 5,
        vote: 1,
        ..Default::default()
    })
    .unwrap();
    let timing = Timing {
        jitter: false,
        ..Timing::default()
    };
    let mut g = Group::open_with(3, s.clone(), &[1, 2, 3], &discard_logger(), timing).unwrap();
    let snapshot_message = |term: u64| {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgSnapshot);
        m.from = 1;
        m.to = 3;
        m.term = term;
        let snap = m.mut_snapshot();
        snap.data = SnapshotData {
            next_offset: 500,
            log_start_offset: 500,
        }
        .encode()
        .into();
        let meta = snap.mut_metadata();
        meta.index = 50;
        meta.term = 4;
        meta.set_conf_state(ConfState {
            voters: vec![1, 2],
            ..Default::default()
        });
        m
    };
    g.step(snapshot_message(4)).unwrap();
    g.handle_ready().unwrap();
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 10));
    assert_eq!(g.snapshots_installed(), 0);
    g.step(snapshot_message(6)).unwrap();
    assert_eq!(g.snapshots_installed(), 1);
    assert_eq!(s.first_index().unwrap(), 51);
}

#[test]
fn a_sole_voter_leads_as_soon_as_it_opens() {
    // Fresh and reopened, a group whose only replica is this one elects itself in
    // `open`, before any tick; one with another voter waits for an election.
    use replication::group::{discard_logger, Group};
    let dir = tempfile::tempdir().unwrap();
    let mut solo = Group::open(1, open(&dir.path().join("solo")), &[1], &discard_logger()).unwrap();
    assert!(solo.is_leader());
    let term = solo.leader().1;
    solo.handle_ready().unwrap();
    drop(solo);
    let again = Group::open(1, open(&dir.path().join("solo")), &[1], &discard_logger()).unwrap();
    assert!(again.is_leader());
    assert!(again.leader().1 > term, "a new term for the new election");
    let pair = Group::open(
        1,
        open(&dir.path().join("pair")),
        &[1, 2],
        &discard_logger(),
    )
    .unwrap();
    assert!(!pair.is_leader());
}

#[test]
fn a_single_brokers_log_restamped_and_adopted_is_committed_and_led() {
    // A single broker's log: every entry term 0, everything acknowledged. Restamped
    // and adopted, its one voter serves all of it at once and leads new writes.
    use replication::group::{discard_logger, Group};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let mut log = Log::open(&path, LogConfig::default()).unwrap();
    for i in 0..20 {
        log.append(&common::batch(i, 2)).unwrap();
    }
    let (end, last) = (log.next_offset(), log.last_raft_index());
    log.close().unwrap();
    let unstamped = open(&path);
    let refused = unstamped.adopt(1).unwrap_err();
    assert!(
        refused.to_string().contains("restamp it first"),
        "{refused}"
    );
    let log = unstamped.log().clone();
    drop(unstamped);
    let log = Arc::try_unwrap(log).unwrap().into_inner().unwrap();
    log.close().unwrap();

    log_store::restamp_zero_terms(&path, 1).unwrap();
    let storage = open(&path);
    storage.adopt(1).unwrap();
    assert!(
        storage.adopt(1).is_err(),
        "a configured group is not adopted twice"
    );
    let state = storage.persisted();
    assert_eq!((state.hard.term, state.hard.commit), (1, last));
    assert_eq!(state.conf.voters, vec![1]);
    let mut g = Group::open(1, storage, &[1], &discard_logger()).unwrap();
    assert_eq!(
        g.committed_offset(),
        end,
        "everything readable before any write"
    );
    assert!(
        g.is_leader() && g.leader().1 > 1,
        "a new term for the new election"
    );
    g.handle_ready().unwrap();
    g.propose(common::batch(99, 3)).unwrap();
    g.handle_ready().unwrap();
    assert_eq!(g.committed_offset(), end + 3);
}

#[test]
fn only_vouched_entries_skip_the_crc_check() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut bytes = data(1, 1, 2).data.to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let bad = entry(1, 1, EntryType::EntryNormal, Bytes::from(bytes));
    assert!(
        s.append(std::slice::from_ref(&bad)).is_err(),
        "a bad CRC is refused"
    );
    assert!(s
        .append_vouched(std::slice::from_ref(&bad), |e| e.index == 2)
        .is_err());
    // Vouched for, its CRC is not computed: even this batch is written (a leader's own
    // proposals were validated when proposed, so this never happens to them).
    s.append_vouched(std::slice::from_ref(&bad), |e| e.index == 1)
        .unwrap();
    assert_eq!(s.last_index().unwrap(), 1);
}
