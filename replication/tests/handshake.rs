//! The transport's handshake over plaintext loopback TCP: a node reads a connection only
//! from a peer of its own cluster that is not itself, answers it with its own hello,
//! and refuses (closes, counts) everything else, including silence; a connector refuses
//! a node that answers for another id; and a message whose `from` is not the node of
//! its connection is dropped and counted.

mod common;
#[path = "common/serving.rs"]
mod serving;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::eventually;
use raft::eraftpb::Message;
use replication::transport::{
    encode_frame, Envelope, Hello, Transport, TransportSecurity, MAX_HANDSHAKES_PER_ADDRESS,
    MAX_INBOUND_CONNECTIONS,
};
use serving::{node, Node};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

const CLUSTER: &str = "handshake-test";

impl Node {
    fn refused(&self) -> u64 {
        self.transport
            .stats()
            .refused_connections
            .load(Ordering::Relaxed)
    }
}

fn plaintext(cluster: &str, id: u64) -> TransportSecurity {
    TransportSecurity::plaintext(cluster, id).unwrap()
}

/// Connects to `addr`, sends `bytes` and reads a hello back: `None` when the node
/// closed the connection instead.
async fn send_and_read_answer(addr: SocketAddr, bytes: &[u8]) -> (TcpStream, Option<Hello>) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(bytes).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(20), Hello::read(&mut conn))
        .await
        .expect("the node answers or closes in time")
        .ok();
    (conn, answer)
}

fn hello(node_id: u64, cluster_id: &str) -> BytesMut {
    let mut out = BytesMut::new();
    let hello = Hello {
        node_id,
        cluster_id: cluster_id.into(),
    };
    hello.encode(&mut out).unwrap();
    out
}

