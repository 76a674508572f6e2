//! The inter-broker transport: Raft messages of every group between two brokers travel
//! on one TCP connection per direction, in checksummed frames ([`frame`]), batched under
//! load, after a handshake that authenticates the connecting node ([`handshake`]).
//!
//! Authentication: every connection starts with a hello from each side carrying its
//! cluster id and node id. The acceptor reads a connection only when the connector is
//! of its cluster and one of its peers (and not itself); the connector sends only when
//! the acceptor is of its cluster and the peer it dialled. With TLS ([`security`]:
//! mutual, TLS 1.3, certificates from PEM files) the hello travels inside TLS, the
//! acceptor requires a client certificate from a trusted CA that is valid for the host
//! the claimed node has in its peer list, and the connector verifies the acceptor's
//! certificate for the host it dialled: a node id is then bound to a certificate.
//! Without TLS the hello is plaintext and anyone who can reach the port and knows a
//! peer's id can pass it; it still keeps nodes of different clusters, and nodes that
//! are not peers, apart. On an accepted connection, a message whose `from` is not the
//! node id of the handshake is dropped and counted ([`TransportStats::spoofed`]).
//! A refused connection is closed without an answer, logged (`warn`) and counted
//! ([`TransportStats::refused_connections`]) by the side that refused it, and by a
//! connector that the acceptor closed on during the handshake. The hello has no
//! earlier form: a broker running code from before it is refused, so brokers upgrade
//! to it together.
//!
//! Limits: each peer has a bounded outbound queue ([`PEER_QUEUE_MESSAGES`]); when a peer
//! is down or slow and the queue is full, new messages to it are dropped and counted —
//! memory stays bounded and Raft retries. While a peer cannot be reached, what was queued
//! for it is dropped at every failed connection attempt: a returning peer would otherwise
//! first receive seconds-old appends and heartbeats (a restarted broker replayed its
//! controller's stale appends instead of taking the snapshot it needed). Frames above
//! [`MAX_FRAME_BYTES`] are refused; a hello is at most 271 bytes and must arrive, with
//! the TLS handshake, within [`HANDSHAKE_TIMEOUT`] (configurable). Connections are
//! re-established with exponential backoff up to [`MAX_BACKOFF`], also after a refused
//! handshake.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::eraftpb::Message;
use rustls_pki_types::ServerName;
use tokio::sync::{mpsc, watch};

pub mod frame;
pub mod handshake;
mod inbound;
mod outbound;
pub mod per_address;
pub mod security;

pub use frame::{decode_frame, encode_frame, MAX_FRAME_BYTES};
pub use handshake::{HandshakeError, Hello, HANDSHAKE_TIMEOUT, MAX_CLUSTER_ID_BYTES};
pub use inbound::{serve, IDLE_TIMEOUT, MAX_HANDSHAKES_PER_ADDRESS, MAX_INBOUND_CONNECTIONS};
pub use security::{SecurityError, TransportSecurity, TransportTls};

/// Messages queued per peer before new ones are dropped.
pub const PEER_QUEUE_MESSAGES: usize = 4096;
/// Longest wait between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A Raft message for one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub group: u64,
    pub message: Message,
}

/// Counters for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct TransportStats {
    pub sent: AtomicU64,
    /// Messages delivered to the node (spoofed ones excluded).
    pub received: AtomicU64,
    /// Dropped: the peer's queue was full, the peer is unknown, or the peer could not be
    /// reached and what was queued for it was discarded.
    pub dropped: AtomicU64,
    /// Frames refused (checksum, size, decoding).
    pub bad_frames: AtomicU64,
    /// Messages received whole but refused by their group as impossible (no honest
    /// replica sends them: a forged or corrupted frame).
    pub refused: AtomicU64,
    /// Outbound connections established (handshake passed).
    pub connects: AtomicU64,
    /// Connections closed at the handshake: inbound ones whose TLS, hello or
    /// certificate failed this node's checks (or that sent nothing in time), and
    /// outbound ones whose peer failed them or closed the connection.
    pub refused_connections: AtomicU64,
    /// Messages dropped because their `from` is not the node id of the connection
    /// they came on.
    pub spoofed: AtomicU64,
}

