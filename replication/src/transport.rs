//! The inter-broker transport: Raft messages of every group between two brokers travel
//! on one TCP connection per direction, in checksummed frames, batched under load.
//!
//! Frame: `length: u32 BE` (of what follows), `crc32: u32 BE` (`crc32fast`, over the
//! rest), `group: u64 BE`, then the raft-rs `Message` in protobuf. A frame that fails
//! its checksum or does not decode closes the connection (the peer reconnects); Raft
//! tolerates the lost messages.
//!
//! Limits: each peer has a bounded outbound queue ([`PEER_QUEUE_MESSAGES`]); when a peer
//! is down or slow and the queue is full, new messages to it are dropped and counted —
//! memory stays bounded and Raft retries. While a peer cannot be reached, what was queued
//! for it is dropped at every failed connection attempt: a returning peer would otherwise
//! first receive seconds-old appends and heartbeats (a restarted broker replayed its
//! controller's stale appends instead of taking the snapshot it needed). Frames above [`MAX_FRAME_BYTES`] are refused.
//! Connections are re-established with exponential backoff up to [`MAX_BACKOFF`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

/// Messages queued per peer before new ones are dropped.
pub const PEER_QUEUE_MESSAGES: usize = 4096;
/// Largest frame accepted (a Raft append carries at most ~1 MiB of entries).
pub const MAX_FRAME_BYTES: usize = 64 << 20;
/// Longest wait between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const HEADER_BYTES: usize = 4 + 4 + 8;

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
    pub received: AtomicU64,
    /// Dropped: the peer's queue was full, the peer is unknown, or the peer could not be
    /// reached and what was queued for it was discarded.
    pub dropped: AtomicU64,
    /// Frames refused (checksum, size, decoding).
    pub bad_frames: AtomicU64,
    /// Messages received whole but refused by their group as impossible (no honest
    /// replica sends them: a forged or corrupted frame).
    pub refused: AtomicU64,
    pub connects: AtomicU64,
}

/// Encodes one envelope as a frame.
pub fn encode_frame(e: &Envelope, out: &mut BytesMut) -> Result<(), String> {
    let body = e.message.write_to_bytes().map_err(|x| x.to_string())?;
    let len = 4 + 8 + body.len();
    if len > MAX_FRAME_BYTES {
        return Err(format!("message of {len} bytes exceeds the frame limit"));
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&e.group.to_be_bytes());
    hasher.update(&body);
    out.reserve(4 + len);
    out.put_u32(len as u32);
    out.put_u32(hasher.finalize());
    out.put_u64(e.group);
    out.put_slice(&body);
    Ok(())
}

/// Decodes one frame body (after the length): checksum, group, message.
pub fn decode_frame(mut body: &[u8]) -> Result<Envelope, String> {
    if body.len() < HEADER_BYTES - 4 {
        return Err("frame shorter than its header".into());
    }
    let crc = body.get_u32();
    if crc32fast::hash(body) != crc {
        return Err("frame checksum mismatch".into());
    }
    let group = body.get_u64();
    let message = Message::parse_from_bytes(body).map_err(|e| e.to_string())?;
    Ok(Envelope { group, message })
}

/// Sends envelopes to peers by node id. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    peers: Arc<Mutex<HashMap<u64, mpsc::Sender<Envelope>>>>,
    stats: Arc<TransportStats>,
    shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("stats", &self.stats)
            .finish()
    }
}

impl Transport {
    /// A transport with no peers yet; stops its connections when `shutdown` turns true.
    pub fn new(shutdown: watch::Receiver<bool>) -> Transport {
        Transport {
            peers: Arc::new(Mutex::new(HashMap::new())),
            stats: Arc::new(TransportStats::default()),
            shutdown,
        }
    }

    pub fn stats(&self) -> &Arc<TransportStats> {
        &self.stats
    }

    /// Starts (or replaces) the outbound connection to peer `id` at `addr`.
    pub fn add_peer(&self, id: u64, addr: SocketAddr) {
        let (tx, rx) = mpsc::channel(PEER_QUEUE_MESSAGES);
        tokio::spawn(run_peer(
            id,
            addr,
            rx,
            self.stats.clone(),
            self.shutdown.clone(),
        ));
        if let Ok(mut peers) = self.peers.lock() {
            peers.insert(id, tx);
        }
    }

