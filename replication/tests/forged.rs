//! Raft frames are input from the network: a frame that is well formed but says
//! something no honest replica would (a commit past the log, an append rewriting
//! committed entries, an acknowledgement of entries the leader never wrote) must be
//! refused by the group it names, never panic the node task that drives every group of
//! the broker. Real nodes in one process over loopback TCP (the real transport, in
//! plaintext); the forger connects to a node's Raft port like a peer, with the hello of
//! the node its messages claim to be from.

use std::time::{Duration, Instant};

mod common;

use bytes::BytesMut;
use common::TICK;
use log_store::LogConfig;
use raft::eraftpb::{Entry, Message, MessageType};
use replication::local_cluster::LocalCluster;
use replication::transport::{encode_frame, Envelope, Hello};
use tokio::io::AsyncWriteExt;

const TIMEOUT: Duration = Duration::from_secs(30);
const GROUP: u64 = 1;

/// Connects to node `to` as node `from` (the cluster is plaintext without a cluster id,
/// so the hello is all it takes) and sends `messages`, which claim to be from `from`.
async fn send_forged(cluster: &LocalCluster, from: u64, to: u64, messages: Vec<Message>) {
    let addr = cluster.addr(to).expect("the node's address");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = BytesMut::new();
    let hello = Hello {
        node_id: from,
        cluster_id: String::new(),
    };
    hello.encode(&mut out).unwrap();
    conn.write_all(&out).await.unwrap();
    let answer = Hello::read(&mut conn)
        .await
        .expect("the node accepts the hello");
    assert_eq!(answer.node_id, to);
    out.clear();
    for message in messages {
        let envelope = Envelope {
            group: GROUP,
            message,
        };
        encode_frame(&envelope, &mut out).unwrap();
    }
    conn.write_all(&out).await.unwrap();
    conn.flush().await.unwrap();
}

fn message(kind: MessageType, from: u64, to: u64, term: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(kind);
    m.from = from;
    m.to = to;
    m.term = term;
    m
}

/// Polls until every node reports the group committed through at least `index`.
async fn all_committed(cluster: &LocalCluster, index: u64) -> bool {
    let status = cluster.status(GROUP).await;
    status.len() == 3 && status.iter().all(|s| s.committed_index >= index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_raft_frames_are_refused_and_the_group_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::start(dir.path(), 3, 1, LogConfig::default(), TICK)
        .await
        .unwrap();
    for n in 0..10 {
        cluster
            .propose(GROUP, common::batch(n, 2).to_vec(), TIMEOUT)
            .await
            .unwrap();
    }
    let leader = cluster.leader(GROUP).await.expect("a leader");
    let status = cluster.status(GROUP).await;
    let term = status[0].term;
    let committed = status.iter().map(|s| s.committed_index).min().unwrap();
    let follower = cluster.live().into_iter().find(|&id| id != leader).unwrap();

    // To a follower, as its leader: a heartbeat committing past its log, and an append
    // that rewrites committed entry 1 in a later term.
    let mut heartbeat = message(MessageType::MsgHeartbeat, leader, follower, term);
    heartbeat.commit = u64::MAX;
    let mut rewrite = message(MessageType::MsgAppend, leader, follower, term);
    let entry = Entry {
        index: 1,
        term: term + 1000,
        ..Default::default()
    };
    rewrite.entries = vec![entry].into();
    let mut gap = message(MessageType::MsgAppend, leader, follower, term);
    let far = Entry {
        index: u64::MAX,
        term,
        ..Default::default()
    };
    gap.index = u64::MAX - 1;
    gap.log_term = term;
    gap.entries = vec![far].into();
    send_forged(&cluster, leader, follower, vec![heartbeat, rewrite, gap]).await;
    // To the leader, as a follower: an acknowledgement of entries never written.
    let mut ack = message(MessageType::MsgAppendResponse, follower, leader, term);
    ack.index = u64::MAX;
    send_forged(&cluster, follower, leader, vec![ack]).await;

    // Each message that would have panicked raft-rs is refused and counted.
    let refused = |id| {
        let stats = cluster.transport_stats(id).unwrap();
        stats.refused.load(std::sync::atomic::Ordering::Relaxed)
    };
    let deadline = Instant::now() + TIMEOUT;
    while (refused(follower), refused(leader)) != (1, 1) {
        assert!(
            Instant::now() < deadline,
            "refusals counted: follower {}, leader {}",
            refused(follower),
            refused(leader)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Every node still drives the group: new proposals commit everywhere, and the
    // committed prefix is intact.
    for n in 10..15 {
        cluster
            .propose(GROUP, common::batch(n, 2).to_vec(), TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("proposal {n} after the forged frames: {e}"));
    }
    let deadline = Instant::now() + TIMEOUT;
    while !all_committed(&cluster, committed + 5).await {
        assert!(
            Instant::now() < deadline,
            "the group did not commit on every node: {:?}",
            cluster.status(GROUP).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in cluster.live() {
        let log = cluster.log(id, GROUP).unwrap().read().unwrap();
        assert_eq!(
            log.next_offset(),
            30,
            "node {id} holds 15 batches of 2 records"
        );
    }
    cluster.shutdown();
}
