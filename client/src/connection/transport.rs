//! The byte stream under a connection: plain TCP, or TLS over TCP. An enum rather than
//! a boxed trait object, so a plaintext connection pays for neither a box nor dynamic
//! dispatch.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::error::{Error, Result};
use crate::security::{tls, Security};

/// A connected stream to a broker.
pub(crate) enum Transport {
    /// `PLAINTEXT` and `SASL_PLAINTEXT`.
    Plain(TcpStream),
    /// `SSL` and `SASL_SSL` (boxed: the TLS state is large).
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    /// Connects to `addr` and, when `security` asks for TLS, completes the handshake
    /// (verifying the broker's certificate).
    pub(crate) async fn open(addr: &str, security: &Security) -> Result<Transport> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| Error::Connect {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
        // Small requests (acks, fetch polls) must not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let Some(connector) = security.tls() else {
            return Ok(Transport::Plain(tcp));
        };
        let name = tls::server_name(addr)?;
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| tls::handshake_error(addr, e))?;
        Ok(Transport::Tls(Box::new(stream)))
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Plain(_) => "Plain",
            Transport::Tls(_) => "Tls",
        })
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(s) => s.is_write_vectored(),
            Transport::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
