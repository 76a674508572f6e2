//! The listener: accepts peers' connections, runs the acceptor's handshake on each, and
//! reads frames from those that pass.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{debug, warn};

use super::frame::MIN_FRAME_BYTES;
use super::handshake::{self, Inbound};
use super::per_address::{AddressSlot, PerAddress};
use super::{decode_frame, Envelope, Transport, TransportStats, MAX_FRAME_BYTES};

/// Inbound connections open at once. A node holds one per peer (briefly two while one
/// reconnects), so a cluster of up to 5 voters and many learners stays far below it.
pub const MAX_INBOUND_CONNECTIONS: usize = 128;
/// Connections from one address still in their handshake: a host floods at most this
/// many slots, so the peers' reconnects find room.
pub const MAX_HANDSHAKES_PER_ADDRESS: usize = 8;
/// How long an established connection may carry nothing before it is closed (a peer
/// that sends again reconnects), so dead connections do not hold their slots.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Accepts peers' connections and hands every decoded envelope to `deliver` (bounded:
/// when the consumer lags, reading stops and TCP pushes back on the sender).
///
/// Only connections whose handshake passes with `transport`'s identity and peer list
/// are read (see the module docs); the others are closed, logged and counted in
/// [`TransportStats::refused_connections`]. Returns when `transport`'s shutdown turns
/// true.
///
/// At most [`MAX_INBOUND_CONNECTIONS`] are open at once, handshaking or not, and
/// [`MAX_HANDSHAKES_PER_ADDRESS`] handshaking from one address; one more is closed at
/// once and counted as refused, so a flood of connections that never finish their
/// handshake cannot exhaust the node.
pub async fn serve(listener: TcpListener, deliver: mpsc::Sender<Envelope>, transport: Transport) {
    let mut shutdown = transport.shutdown.clone();
    let slots = Arc::new(Semaphore::new(MAX_INBOUND_CONNECTIONS));
    let handshaking = PerAddress::new(MAX_HANDSHAKES_PER_ADDRESS);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, from)) => {
                let admitted = handshaking
                    .admit(from.ip())
                    .and_then(|h| Some((h, slots.clone().try_acquire_owned().ok()?)));
                let Some((handshake_slot, slot)) = admitted else {
                    let refused = &transport.stats.refused_connections;
                    refused.fetch_add(1, Ordering::Relaxed);
                    debug!(%from, "raft connection refused: too many open");
                    continue;
                };
                let (deliver, transport) = (deliver.clone(), transport.clone());
                tokio::spawn(async move {
                    connection(stream, from, handshake_slot, deliver, transport).await;
                    drop(slot);
                });
            }
            Err(e) => {
                warn!(error = %e, "raft accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Handshake, then frames until the connection ends or the transport stops.
async fn connection(
    stream: TcpStream,
    from: SocketAddr,
    handshake_slot: AddressSlot,
    deliver: mpsc::Sender<Envelope>,
    transport: Transport,
) {
    let mut shutdown = transport.shutdown.clone();
    let stats = transport.stats.clone();
    let handshake = handshake::accept(stream, &transport.security, |id| transport.host_of(id));
    let accepted = tokio::select! {
        a = handshake => a,
        _ = shutdown.changed() => return,
    };
    drop(handshake_slot);
    let (node, inbound) = match accepted {
        Ok(a) => a,
        Err(refused) => {
            stats.refused_connections.fetch_add(1, Ordering::Relaxed);
            warn!(
                peer = %from,
                claimed = ?refused.claimed,
                reason = %refused.why,
                "raft connection refused"
            );
            return;
        }
    };
    debug!(peer = %from, node, "raft connection accepted");
    let read = match inbound {
        Inbound::Plain(r, _w) => read_frames(r, node, deliver, &stats, shutdown).await,
        Inbound::Tls(r, _w) => read_frames(r, node, deliver, &stats, shutdown).await,
    };
    if let Err(e) = read {
        debug!(peer = %from, node, error = e, "raft connection closed");
    }
}

/// Reads frames from node `node`'s connection; a message whose `from` is not `node` is
/// dropped and counted in [`TransportStats::spoofed`].
async fn read_frames<R: AsyncRead + Unpin>(
    reader: R,
    node: u64,
    deliver: mpsc::Sender<Envelope>,
    stats: &TransportStats,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut reader = tokio::io::BufReader::with_capacity(256 * 1024, reader);
    loop {
        let len = tokio::select! {
            l = tokio::time::timeout(IDLE_TIMEOUT, reader.read_u32()) => match l {
                Ok(l) => l.map_err(|e| e.to_string())? as usize,
                Err(_) => return Err(format!("nothing for {IDLE_TIMEOUT:?}")),
            },
            _ = shutdown.changed() => return Ok(()),
        };
        if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&len) {
            stats.bad_frames.fetch_add(1, Ordering::Relaxed);
            return Err(format!("frame length {len} out of bounds"));
        }
        let mut body = vec![0u8; len];
        reader
            .read_exact(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        let envelope = decode_frame(&body).inspect_err(|_| {
            stats.bad_frames.fetch_add(1, Ordering::Relaxed);
        })?;
        if envelope.message.from != node {
            stats.spoofed.fetch_add(1, Ordering::Relaxed);
            warn!(
                node,
                from = envelope.message.from,
                group = envelope.group,
                "raft message from another node than the connection's dropped"
            );
            continue;
        }
        stats.received.fetch_add(1, Ordering::Relaxed);
        if deliver.send(envelope).await.is_err() {
            return Ok(());
        }
    }
}