    /// The peers this transport has connections to.
    pub fn peers(&self) -> Vec<u64> {
        self.peers
            .lock()
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Queues a message for its destination (`message.to`). Never blocks: when the
    /// peer's queue is full or the peer is unknown, the message is dropped and counted.
    pub fn send(&self, group: u64, message: Message) {
        let to = message.to;
        let sender = self.peers.lock().ok().and_then(|p| p.get(&to).cloned());
        let queued = sender.is_some_and(|tx| tx.try_send(Envelope { group, message }).is_ok());
        if !queued {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
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
async fn run_peer(
    id: u64,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<Envelope>,
    stats: Arc<TransportStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let stream = tokio::select! {
            s = TcpStream::connect(addr) => s,
            _ = shutdown.changed() => return,
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                debug!(peer = id, %addr, error = %e, "connect failed; retrying");
                discard_queued(&mut rx, &stats);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        stats.connects.fetch_add(1, Ordering::Relaxed);
        backoff = FIRST_BACKOFF;
        match send_queued(id, stream, &mut rx, &stats, &mut shutdown).await {
            Stopped::Done => return,
            Stopped::Lost => discard_queued(&mut rx, &stats),
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

/// Sends the peer's queued messages over `stream`, everything already queued in the
/// same write, until the connection fails or the transport stops.
async fn send_queued(
    id: u64,
    stream: TcpStream,
    rx: &mut mpsc::Receiver<Envelope>,
    stats: &TransportStats,
    shutdown: &mut watch::Receiver<bool>,
) -> Stopped {
    let mut writer = BufWriter::with_capacity(256 * 1024, stream);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let first = tokio::select! {
            e = rx.recv() => match e {
                Some(e) => e,
                None => return Stopped::Done, // the transport is gone
            },
            _ = shutdown.changed() => return Stopped::Done,
        };
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        buf.clear();
        for e in &batch {
            if let Err(why) = encode_frame(e, &mut buf) {
                warn!(
                    peer = id,
                    error = why,
                    "dropping an unencodable raft message"
                );
                stats.dropped.fetch_add(1, Ordering::Relaxed);
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
            debug!(peer = id, error = %e, "connection lost; reconnecting");
            stats.dropped.fetch_add(n, Ordering::Relaxed);
            return Stopped::Lost;
        }
        stats.sent.fetch_add(n, Ordering::Relaxed);
    }
}

/// Accepts peers' connections and hands every decoded envelope to `deliver` (bounded:
/// when the consumer lags, reading stops and TCP pushes back on the sender).
pub async fn serve(
    listener: TcpListener,
    deliver: mpsc::Sender<Envelope>,
    stats: Arc<TransportStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let deliver = deliver.clone();
                let stats = stats.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(e) = read_frames(stream, deliver, stats, shutdown).await {
                        debug!(%peer, error = e, "raft connection closed");
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "raft accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn read_frames(
    stream: TcpStream,
    deliver: mpsc::Sender<Envelope>,
    stats: Arc<TransportStats>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut reader = tokio::io::BufReader::with_capacity(256 * 1024, stream);
    loop {
        let len = tokio::select! {
            l = reader.read_u32() => l.map_err(|e| e.to_string())? as usize,
            _ = shutdown.changed() => return Ok(()),
        };
        if !(HEADER_BYTES - 4..=MAX_FRAME_BYTES).contains(&len) {
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
        stats.received.fetch_add(1, Ordering::Relaxed);
        if deliver.send(envelope).await.is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_detected() {
        let m = Message {
            to: 2,
            from: 1,
            term: 9,
            commit: 77,
            ..Default::default()
        };
        let e = Envelope {
            group: 42,
            message: m,
        };
        let mut buf = BytesMut::new();
        encode_frame(&e, &mut buf).unwrap();
        let body = &buf[4..];
        assert_eq!(decode_frame(body).unwrap(), e);
        for i in 0..body.len() * 8 {
            let mut b = body.to_vec();
            b[i / 8] ^= 1 << (i % 8);
            assert!(decode_frame(&b).is_err(), "bit {i}");
        }
        assert!(decode_frame(&body[..5]).is_err());
    }
}
