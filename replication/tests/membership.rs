//! Catch-up by snapshot, membership change and leadership transfer, with real nodes in
//! one process over loopback TCP (the real transport):
//!
//! - a follower stopped while the others' retention deleted what it missed is caught up
//!   by a snapshot and ends with the leader's retained log, offsets included;
//! - a replica on a new node is added as a learner (initialized by a snapshot although
//!   the configuration at the leader's log start predates it), promoted while a voter
//!   is removed in one joint-consensus change, and then counts in the quorum;
//! - leadership moves where it is asked to, and the balancing plan evens it out.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

mod common;

use bytes::Bytes;
use common::TICK;
use log_store::{Log, LogConfig};
use replication::balance::plan_leader_transfers;
use replication::group::MemberChange;
use replication::local_cluster::LocalCluster;

const TIMEOUT: Duration = Duration::from_secs(30);

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    }
}

/// (raft index, term, bytes) of every entry a log holds.
fn entries(log: &Arc<RwLock<Log>>) -> Vec<(u64, u64, Bytes)> {
    let log = log.read().unwrap();
    (log.first_raft_index()..=log.last_raft_index())
        .map(|i| (i, log.term_of(i).unwrap(), log.entry_payload(i).unwrap()))
        .collect()
}

async fn propose_many(cluster: &LocalCluster, group: u64, tags: std::ops::Range<u64>) {
    for n in tags {
        cluster
            .propose(group, common::batch(n, 4).to_vec(), TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("proposal {n}: {e}"));
    }
}

/// Retention on node `id`: the log start moves to `offset`; closed segments wholly
/// before it go.
fn retain_from(cluster: &LocalCluster, id: u64, group: u64, offset: u64) {
    let mut log = cluster.log(id, group).unwrap().write().unwrap();
    log.delete_before(offset).unwrap();
}

