//! A node that lost its data directory rejoins without voting until it caught up, with
//! real nodes in one process over loopback TCP (the real transport).
//!
//! The scenario is the one a forgotten vote loses data in: three voters, entries
//! committed by nodes 1 and 3 while node 2 was down; then node 3's directory is wiped
//! and node 1 stops. Node 2 (behind) and the wiped node 3 are a majority. With the
//! wiped node voting, node 2 wins and the committed entries are gone; with the wiped
//! node rejoining, the two wait, and once node 1 is back nothing is lost and node 3
//! votes again.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

mod common;

use common::TICK;
use log_store::{Log, LogConfig};
use replication::group::GroupStatus;
use replication::local_cluster::LocalCluster;

const TIMEOUT: Duration = Duration::from_secs(30);
const GROUP: u64 = 1;
/// Entries committed while node 2 is down; 4 records each.
const COMMITTED: u64 = 40;

async fn propose_many(cluster: &LocalCluster, tags: std::ops::Range<u64>) {
    for n in tags {
        cluster
            .propose(GROUP, common::batch(n, 4).to_vec(), TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("proposal {n}: {e}"));
    }
}

/// Polls until `check` holds, failing with `what` after [`TIMEOUT`].
async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn status_of(cluster: &LocalCluster, id: u64) -> Option<GroupStatus> {
    cluster.status(GROUP).await.into_iter().find(|s| s.id == id)
}

fn next_offset(log: &Arc<RwLock<Log>>) -> u64 {
    log.read().unwrap().next_offset()
}

/// Commits [`COMMITTED`] entries on nodes 1 and 3 only, then wipes node 3 and stops
/// node 1, and starts nodes 2 and 3 again (3 from an empty directory).
async fn wiped_and_one_down(dir: &std::path::Path, rejoin: bool) -> LocalCluster {
    let config = LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    };
    let mut cluster = LocalCluster::start(dir, 3, 1, config, TICK).await.unwrap();
    cluster.stop(2).await;
    propose_many(&cluster, 0..COMMITTED).await;
    cluster.stop(3).await;
    cluster.stop(1).await;
    cluster.restart(2).await.unwrap();
    cluster.restart_wiped(3, rejoin).await.unwrap();
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_waits_for_the_majority_that_holds_the_commits() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = wiped_and_one_down(dir.path(), true).await;
    // Node 2 campaigns again and again; node 3 refuses every vote request.
    wait_for("node 3 refused three vote requests", async || {
        status_of(&cluster, 3)
            .await
            .is_some_and(|s| s.votes_refused >= 3)
    })
    .await;
    for s in cluster.status(GROUP).await {
        assert_eq!(s.leader, 0, "node {} knows a leader: {s:?}", s.id);
        assert_eq!(s.rejoining, s.id == 3, "{s:?}");
    }

    cluster.restart(1).await.unwrap();
    wait_for("node 3 caught up and votes again", async || {
        status_of(&cluster, 3).await.is_some_and(|s| !s.rejoining)
    })
    .await;
    let leader = cluster.leader(GROUP).await.expect("a leader");
    assert_eq!(leader, 1, "only node 1 holds the committed entries");
    assert!(
        next_offset(cluster.log(3, GROUP).unwrap()) >= COMMITTED * 4,
        "node 3 holds every committed record"
    );
    // Node 3 counts again: without node 1, nodes 2 and 3 elect and commit, and the
    // new leader holds every entry committed before the wipe.
    cluster.stop(1).await;
    propose_many(&cluster, COMMITTED..COMMITTED + 5).await;
    let leader = cluster.leader(GROUP).await.expect("a leader of 2 and 3");
    assert_eq!(
        next_offset(cluster.log(leader, GROUP).unwrap()),
        (COMMITTED + 5) * 4
    );
    cluster.shutdown();
}

/// What the rejoin prevents: the same faults with the wiped node voting at once elect
/// node 2, whose log lacks the committed entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_that_votes_at_once_loses_committed_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = wiped_and_one_down(dir.path(), false).await;
    wait_for("nodes 2 and 3 elect a leader", async || {
        cluster.leader(GROUP).await.is_some()
    })
    .await;
    let leader = cluster.leader(GROUP).await.expect("a leader");
    assert!(
        next_offset(cluster.log(leader, GROUP).unwrap()) < COMMITTED * 4,
        "the new leader lacks committed records"
    );
    cluster.shutdown();
}

/// A wiped follower under a leader that stays up: the leader still records the entries
/// the follower once acknowledged. The follower catches up and votes again. (Whether
/// the leader's record is stale when the follower returns depends on timing here: a
/// leader that saw sends fail already probes afresh. The soak test in tests/python,
/// whose wipe is quick, reproduced both the heartbeat that committed past the wiped log,
/// which raft-rs aborts on, and the leader that ignored the follower's rejections.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_follower_under_a_sitting_leader_gets_everything_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    };
    let mut cluster = LocalCluster::start(dir.path(), 3, 1, config, TICK)
        .await
        .unwrap();
    propose_many(&cluster, 0..COMMITTED).await;
    let leader = cluster.leader(GROUP).await.expect("a leader");
    let wiped = if leader == 3 { 2 } else { 3 };
    wait_for("the follower holds every entry", async || {
        next_offset(cluster.log(wiped, GROUP).unwrap()) == COMMITTED * 4
    })
    .await;
    cluster.stop(wiped).await;
    cluster.restart_wiped(wiped, true).await.unwrap();
    propose_many(&cluster, COMMITTED..COMMITTED + 5).await;
    wait_for("the wiped follower caught up and votes again", async || {
        status_of(&cluster, wiped)
            .await
            .is_some_and(|s| !s.rejoining)
            && next_offset(cluster.log(wiped, GROUP).unwrap()) == (COMMITTED + 5) * 4
    })
    .await;
    assert_eq!(cluster.live(), vec![1, 2, 3], "no node stopped");
    cluster.shutdown();
}