fn message(from: u64, to: u64, commit: u64) -> Message {
    Message {
        from,
        to,
        commit,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_is_answered_and_its_spoofed_messages_are_dropped() {
    let mut node = node(plaintext(CLUSTER, 2), &[(1, None), (3, None)]).await;
    let (mut conn, answer) = send_and_read_answer(node.addr, &hello(1, CLUSTER)).await;
    let expected = Hello {
        node_id: 2,
        cluster_id: CLUSTER.into(),
    };
    assert_eq!(answer, Some(expected));

    // Node 1's connection carries a message claiming to be node 3's, then its own.
    let mut out = BytesMut::new();
    for m in [message(3, 2, 7), message(1, 2, 8)] {
        encode_frame(
            &Envelope {
                group: 5,
                message: m,
            },
            &mut out,
        )
        .unwrap();
    }
    conn.write_all(&out).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), node.rx.recv())
        .await
        .expect("node 1's own message arrives")
        .unwrap();
    assert_eq!((got.group, got.message.from, got.message.commit), (5, 1, 8));
    let stats = node.transport.stats();
    // Frames are read in order: the spoofed one was dropped before the real one arrived.
    assert_eq!(stats.spoofed.load(Ordering::Relaxed), 1);
    assert_eq!(stats.received.load(Ordering::Relaxed), 1);
    assert_eq!(node.refused(), 0);
    assert!(node.rx.try_recv().is_err(), "nothing else was delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_hellos_are_refused_and_counted() {
    let mut node = node(plaintext(CLUSTER, 2), &[(1, None)]).await;
    let mut newer = hello(1, CLUSTER);
    newer[4..6].copy_from_slice(&2u16.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("another cluster", hello(1, "another").to_vec()),
        ("no cluster id", hello(1, "").to_vec()),
        ("an unknown node", hello(7, CLUSTER).to_vec()),
        ("the node's own id", hello(2, CLUSTER).to_vec()),
        ("another version", newer.to_vec()),
        ("not a hello", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ("a frame without a hello", {
            let mut out = BytesMut::new();
            let e = Envelope {
                group: 1,
                message: message(1, 2, 1),
            };
            encode_frame(&e, &mut out).unwrap();
            out.to_vec()
        }),
    ];
    for (n, (case, bytes)) in cases.into_iter().enumerate() {
        let (_conn, answer) = send_and_read_answer(node.addr, &bytes).await;
        assert_eq!(answer, None, "{case}: the node closes without answering");
        let want = n as u64 + 1;
        eventually(&format!("{case} counted"), || node.refused() == want).await;
    }
    assert_eq!(node.transport.stats().received.load(Ordering::Relaxed), 0);
    assert!(node.rx.try_recv().is_err());
}

/// A connection from loopback address 127.0.0.`host`.
async fn connect_from(host: u8, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from(([127, 0, 0, host], 0)))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// Whether the node closes `conn` at once, without a byte.
async fn closed_at_once(mut conn: TcpStream) -> bool {
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(2), conn.read(&mut byte)).await;
    matches!(read, Ok(Ok(0)) | Ok(Err(_)))
}

/// Connections beyond the caps (handshakes per address, connections in all) are
/// closed at once and counted, while those within them wait for their handshake; once
/// they go, a peer connects again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_caps_are_closed_at_once() {
    let node = node(plaintext(CLUSTER, 2), &[(1, None)]).await;
    let per_address = MAX_HANDSHAKES_PER_ADDRESS;
    let addresses = MAX_INBOUND_CONNECTIONS / per_address;
    let mut silent = Vec::new();
    // Accepted in connection order, each holding its slots until its handshake times
    // out (5 s).
    for host in 2..2 + addresses as u8 {
        for _ in 0..per_address {
            silent.push(connect_from(host, node.addr).await);
        }
    }
    assert!(
        closed_at_once(connect_from(2, node.addr).await).await,
        "over the address's cap"
    );
    let another = 2 + addresses as u8;
    assert!(
        closed_at_once(connect_from(another, node.addr).await).await,
        "over the total"
    );
    eventually("both extra connections counted", || node.refused() == 2).await;
    drop(silent);
    // The slots free as their connections' tasks see the close.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_conn, answer) = send_and_read_answer(node.addr, &hello(1, CLUSTER)).await;
        if answer.map(|h| h.node_id) == Some(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no slot freed after the silent connections closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_at_the_handshake_timeout() {
    let limit = Duration::from_millis(300);
    let node = node(
        plaintext(CLUSTER, 2).with_handshake_timeout(limit),
        &[(1, None)],
    )
    .await;
    let started = Instant::now();
    let mut conn = TcpStream::connect(node.addr).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(20), conn.read(&mut byte))
        .await
        .expect("the node closes the silent connection");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed without a byte: {read:?}"
    );
    assert!(started.elapsed() >= limit);
    eventually("the silent connection counted", || node.refused() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transports_of_different_clusters_refuse_each_other() {
    let mut node = node(plaintext("cluster-b", 2), &[(1, None)]).await;
    let (_stop, stop_rx) = watch::channel(false);
    let sender = Transport::new(stop_rx, plaintext("cluster-a", 1));
    sender.add_peer(2, node.addr);
    let sender_refused = || {
        let stats = sender.stats();
        stats.refused_connections.load(Ordering::Relaxed)
    };
    eventually("both sides refuse", || {
        sender.send(1, message(1, 2, 1));
        node.refused() >= 2 && sender_refused() >= 2
    })
    .await;
    assert_eq!(sender.stats().connects.load(Ordering::Relaxed), 0);
    assert_eq!(sender.stats().sent.load(Ordering::Relaxed), 0);
    assert_eq!(node.transport.stats().received.load(Ordering::Relaxed), 0);
    assert!(node.rx.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_refuses_a_node_answering_for_another_id() {
    // Node 3 listens where node 1 believes node 2 is; node 3 accepts node 1 (a peer)
    // and answers as node 3.
    let node_3 = node(plaintext(CLUSTER, 3), &[(1, None)]).await;
    let (_stop, stop_rx) = watch::channel(false);
    let sender = Transport::new(stop_rx, plaintext(CLUSTER, 1));
    sender.add_peer(2, node_3.addr);
    let stats = sender.stats().clone();
    eventually("node 1 refuses the answer", || {
        sender.send(1, message(1, 2, 1));
        stats.refused_connections.load(Ordering::Relaxed) >= 2
    })
    .await;
    assert_eq!(stats.connects.load(Ordering::Relaxed), 0);
    assert_eq!(stats.sent.load(Ordering::Relaxed), 0);
    assert_eq!(node_3.refused(), 0, "node 3 had nothing to refuse");
    let received = node_3.transport.stats().received.load(Ordering::Relaxed);
    assert_eq!(received, 0);
}