/// Where a peer listens, and the host its certificate must be valid for (with TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    pub addr: SocketAddr,
    pub host: ServerName<'static>,
}

impl PeerAddr {
    /// A peer known by a DNS name (or an IP address in text), resolved to `addr`.
    pub fn named(host: &str, addr: SocketAddr) -> Result<PeerAddr, SecurityError> {
        let host = ServerName::try_from(host.to_string()).map_err(|_| SecurityError::PeerHost {
            host: host.to_string(),
        })?;
        Ok(PeerAddr { addr, host })
    }
}

impl From<SocketAddr> for PeerAddr {
    /// A peer known by its IP address: its certificate must hold that IP address.
    fn from(addr: SocketAddr) -> PeerAddr {
        PeerAddr {
            addr,
            host: ServerName::IpAddress(addr.ip().into()),
        }
    }
}

/// A peer's queue and where it listens.
struct Peer {
    addr: PeerAddr,
    tx: mpsc::Sender<Envelope>,
}

/// Sends envelopes to peers by node id, and is the identity and peer list that
/// [`serve`] checks connections against. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    peers: Arc<Mutex<HashMap<u64, Peer>>>,
    stats: Arc<TransportStats>,
    security: Arc<TransportSecurity>,
    shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("security", &self.security)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Transport {
    /// A transport of the node `security` names, with no peers yet; stops its
    /// connections (and [`serve`]) when `shutdown` turns true.
    pub fn new(shutdown: watch::Receiver<bool>, security: TransportSecurity) -> Transport {
        Transport {
            peers: Arc::new(Mutex::new(HashMap::new())),
            stats: Arc::new(TransportStats::default()),
            security: Arc::new(security),
            shutdown,
        }
    }

    pub fn stats(&self) -> &Arc<TransportStats> {
        &self.stats
    }

    pub fn security(&self) -> &TransportSecurity {
        &self.security
    }

    /// Starts (or replaces) the outbound connection to peer `id` at `addr` (a
    /// `SocketAddr`, or a [`PeerAddr`] naming the host its certificate is for); from
    /// now on [`serve`] also accepts connections from `id`.
    pub fn add_peer(&self, id: u64, addr: impl Into<PeerAddr>) {
        let addr = addr.into();
        let (tx, rx) = mpsc::channel(PEER_QUEUE_MESSAGES);
        let link = outbound::PeerLink {
            id,
            addr: addr.clone(),
            stats: self.stats.clone(),
            security: self.security.clone(),
            shutdown: self.shutdown.clone(),
        };
        tokio::spawn(outbound::run_peer(link, rx));
        if let Ok(mut peers) = self.peers.lock() {
            peers.insert(id, Peer { addr, tx });
        }
    }

    /// The peers this transport has connections to.
    pub fn peers(&self) -> Vec<u64> {
        self.peers
            .lock()
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The host peer `id`'s certificate must be valid for; `None` when `id` is not a peer.
    fn host_of(&self, id: u64) -> Option<ServerName<'static>> {
        let peers = self.peers.lock().ok()?;
        peers.get(&id).map(|p| p.addr.host.clone())
    }

    /// Queues a message for its destination (`message.to`). Never blocks: when the
    /// peer's queue is full or the peer is unknown, the message is dropped and counted.
    pub fn send(&self, group: u64, message: Message) {
        let to = message.to;
        let sender = self
            .peers
            .lock()
            .ok()
            .and_then(|p| p.get(&to).map(|p| p.tx.clone()));
        let queued = sender.is_some_and(|tx| tx.try_send(Envelope { group, message }).is_ok());
        if !queued {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
