//! The transport over real loopback sockets: no loss or reordering between live peers,
//! reconnection after the peer restarts, bounded memory while a peer is down, and no
//! stale messages for a peer that comes back.

use std::sync::atomic::Ordering;
use std::time::Duration;

use raft::eraftpb::Message;
use replication::transport::{self, Envelope, Transport, TransportSecurity, PEER_QUEUE_MESSAGES};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};

fn message(to: u64, commit: u64) -> Message {
    Message {
        to,
        from: 1,
        commit,
        ..Default::default()
    }
}

/// The sending node of these tests: node 1, plaintext, no cluster id.
fn sender(shutdown: watch::Receiver<bool>) -> Transport {
    Transport::new(shutdown, TransportSecurity::plaintext("", 1).unwrap())
}

/// Node 2 serving on `listener`, with node 1 as its peer (at an address where nobody
/// listens: node 1 only sends in these tests): what it receives.
fn serve_as_node_2(listener: TcpListener, stop: watch::Receiver<bool>) -> mpsc::Receiver<Envelope> {
    let t = Transport::new(stop, TransportSecurity::plaintext("", 2).unwrap());
    let (node_1, held) = reserved_addr();
    t.add_peer(1, node_1);
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        transport::serve(listener, tx, t).await;
        drop(held);
    });
    rx
}

/// A listening peer: its address, what it receives, and its shutdown switch.
async fn peer() -> (
    std::net::SocketAddr,
    mpsc::Receiver<Envelope>,
    watch::Sender<bool>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let rx = serve_as_node_2(listener, stop_rx);
    (addr, rx, stop)
}

/// A loopback address nobody listens on, held for as long as the returned socket lives.
///
/// The socket is bound but not listening, so a connection to it is refused. Releasing
/// the port instead (bind, then drop) let the kernel hand it to a listener of another
/// test running in this binary at the same time, or pick it as the source port of our
/// own connect (a TCP self-connect); either way the "down" peer was reachable and the
/// bounded-memory test saw nothing dropped. Call `listen` on the socket to bring the
/// peer up on the same address.
fn reserved_addr() -> (std::net::SocketAddr, TcpSocket) {
    // A plain socket, without SO_REUSEADDR, so no other socket can bind the port.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    (socket.local_addr().unwrap(), socket)
}

async fn recv(rx: &mut mpsc::Receiver<Envelope>) -> Envelope {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a message arrives in time")
        .expect("the receiver is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_peers_lose_nothing_and_keep_order() {
    let (addr, mut rx, _stop) = peer().await;
    let (_down, down_rx) = watch::channel(false);
    let t = sender(down_rx);
    t.add_peer(2, addr);
    for i in 0..2000 {
        t.send(7 + i % 3, message(2, i));
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    for i in 0..2000 {
        let e = recv(&mut rx).await;
        assert_eq!((e.group, e.message.commit), (7 + i % 3, i));
    }
    assert_eq!(t.stats().dropped.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_peer_restarts() {
    let (addr, mut rx, stop) = peer().await;
    let (_down, down_rx) = watch::channel(false);
    let t = sender(down_rx);
    t.add_peer(2, addr);
    t.send(1, message(2, 1));
    assert_eq!(recv(&mut rx).await.message.commit, 1);

    // The peer goes away and comes back on the same address.
    stop.send_replace(true);
    drop(rx);
    // The old listener closes when its serve task sees the stop.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let listener = loop {
        match TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "rebinding {addr}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let (_stop2, stop_rx) = watch::channel(false);
    let mut rx = serve_as_node_2(listener, stop_rx);
    // Messages sent while the connection breaks may be lost (Raft resends); keep sending
    // until the new connection carries one.
    let got = first_of_fresh_messages(&t, &mut rx, 100).await;
    assert!(got.message.commit >= 100);
    assert!(t.stats().connects.load(Ordering::Relaxed) >= 2);
}

// One thread on purpose: the peer's connection task cannot run (and drain its queue)
// while the send loop below runs without awaiting, so what the queue holds is exact.
#[tokio::test(flavor = "current_thread")]
async fn a_down_peer_costs_bounded_memory() {
    let (addr, _held) = reserved_addr();
    let (_down, down_rx) = watch::channel(false);
    let t = sender(down_rx);
    t.add_peer(2, addr);
    let n = 3 * PEER_QUEUE_MESSAGES as u64;
    for i in 0..n {
        t.send(1, message(2, i));
    }
    // The queue took PEER_QUEUE_MESSAGES; every later message was dropped at once.
    let dropped = t.stats().dropped.load(Ordering::Relaxed);
    assert_eq!(dropped, n - PEER_QUEUE_MESSAGES as u64);
    // Unknown peers are dropped too, never queued.
    t.send(1, message(9, 0));
    assert_eq!(t.stats().dropped.load(Ordering::Relaxed), dropped + 1);
    // And nothing stays queued for a down peer: its failed connection attempt drops the rest.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while t.stats().dropped.load(Ordering::Relaxed) < n + 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "queue never discarded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(t.stats().dropped.load(Ordering::Relaxed), n + 1);
    assert_eq!(t.stats().connects.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_peer_gets_nothing_queued_while_it_was_away() {
    let (addr, held) = reserved_addr();
    let (_down, down_rx) = watch::channel(false);
    let t = sender(down_rx);
    t.add_peer(2, addr);
    for i in 0..100 {
        t.send(1, message(2, i));
    }
    // A failed connection attempt discards them.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while t.stats().dropped.load(Ordering::Relaxed) < 100 {
        assert!(std::time::Instant::now() < deadline, "never discarded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let listener = held.listen(1024).unwrap();
    let (_stop, stop_rx) = watch::channel(false);
    let mut rx = serve_as_node_2(listener, stop_rx);
    let got = first_of_fresh_messages(&t, &mut rx, 1000).await;
    assert!(got.message.commit >= 1000, "stale message {got:?}");
}

/// Sends messages with commit `from`, `from + 1`, … until one arrives (a connection is
/// being made): the first envelope received.
async fn first_of_fresh_messages(
    t: &Transport,
    rx: &mut mpsc::Receiver<Envelope>,
    from: u64,
) -> Envelope {
    let mut commit = from;
    loop {
        t.send(1, message(2, commit));
        match tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            Ok(Some(e)) => return e,
            _ => commit += 1,
        }
        assert!(commit < from + 400, "no connection within ~20 s");
    }
}
