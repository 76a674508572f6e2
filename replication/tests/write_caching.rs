//! Write caching (`Group::set_write_caching`): appends count as persisted once written,
//! so a lone voter commits before its flush and a follower acknowledges before its
//! flush; the flush still follows. And the crash order it allows: a process crash keeps
//! what was written (the page cache survives it), and a power loss that takes the
//! unflushed tail leaves a replica that opens, with its saved commit index brought back
//! into the log, and goes on.

use std::sync::{Arc, RwLock};
use std::time::Duration;

mod common;

use log_store::{Log, LogConfig};
use raft::eraftpb::{Message, MessageType};
use replication::group::{discard_logger, FlushPolicy, Group, WriteCaching};
use replication::LogStorage;

fn open(dir: &std::path::Path, voters: &[u64], id: u64) -> Group {
    let log = Log::open(dir, LogConfig::default()).unwrap();
    let storage = LogStorage::new(Arc::new(RwLock::new(log))).unwrap();
    Group::open(id, storage, voters, &discard_logger()).unwrap()
}

fn caching() -> WriteCaching {
    WriteCaching::new(Some(FlushPolicy {
        flush_after: Duration::from_millis(100),
        flush_bytes: 1 << 20,
    }))
}

fn flushed_index(g: &Group) -> u64 {
    g.storage().log().read().unwrap().flushed_raft_index()
}

fn last_index(g: &Group) -> u64 {
    g.storage().log().read().unwrap().last_raft_index()
}

#[test]
fn a_caching_lone_voter_commits_before_its_flush_and_still_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = open(dir.path(), &[1], 1);
    g.handle_ready().unwrap();
    g.set_write_caching(caching());
    let p = g.propose(common::batch(1, 5)).unwrap();
    let out = g.handle_ready_deferred().unwrap();
    assert!(
        out.committed.iter().any(|e| e.index == p.index),
        "committed in the same call, before any flush"
    );
    assert_eq!(g.committed_index(), p.index);
    assert_eq!(g.committed_offset(), 5);
    assert!(flushed_index(&g) < p.index, "not flushed yet");
    let (policy, bytes) = g.write_cached();
    assert!(policy.is_some());
    assert!(bytes > 0, "the written bytes wait for the flush");
    let job = g.flush_job().expect("the background flush is still owed");
    job.run().unwrap();
    g.flushed(&job);
    assert_eq!(flushed_index(&g), p.index);
    assert_eq!(g.write_cached().1, 0);
    assert!(g.flush_job().is_none());

    // Off again: the next append commits only after its flush.
    g.set_write_caching(WriteCaching::default());
    let p = g.propose(common::batch(2, 5)).unwrap();
    let out = g.handle_ready_deferred().unwrap();
    assert!(out.committed.iter().all(|e| e.index != p.index));
    assert!(g.committed_index() < p.index);
    let job = g.flush_job().expect("a flush to wait for");
    job.run().unwrap();
    g.flushed(&job);
    g.handle_ready_deferred().unwrap();
    assert_eq!(g.committed_index(), p.index);
}

/// Delivers messages between two replicas until neither has anything to say, flushing
/// every Ready (`handle_ready`).
fn settle(groups: &mut [Group; 2]) {
    let mut pending: Vec<Message> = Vec::new();
    for _ in 0..100 {
        for g in groups.iter_mut() {
            pending.extend(g.handle_ready().unwrap().messages);
        }
        if pending.is_empty() {
            return;
        }
        for m in pending.drain(..) {
            let to = usize::try_from(m.to - 1).unwrap();
            groups[to].step(m).unwrap();
        }
    }
    panic!("two replicas never settled");
}

fn append_acks(messages: &[Message]) -> usize {
    messages
        .iter()
        .filter(|m| m.get_msg_type() == MessageType::MsgAppendResponse && !m.reject)
        .count()
}

#[test]
fn a_caching_follower_acknowledges_before_its_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut groups = [
        open(&dir.path().join("1"), &[1, 2], 1),
        open(&dir.path().join("2"), &[1, 2], 2),
    ];
    groups[0].campaign().unwrap();
    settle(&mut groups);
    assert!(groups[0].is_leader());
    for cached in [false, true] {
        if cached {
            groups[1].set_write_caching(caching());
        }
        let p = groups[0]
            .propose(common::batch(u64::from(cached), 3))
            .unwrap();
        let appends = groups[0].handle_ready().unwrap().messages;
        assert!(!appends.is_empty());
        for m in appends {
            groups[1].step(m).unwrap();
        }
        let out = groups[1].handle_ready_deferred().unwrap();
        if cached {
            assert_eq!(append_acks(&out.messages), 1, "acknowledged at once");
        } else {
            assert_eq!(append_acks(&out.messages), 0, "held for the flush");
        }
        assert!(flushed_index(&groups[1]) < p.index, "not flushed yet");
        let job = groups[1].flush_job().expect("a flush is owed either way");
        job.run().unwrap();
        let released = groups[1].flushed(&job);
        assert_eq!(append_acks(&released), usize::from(!cached));
        assert_eq!(flushed_index(&groups[1]), p.index);
        for m in out.messages.into_iter().chain(released) {
            groups[0].step(m).unwrap();
        }
        settle(&mut groups);
        assert_eq!(groups[0].committed_index(), p.index);
    }
}

#[test]
fn a_process_crash_keeps_cached_entries_and_a_power_loss_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = open(dir.path(), &[1], 1);
    g.handle_ready().unwrap();
    g.set_write_caching(caching());
    let flushed = last_index(&g);
    let mut last = None;
    for tag in 0..4 {
        last = Some(g.propose(common::batch(tag, 2)).unwrap());
        g.handle_ready_deferred().unwrap();
    }
    let last = last.unwrap();
    assert_eq!(g.committed_index(), last.index);
    // The state file learns the applied index, ahead of the durable log.
    g.save_commit().unwrap();
    assert!(flushed_index(&g) < last.index);
    drop(g);

    // A process crash: what was written is in the page cache, and reads back.
    let g = open(dir.path(), &[1], 1);
    assert!(last_index(&g) >= last.index);
    assert_eq!(g.committed_offset(), 8);
    drop(g);

    // A power loss: the entries past the last flush are gone. The replica opens, its
    // saved commit brought back into the log, and takes writes again.
    {
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        log.truncate_from_raft_index(flushed + 1).unwrap();
        log.flush().unwrap();
    }
    let mut g = open(dir.path(), &[1], 1);
    assert!(g.committed_index() <= flushed + 1, "commit within the log");
    assert_eq!(
        g.committed_offset(),
        0,
        "the cached records went with the power"
    );
    g.handle_ready().unwrap();
    let p = g.propose(common::batch(9, 2)).unwrap();
    g.handle_ready().unwrap();
    assert_eq!(g.committed_index(), p.index);
    assert_eq!(g.committed_offset(), 2);
}
