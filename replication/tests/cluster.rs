//! Three Raft nodes in one process, talking over loopback TCP through the real
//! transport: proposals to several groups commit with identical offsets on every replica,
//! and the groups keep committing when one node stops.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

mod common;

use bytes::Bytes;
use common::TICK;
use log_store::{Log, LogConfig};
use replication::group::{AuditEntry, ProposeError};
use replication::local_cluster::LocalCluster;
use replication::node::Ack;

const GROUPS: u64 = 4;
const TIMEOUT: Duration = Duration::from_secs(30);

/// (term, bytes) of every entry in a log.
fn entries(log: &Arc<RwLock<Log>>) -> Vec<(u64, Bytes)> {
    let log = log.read().unwrap();
    (log.first_raft_index()..=log.last_raft_index())
        .map(|i| (log.term_of(i).unwrap(), log.entry_payload(i).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_commit_everywhere_and_survive_a_stopped_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::start(dir.path(), 3, GROUPS, LogConfig::default(), TICK)
        .await
        .unwrap();
    for n in 0..50 {
        for g in 1..=GROUPS {
            cluster
                .propose(g, common::batch(n, 1).to_vec(), TIMEOUT)
                .await
                .unwrap();
        }
    }
    // acks=1: resolves once the leader appended it, with the batch's base offset.
    let leader = cluster.leader(1).await.expect("a leader");
    let c = cluster
        .handle(leader)
        .unwrap()
        .propose(1, common::batch(50, 1).to_vec(), Ack::Leader)
        .await
        .unwrap();
    assert_eq!(c.base_offset, 50);
    // acks=1 is answered before the entry is even written: it is lost if the leader
    // stops first. This test stops node 1 next, so wait until the entry committed.
    let mut view = cluster.handle(leader).unwrap().watch(1).await.unwrap();
    tokio::time::timeout(TIMEOUT, view.wait_for(|v| v.committed_offset >= 51))
        .await
        .expect("the acks=1 batch commits")
        .unwrap();
    // acks=all on a follower is refused with the leader's id.
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let refused = cluster
        .handle(follower)
        .unwrap()
        .propose(1, common::batch(51, 1).to_vec(), Ack::Quorum)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ProposeError::NotLeader { leader: l } if l == leader || l == 0),
        "{refused:?}"
    );
    // Stop node 1; the others still form a quorum for every group.
    cluster.stop(1).await;
    for n in 50..80 {
        for g in 1..=GROUPS {
            if g == 1 && n == 50 {
                continue; // proposed above with acks=1
            }
            let c = cluster
                .propose(g, common::batch(n, 1).to_vec(), TIMEOUT)
                .await
                .unwrap();
            assert!(
                c.high_watermark > n,
                "group {g}: high watermark {} after proposal {n}",
                c.high_watermark
            );
        }
    }
    // Both live replicas of each group receive all 80 batches (followers may trail the
    // leader's commit briefly) ...
    let deadline = Instant::now() + TIMEOUT;
    for g in 1..=GROUPS {
        for id in [2, 3] {
            let log = cluster.log(id, g).unwrap();
            while log.read().unwrap().next_offset() < 80 {
                assert!(
                    Instant::now() < deadline,
                    "node {id} group {g} never caught up"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // ... and hold identical entries (bytes, so offsets too) up to the shorter log.
    for g in 1..=GROUPS {
        let a = entries(cluster.log(2, g).unwrap());
        let b = entries(cluster.log(3, g).unwrap());
        let common = a.len().min(b.len());
        assert_eq!(a[..common], b[..common], "group {g}");
    }
    cluster.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_groups_go_quiet_and_wake_when_their_leaders_node_dies() {
    let dir = tempfile::tempdir().unwrap();
    let groups = 12;
    let mut cluster = LocalCluster::start(dir.path(), 3, groups, LogConfig::default(), TICK)
        .await
        .unwrap();
    for g in 1..=groups {
        cluster
            .propose(g, common::batch(g, 1).to_vec(), TIMEOUT)
            .await
            .unwrap();
    }
    // Idle: every replica of every group goes quiet.
    let all_quiet = async |cluster: &LocalCluster, nodes: &[u64]| {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let mut quiet = 0;
            for &id in nodes {
                let s = cluster.handle(id).unwrap().status().await;
                quiet += s.iter().filter(|s| s.quiesced).count();
            }
            if quiet == nodes.len() * groups as usize {
                return;
            }
            if Instant::now() >= deadline {
                let mut all = Vec::new();
                for &id in nodes {
                    all.extend(cluster.handle(id).unwrap().status().await);
                }
                panic!("only {quiet} replicas went quiet: {all:#?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    all_quiet(&cluster, &[1, 2, 3]).await;
    // Stop the node leading the most groups: its groups' followers wake and elect.
    let mut led = [0usize; 4];
    for g in 1..=groups {
        led[cluster.leader(g).await.unwrap() as usize] += 1;
    }
    let victim = (1..=3).max_by_key(|&id| led[id as usize]).unwrap() as u64;
    assert!(led[victim as usize] > 0);
    cluster.stop(victim).await;
    for g in 1..=groups {
        let c = cluster
            .propose(g, common::batch(100 + g, 1).to_vec(), TIMEOUT)
            .await
            .unwrap();
        assert_eq!(c.base_offset, 1, "group {g}");
    }
    let live: Vec<u64> = cluster.live();
    all_quiet(&cluster, &live).await;
    // A quiet group takes a proposal at once (the command wakes it).
    cluster
        .propose(1, common::batch(200, 1).to_vec(), TIMEOUT)
        .await
        .unwrap();
    cluster.shutdown();
}

/// What a broker uses: a view of each group that follows leadership and the commit
/// point, proposals answered on append and again on commit, and records forwarded by a
/// follower to the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_tracked_proposals_and_forwarding() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(dir.path(), 3, 1, LogConfig::default(), TICK)
        .await
        .unwrap();
    cluster
        .propose(1, common::batch(0, 2).to_vec(), TIMEOUT)
        .await
        .unwrap();
    let leader = cluster.leader(1).await.expect("a leader");
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let mut view = cluster.handle(follower).unwrap().watch(1).await.unwrap();
    assert!(cluster.handle(follower).unwrap().watch(99).await.is_none());
    let seen = *tokio::time::timeout(TIMEOUT, view.wait_for(|v| v.committed_offset == 2))
        .await
        .expect("the follower's view reaches the first batch")
        .unwrap();
    assert_eq!(seen.leader, leader);
    assert!(!seen.is_leader);

    // Tracked: the offsets first, then the commit.
    let tracked = cluster
        .handle(leader)
        .unwrap()
        .propose_tracked(1, common::batch(2, 3).to_vec(), Ack::Quorum)
        .await
        .unwrap();
    assert_eq!(tracked.appended.base_offset, 2);
    let committed = tokio::time::timeout(TIMEOUT, tracked.committed)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(committed.index, tracked.appended.index);
    assert!(committed.high_watermark >= 5);
    // Several proposals in one turn learn their offsets before the turn writes them;
    // the log gives them exactly those.
    let h = cluster.handle(leader).unwrap().clone();
    let sizes = [2usize, 1, 4, 3];
    let tasks: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let h = h.clone();
            let batch = common::batch(100 + i as u64, n).to_vec();
            tokio::spawn(async move { (n, h.propose_tracked(1, batch, Ack::Quorum).await) })
        })
        .collect();
    let mut ordered = Vec::new();
    for t in tasks {
        let (n, tracked) = t.await.unwrap();
        ordered.push((n, tracked.unwrap()));
    }
    ordered.sort_by_key(|(_, t)| t.appended.index);
    let mut expected = 5;
    for (n, t) in ordered {
        let predicted = t.appended.base_offset;
        let done = tokio::time::timeout(TIMEOUT, t.committed)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(done.base_offset, predicted, "the log gave other offsets");
        assert_eq!(predicted, expected);
        expected += n as u64;
    }
    // A follower cannot track a proposal...
    assert!(matches!(
        cluster
            .handle(follower)
            .unwrap()
            .propose_tracked(1, common::batch(5, 1).to_vec(), Ack::Quorum)
            .await,
        Err(ProposeError::NotLeader { .. })
    ));
    // ...but can forward one, which the leader appends and everyone commits.
    cluster
        .handle(follower)
        .unwrap()
        .forward(1, common::batch(5, 1).to_vec())
        .await
        .unwrap();
    let after = expected + 1;
    tokio::time::timeout(TIMEOUT, view.wait_for(|v| v.committed_offset == after))
        .await
        .expect("the forwarded batch commits")
        .unwrap();
}

/// Three nodes running group 1 with `batches` batches committed: the cluster, the
/// leader's id and its handle.
async fn one_group_of(
    dir: &std::path::Path,
    config: LogConfig,
    batches: u64,
) -> (LocalCluster, u64, replication::node::NodeHandle) {
    let cluster = LocalCluster::start(dir, 3, 1, config, TICK).await.unwrap();
    for n in 0..batches {
        cluster
            .propose(1, common::batch(n, 1).to_vec(), TIMEOUT)
            .await
            .unwrap();
    }
    let leader = cluster.leader(1).await.expect("a leader");
    let h = cluster.handle(leader).unwrap().clone();
    (cluster, leader, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_start_moves_on_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, leader, h) = one_group_of(dir.path(), LogConfig::default(), 30).await;
    let done = h.move_log_start(1, 20).await.unwrap();
    assert!(done.high_watermark >= 30);
    assert_eq!(
        cluster
            .log(leader, 1)
            .unwrap()
            .read()
            .unwrap()
            .log_start_offset(),
        20,
        "the leader applied it before answering"
    );
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    assert!(matches!(
        cluster
            .handle(follower)
            .unwrap()
            .move_log_start(1, 25)
            .await,
        Err(ProposeError::NotLeader { .. })
    ));
    let deadline = Instant::now() + TIMEOUT;
    for id in 1..=3 {
        let log = cluster.log(id, 1).unwrap();
        while log.read().unwrap().log_start_offset() != 20 {
            assert!(
                Instant::now() < deadline,
                "node {id}: log start never moved"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // The entry takes no offset: the next batch continues at 30.
    let c = h
        .propose(1, common::batch(30, 1).to_vec(), Ack::Quorum)
        .await
        .unwrap();
    assert_eq!(c.base_offset, 30);
    cluster.shutdown();
}

/// A lone voter (one replica, whose own flush commits) may hold its flush while nobody
/// waits for a commit, yet every entry commits: a proposal that only tracks its commit
/// resolves with nobody hurrying, `hurry` and an acks=all proposal commit what came
/// before them, and the offsets are the ones predicted on append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_voter_commits_without_being_hurried() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::start(dir.path(), 1, 1, LogConfig::default(), TICK)
        .await
        .unwrap();
    cluster
        .propose(1, common::batch(0, 2).to_vec(), TIMEOUT)
        .await
        .unwrap();
    let h = cluster.handle(1).unwrap().clone();
    let commit = |t: replication::node::Tracked| async move {
        tokio::time::timeout(TIMEOUT, t.committed)
            .await
            .expect("the entry commits")
            .unwrap()
            .unwrap()
    };

    let lazy = h
        .propose_tracked(1, common::batch(2, 3).to_vec(), Ack::Eventually)
        .await
        .unwrap();
    assert_eq!(lazy.appended.base_offset, 2);
    let done = commit(lazy).await;
    assert_eq!(done.base_offset, 2);
    assert!(done.high_watermark >= 5);

    let lazy = h
        .propose_tracked(1, common::batch(5, 1).to_vec(), Ack::Eventually)
        .await
        .unwrap();
    h.hurry(1);
    assert_eq!(commit(lazy).await.base_offset, 5);

    let first = h
        .propose_tracked(1, common::batch(6, 2).to_vec(), Ack::Eventually)
        .await
        .unwrap();
    let second = h
        .propose_tracked(1, common::batch(8, 1).to_vec(), Ack::Quorum)
        .await
        .unwrap();
    let second = commit(second).await;
    assert_eq!(second.base_offset, 8);
    assert!(second.high_watermark >= 9);
    assert_eq!(commit(first).await.base_offset, 6);
    let log = cluster.log(1, 1).unwrap().read().unwrap().next_offset();
    assert_eq!(log, 9);
    cluster.shutdown();
}

/// An audit log's tree head travels through Raft as a non-data entry (it takes no
/// offset, and keeps its kind when sent from the log): every replica records it and
/// checks it against its own tree, so a head that no replica's tree agrees with is
/// caught on each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_heads_are_checked_on_every_replica() {
    use log_store::merkle::{LoggedHead, TreeHead};
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        audit: true,
        retention_ms: None,
        ..LogConfig::default()
    };
    let (mut cluster, leader, h) = one_group_of(dir.path(), config, 10).await;
    let own = cluster
        .log(leader, 1)
        .unwrap()
        .read()
        .unwrap()
        .audit_head(10)
        .unwrap();
    let head = |root| LoggedHead {
        head: TreeHead {
            topic: "t".into(),
            partition: 0,
            tree_size: own.size,
            root,
            last_offset: own.last_offset,
            timestamp_ms: 1,
        },
        signature: None,
    };
    h.log_audit_entry(1, AuditEntry::Head(head(own.root).encode()))
        .await
        .unwrap();
    h.log_audit_entry(1, AuditEntry::Head(head([9; 32]).encode()))
        .await
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    for id in 1..=3 {
        let log = cluster.log(id, 1).unwrap();
        while log.read().unwrap().audit_heads().len() < 2 {
            assert!(Instant::now() < deadline, "node {id}: heads never arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let log = log.read().unwrap();
        assert_eq!(log.audit_heads()[0].root, own.root);
        let d = log.audit_divergence().expect("the wrong head is caught");
        assert_eq!(d.raft_index, log.audit_heads()[1].raft_index);
        assert_eq!(d.own_root, Some(own.root));
    }
    let c = h
        .propose(1, common::batch(10, 1).to_vec(), Ack::Quorum)
        .await
        .unwrap();
    assert_eq!(c.base_offset, 10, "heads take no offset");
    cluster.shutdown();
}
