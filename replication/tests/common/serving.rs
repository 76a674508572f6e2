//! A transport serving on loopback for the handshake and TLS tests (included by those
//! two test binaries only, with `#[path]`): its transport, address and inbound queue;
//! the sockets holding its peers' addresses and its shutdown switch live as long as it
//! does.

use std::net::SocketAddr;

use replication::transport::{self, Envelope, PeerAddr, Transport, TransportSecurity};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};

pub struct Node {
    pub transport: Transport,
    pub addr: SocketAddr,
    pub rx: mpsc::Receiver<Envelope>,
    _held: Vec<TcpSocket>,
    _stop: watch::Sender<bool>,
}

/// A loopback address where nobody listens (held by a bound, non-listening socket).
pub fn nowhere() -> (SocketAddr, TcpSocket) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    (socket.local_addr().unwrap(), socket)
}

/// A node of `security`'s cluster serving on 127.0.0.1, with `peers` (each known by
/// its IP address, or by the host name given) at addresses where nobody listens.
pub async fn node(security: TransportSecurity, peers: &[(u64, Option<&str>)]) -> Node {
    let (stop, stop_rx) = watch::channel(false);
    let transport = Transport::new(stop_rx, security);
    let mut held = Vec::new();
    for &(peer, host) in peers {
        let (addr, socket) = nowhere();
        match host {
            Some(host) => transport.add_peer(peer, PeerAddr::named(host, addr).unwrap()),
            None => transport.add_peer(peer, addr),
        }
        held.push(socket);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(transport::serve(listener, tx, transport.clone()));
    Node {
        transport,
        addr,
        rx,
        _held: held,
        _stop: stop,
    }
}
