//! HTTPS on the admin port (`ADMIN:SSL`): a listener for axum whose connections have
//! finished their TLS handshake. Handshakes run on their own tasks (within
//! [`crate::tls::HANDSHAKE_TIMEOUT`]), so a slow or silent client never holds up the
//! others; a failed one is counted in `strata_tls_handshakes_total{listener="ADMIN"}`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

use crate::metrics::{Metrics, TlsLabels};
use crate::shutdown::Shutdown;
use crate::tls::ListenerTls;

/// Connections accepted and not yet taken by the server.
const READY_QUEUE: usize = 64;

/// Accepted TLS connections, for `axum::serve`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener` with `tls`'s current certificate, until shutdown.
    pub fn start(
        listener: TcpListener,
        tls: Arc<ListenerTls>,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        tokio::spawn(accept(listener, tls, metrics, shutdown, tx));
        Ok(TlsListener { ready, local })
    }
}

async fn accept(
    listener: TcpListener,
    tls: Arc<ListenerTls>,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
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
        let (acceptor, tx, metrics) = (tls.acceptor(), tx.clone(), metrics.clone());
        let listener_name = tls.name().to_string();
        tokio::spawn(async move {
            let handshake = acceptor.accept(tcp);
            let outcome = match tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, handshake).await
            {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, peer)).await;
                    "ok"
                }
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "admin TLS handshake failed");
                    "failed"
                }
                Err(_) => "timeout",
            };
            let labels = TlsLabels {
                listener: listener_name,
                outcome: outcome.into(),
            };
            metrics.tls_handshakes.get_or_create(&labels).inc();
        });
    }
}

/// The client address of an admin connection, HTTP or HTTPS (for the authentication
/// limits and the logs).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accepting task ended (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
