//! The admin port's listener for axum: at most [`MAX_ADMIN_CONNECTIONS`] connections
//! at once, [`MAX_ADMIN_CONNECTIONS_PER_IP`] from one address (one more is closed at
//! once and counted in
//! `strata_admin_requests_refused_total{outcome="too_many_connections"}`), each closed
//! after [`ADMIN_IDLE_TIMEOUT`] without a byte from its client, and with
//! `ADMIN:SSL` only connections that finished their TLS handshake. Handshakes run on
//! their own tasks (within [`crate::tls::HANDSHAKE_TIMEOUT`]), so a slow or silent
//! client never holds up the others; a failed one is counted in
//! `strata_tls_handshakes_total{listener="ADMIN"}`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

use crate::metrics::{Metrics, OutcomeLabels, TlsLabels};
use crate::shutdown::Shutdown;
use crate::tls::ListenerTls;
use replication::transport::per_address::{AddressSlot, PerAddress};

/// Admin connections open at once: operators and a scraper need a handful.
pub const MAX_ADMIN_CONNECTIONS: usize = 64;
/// Admin connections open at once from one address, so one client cannot take them all.
pub const MAX_ADMIN_CONNECTIONS_PER_IP: usize = 16;
/// Connections accepted and not yet taken by the server.
const READY_QUEUE: usize = 64;

/// How long an admin connection may send nothing before it is closed: a request
/// head arrives at once, so a silent or trickling client (or an idle keep-alive)
/// does not hold its slot, nor the shutdown, for long.
pub const ADMIN_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One admin connection, TLS or not, holding its slot until it closes.
pub struct AdminConn {
    io: Io,
    /// Reset whenever the client sends bytes; a read fails once it fires.
    idle: Pin<Box<tokio::time::Sleep>>,
    _slot: Slot,
}

impl AdminConn {
    fn new(io: Io, slot: Slot) -> AdminConn {
        AdminConn {
            io,
            idle: Box::pin(tokio::time::sleep(ADMIN_IDLE_TIMEOUT)),
            _slot: slot,
        }
    }
}

/// A connection's place under both caps.
struct Slot {
    _total: OwnedSemaphorePermit,
    _address: AddressSlot,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Calls `$f` on the connection's stream, whichever it is.
macro_rules! on_io {
    ($self:ident, $s:ident => $e:expr) => {
        match &mut $self.get_mut().io {
            Io::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Io::Tls($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
        }
    };
}

impl AsyncRead for AdminConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        match read {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    let next = tokio::time::Instant::now() + ADMIN_IDLE_TIMEOUT;
                    this.idle.as_mut().reset(next);
                }
                Poll::Ready(r)
            }
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for AdminConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_io!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_io!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_io!(self, s => s.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        on_io!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Accepted admin connections, for `axum::serve`.
pub struct AdminListener {
    ready: mpsc::Receiver<(AdminConn, SocketAddr)>,
    local: SocketAddr,
}

impl AdminListener {
    /// Starts accepting on `listener` (over TLS with `tls`'s current certificate, when
    /// given) until shutdown.
    pub fn start(
        listener: TcpListener,
        tls: Option<Arc<ListenerTls>>,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> io::Result<AdminListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        tokio::spawn(accept(listener, tls, metrics, shutdown, tx));
        Ok(AdminListener { ready, local })
    }
}

type Ready = mpsc::Sender<(AdminConn, SocketAddr)>;

async fn accept(
    listener: TcpListener,
    tls: Option<Arc<ListenerTls>>,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
    tx: Ready,
) {
    let slots = Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS));
    let per_ip = PerAddress::new(MAX_ADMIN_CONNECTIONS_PER_IP);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let admitted = per_ip.admit(peer.ip()).and_then(|address| {
            let total = slots.clone().try_acquire_owned().ok()?;
            Some(Slot {
                _total: total,
                _address: address,
            })
        });
        let Some(slot) = admitted else {
            debug!(%peer, "admin connection refused: too many open");
            let labels = OutcomeLabels {
                outcome: "too_many_connections".into(),
            };
            metrics.admin_refused.get_or_create(&labels).inc();
            continue;
        };
        match &tls {
            None => {
                let conn = AdminConn::new(Io::Plain(tcp), slot);
                let _ = tx.send((conn, peer)).await;
            }
            Some(tls) => {
                let handshake =
                    handshake(tcp, peer, slot, tls.clone(), metrics.clone(), tx.clone());
                tokio::spawn(handshake);
            }
        }
    }
}

/// Runs one connection's TLS handshake and hands it to the server if it passes.
async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    tls: Arc<ListenerTls>,
    metrics: Arc<Metrics>,
    tx: Ready,
) {
    let handshake = tls.acceptor().accept(tcp);
    let listener = tls.name().to_string();
    let outcome = match tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => {
            let conn = AdminConn::new(Io::Tls(Box::new(stream)), slot);
            let _ = tx.send((conn, peer)).await;
            "ok"
        }
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "admin TLS handshake failed");
            "failed"
        }
        Err(_) => "timeout",
    };
    let labels = TlsLabels {
        listener,
        outcome: outcome.into(),
    };
    metrics.tls_handshakes.get_or_create(&labels).inc();
}

/// The client address of an admin connection (for the authentication limits and the
/// logs).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, AdminListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, AdminListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl axum::serve::Listener for AdminListener {
    type Io = AdminConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accepting task ended (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