/// Polls until `check` holds, failing with `what` after [`TIMEOUT`].
async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until node `id`'s log of `group` holds the same entries as node `like`'s,
/// from `like`'s first retained entry on.
async fn wait_same_log(cluster: &LocalCluster, group: u64, id: u64, like: u64) {
    wait_for(&format!("node {id} holds node {like}'s log"), async || {
        let want = entries(cluster.log(like, group).unwrap());
        let got = entries(cluster.log(id, group).unwrap());
        !want.is_empty() && want == got
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_retention_catches_up_by_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::start(dir.path(), 3, 1, small_segments(), TICK)
        .await
        .unwrap();
    propose_many(&cluster, 1, 0..20).await;
    cluster.stop(3).await;
    propose_many(&cluster, 1, 20..200).await;
    // Both live replicas delete what node 3 has not seen yet.
    for id in [1, 2] {
        retain_from(&cluster, id, 1, 600);
        let first = cluster
            .log(id, 1)
            .unwrap()
            .read()
            .unwrap()
            .first_raft_index();
        assert!(first > 30, "retention left node {id}'s log at {first}");
    }
    cluster.restart(3).await.unwrap();
    propose_many(&cluster, 1, 200..210).await;
    let leader = cluster.leader(1).await.expect("a leader");
    assert_ne!(
        leader, 3,
        "a replica behind the others cannot win an election"
    );
    wait_same_log(&cluster, 1, 3, leader).await;
    {
        let log = cluster.log(3, 1).unwrap().read().unwrap();
        assert_eq!(log.next_offset(), 210 * 4);
        assert!(log.log_start_offset() <= 600);
    }
    // It counts in the quorum again: stop another node and keep committing.
    let other = if leader == 1 { 2 } else { 1 };
    cluster.stop(other).await;
    propose_many(&cluster, 1, 210..215).await;
    cluster.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_is_added_promoted_and_replaces_a_voter() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::start(dir.path(), 3, 1, small_segments(), TICK)
        .await
        .unwrap();
    propose_many(&cluster, 1, 0..150).await;
    // The leader's log no longer starts at the group's beginning.
    for id in 1..=3 {
        retain_from(&cluster, id, 1, 300);
    }
    cluster.add_node(4).await.unwrap();
    cluster.add_replica(4, 1).await.unwrap();
    let leader = cluster.leader(1).await.expect("a leader");
    let h = cluster.handle(leader).unwrap().clone();
    h.change_membership(1, vec![MemberChange::AddLearner(4)])
        .await
        .unwrap();
    wait_same_log(&cluster, 1, 4, leader).await;
    // Promote 4 and remove a follower in one joint change.
    let removed = (1..=3).find(|&id| id != leader).unwrap();
    h.change_membership(
        1,
        vec![MemberChange::AddVoter(4), MemberChange::Remove(removed)],
    )
    .await
    .unwrap();
    wait_for("the joint configuration is left", async || {
        let s = cluster.status(1).await;
        let mine = s.iter().find(|s| s.id == leader).unwrap();
        !mine.joint && mine.voters.contains(&4) && !mine.voters.contains(&removed)
    })
    .await;
    // With `removed` stopped and one more voter stopped, 4 is needed for a quorum of
    // the new configuration: commits prove it votes.
    cluster.stop(removed).await;
    propose_many(&cluster, 1, 150..160).await;
    let third = (1..=3).find(|&id| id != leader && id != removed).unwrap();
    cluster.stop(third).await;
    propose_many(&cluster, 1, 160..165).await;
    wait_same_log(&cluster, 1, 4, leader).await;
    // A second change while one is under way is refused, not silently dropped: the
    // group accepts one at a time (here: none is pending, so this one goes through).
    h.change_membership(1, vec![MemberChange::AddLearner(third)])
        .await
        .unwrap();
    cluster.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_on_request_and_the_plan_evens_it_out() {
    let dir = tempfile::tempdir().unwrap();
    let groups = 6;
    let mut cluster = LocalCluster::start(dir.path(), 3, groups, LogConfig::default(), TICK)
        .await
        .unwrap();
    for g in 1..=groups {
        propose_many(&cluster, g, 0..3).await;
    }
    // Move group 1's leadership somewhere else.
    let from = cluster.leader(1).await.unwrap();
    let to = if from == 3 { 1 } else { from + 1 };
    cluster
        .handle(from)
        .unwrap()
        .transfer_leader(1, to)
        .await
        .unwrap();
    wait_for("group 1 is led by the transferee", async || {
        cluster.leader(1).await == Some(to)
    })
    .await;
    // Balance: execute the plan until there is nothing left to move.
    wait_for("every node leads two groups", async || {
        let mut statuses = Vec::new();
        for g in 1..=groups {
            statuses.extend(
                cluster
                    .status(g)
                    .await
                    .into_iter()
                    .filter(|s| s.leader == s.id),
            );
        }
        let plan = plan_leader_transfers(&statuses, &cluster.live());
        if plan.is_empty() {
            let mut led = std::collections::HashMap::<u64, usize>::new();
            statuses
                .iter()
                .for_each(|s| *led.entry(s.id).or_default() += 1);
            return statuses.len() == groups as usize && led.values().all(|&n| n == 2);
        }
        for t in plan {
            let _ = cluster
                .handle(t.from)
                .unwrap()
                .transfer_leader(t.group, t.to)
                .await;
        }
        false
    })
    .await;
    cluster.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_membership_change_waits_for_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::start(dir.path(), 3, 1, LogConfig::default(), TICK)
        .await
        .unwrap();
    propose_many(&cluster, 1, 0..3).await;
    cluster.add_node(4).await.unwrap();
    cluster.add_replica(4, 1).await.unwrap();
    let leader = cluster.leader(1).await.unwrap();
    let h = cluster.handle(leader).unwrap().clone();
    let first = h.change_membership(1, vec![MemberChange::AddLearner(4)]);
    let second = h.change_membership(1, vec![MemberChange::AddVoter(4)]);
    let (a, b) = tokio::join!(first, second);
    a.unwrap();
    assert_eq!(
        b.unwrap_err(),
        replication::group::ProposeError::ChangeInProgress
    );
    cluster.shutdown();
}
