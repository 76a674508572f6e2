//! One task per peer: keeps a connection to it up (TCP, handshake) and drains the
//! peer's queue into it, batching whatever is already queued into one write.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::handshake::{self, HandshakeError, Outbound};
use super::{encode_frame, Envelope, PeerAddr, TransportSecurity, TransportStats, MAX_BACKOFF};

const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// Messages written in one batch at most.
const BATCH_MESSAGES: usize = 1024;

/// What the peer task needs besides its queue.
pub(super) struct PeerLink {
    pub id: u64,
    pub addr: PeerAddr,
    pub stats: Arc<TransportStats>,
    pub security: Arc<TransportSecurity>,
    pub shutdown: watch::Receiver<bool>,
}

/// Why a connection attempt failed.
enum ConnectError {
    Tcp(std::io::Error),
    Handshake(HandshakeError),
}

/// Drops (and counts) every message queued for an unreachable peer: Raft resends what
/// still matters once the peer answers again.
fn discard_queued(rx: &mut mpsc::Receiver<Envelope>, stats: &TransportStats) {
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    stats.dropped.fetch_add(n, Ordering::Relaxed);
}

/// Keeps one outbound connection up and drains the queue into it.
pub(super) async fn run_peer(link: PeerLink, mut rx: mpsc::Receiver<Envelope>) {
    let mut shutdown = link.shutdown.clone();
    let mut backoff = FIRST_BACKOFF;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let connected = tokio::select! {
            c = connect(&link) => c,
            _ = shutdown.changed() => return,
        };
        let stream = match connected {
            Ok(s) => s,
            Err(e) => {
                report(&link, e);
                discard_queued(&mut rx, &link.stats);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        link.stats.connects.fetch_add(1, Ordering::Relaxed);
        backoff = FIRST_BACKOFF;
        let stopped = match stream {
            Outbound::Plain(w) => send_queued(&link, w, &mut rx, &mut shutdown).await,
            Outbound::Tls(w) => send_queued(&link, w, &mut rx, &mut shutdown).await,
        };
        match stopped {
            Stopped::Done => return,
            Stopped::Lost => discard_queued(&mut rx, &link.stats),
        }
    }
}

async fn connect(link: &PeerLink) -> Result<Outbound, ConnectError> {
    let tcp = TcpStream::connect(link.addr.addr)
        .await
        .map_err(ConnectError::Tcp)?;
    let _ = tcp.set_nodelay(true);
    handshake::connect(tcp, link.id, &link.addr.host, &link.security)
        .await
        .map_err(ConnectError::Handshake)
}

/// Logs a failed attempt: an unreachable peer quietly (it is down or starting), a
/// refused handshake loudly and counted (a misconfiguration or an impostor).
fn report(link: &PeerLink, e: ConnectError) {
    match e {
        ConnectError::Tcp(e) => {
            debug!(peer = link.id, addr = %link.addr.addr, error = %e, "connect failed; retrying");
        }
        ConnectError::Handshake(why) => {
            link.stats
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            warn!(
                peer = link.id,
                addr = %link.addr.addr,
                host = %link.addr.host.to_str(),
                reason = %why,
                "raft connection to a peer refused at the handshake; retrying"
            );
        }
    }
}

/// Why [`send_queued`] returned.
enum Stopped {
    /// Shutdown, or the transport is gone: the peer's task ends.
    Done,
    /// The connection failed: reconnect.
    Lost,
}

/// Sends the peer's queued messages into `writer`, everything already queued in the
/// same write, until the connection fails or the transport stops.
async fn send_queued<W: AsyncWrite + Unpin>(
    link: &PeerLink,
    writer: W,
    rx: &mut mpsc::Receiver<Envelope>,
    shutdown: &mut watch::Receiver<bool>,
) -> Stopped {
    let mut writer = BufWriter::with_capacity(256 * 1024, writer);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut batch = Vec::with_capacity(BATCH_MESSAGES);
    loop {
        let first = tokio::select! {
            e = rx.recv() => match e {
                Some(e) => e,
                None => return Stopped::Done, // the transport is gone
            },
            _ = shutdown.changed() => return Stopped::Done,
        };
        batch.clear();
        batch.push(first);
        while batch.len() < BATCH_MESSAGES {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        buf.clear();
        for e in &batch {
            if let Err(why) = encode_frame(e, &mut buf) {
                warn!(
                    peer = link.id,
                    error = why,
                    "dropping an unencodable raft message"
                );
                link.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let n = batch.len() as u64;
        let written = async {
            writer.write_all(&buf).await?;
            writer.flush().await
        }
        .await;
        if let Err(e) = written {
            // The batch is lost with the connection; Raft resends what matters.
            debug!(peer = link.id, error = %e, "connection lost; reconnecting");
            link.stats.dropped.fetch_add(n, Ordering::Relaxed);
            return Stopped::Lost;
        }
        link.stats.sent.fetch_add(n, Ordering::Relaxed);
    }
}
