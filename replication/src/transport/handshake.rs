//! The start of every Raft connection: TLS when configured, then one hello from each
//! side, connector first, and the checks on them. Nothing else is read or written until
//! both hellos passed; after them only the connector writes (frames).
//!
//! Hello (big-endian):
//!
//! ```text
//! +------------+-------------+-------------+------------------+----------------------+
//! | magic      | version     | node id     | cluster id len   | cluster id           |
//! | 4: "SRFT"  | u16 = 1     | u64         | u16, at most 255 | UTF-8, `len` bytes   |
//! +------------+-------------+-------------+------------------+----------------------+
//! ```
//!
//! The acceptor refuses (closes the connection without an answer) unless the magic and
//! version are these, the cluster id equals its own (both empty counts as equal), the
//! node id is one of its peers and not its own, and — with TLS — the client certificate
//! (already verified against the trusted CAs by rustls) is valid for the host that peer
//! has in the acceptor's peer list. Then it answers with its own hello, and the
//! connector refuses unless the cluster id equals its own and the node id is the peer
//! it meant to reach (whose certificate rustls verified for that peer's host). The
//! answer costs one round trip per connection and keeps a node from sending one peer's
//! messages to another when a peer list has an address wrong (both would be
//! authenticated members of the cluster, so a one-way hello would not notice).

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::security::TransportSecurity;

/// The first bytes of every connection.
pub const HELLO_MAGIC: [u8; 4] = *b"SRFT";
/// The hello (and framing) this code speaks.
pub const HELLO_VERSION: u16 = 1;
/// The longest cluster id a hello carries.
pub const MAX_CLUSTER_ID_BYTES: usize = 255;
/// The default limit on a connection's TLS handshake and hello exchange.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Magic, version, node id, cluster id length.
const HELLO_HEADER_BYTES: usize = 4 + 2 + 8 + 2;

/// Why a connection was refused during its handshake.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("connection failed during the handshake: {0}")]
    Io(#[source] std::io::Error),
    #[error("no handshake within {0:?}")]
    Timeout(Duration),
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] std::io::Error),
    #[error("not a Strata Raft hello (first bytes {0:02x?})")]
    BadMagic([u8; 4]),
    #[error("hello version {0}; this node speaks {HELLO_VERSION}")]
    UnsupportedVersion(u16),
    #[error("cluster id of {0} bytes exceeds {MAX_CLUSTER_ID_BYTES}")]
    ClusterIdTooLong(usize),
    #[error("cluster id is not UTF-8")]
    ClusterIdNotUtf8,
    #[error("cluster id {theirs:?} is not this cluster's ({ours:?})")]
    WrongCluster { ours: String, theirs: String },
    #[error("node {0} is not a peer of this node")]
    UnknownPeer(u64),
    #[error("claims this node's own id {0}")]
    OwnId(u64),
    #[error("answered as node {got}, expected node {expected}")]
    WrongNode { expected: u64, got: u64 },
    #[error("no client certificate")]
    NoCertificate,
    #[error("certificate not valid for {host:?}, node {node}'s host: {source}")]
    CertificateHost {
        node: u64,
        host: String,
        #[source]
        source: rustls::Error,
    },
}

/// One side's hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub node_id: u64,
    /// Empty: no cluster id configured.
    pub cluster_id: String,
}

impl Hello {
    /// Encodes the hello; fails on a cluster id longer than [`MAX_CLUSTER_ID_BYTES`].
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), HandshakeError> {
        let id = self.cluster_id.as_bytes();
        if id.len() > MAX_CLUSTER_ID_BYTES {
            return Err(HandshakeError::ClusterIdTooLong(id.len()));
        }
        out.reserve(HELLO_HEADER_BYTES + id.len());
        out.put_slice(&HELLO_MAGIC);
        out.put_u16(HELLO_VERSION);
        out.put_u64(self.node_id);
        out.put_u16(id.len() as u16);
        out.put_slice(id);
        Ok(())
    }

    /// Reads one hello, refusing a wrong magic or version before reading further, and
    /// never more than [`MAX_CLUSTER_ID_BYTES`] of cluster id.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Hello, HandshakeError> {
        let mut header = [0u8; HELLO_HEADER_BYTES];
        r.read_exact(&mut header)
            .await
            .map_err(HandshakeError::Io)?;
        let mut h = &header[..];
        let mut magic = [0u8; 4];
        h.copy_to_slice(&mut magic);
        if magic != HELLO_MAGIC {
            return Err(HandshakeError::BadMagic(magic));
        }
        let version = h.get_u16();
        if version != HELLO_VERSION {
            return Err(HandshakeError::UnsupportedVersion(version));
        }
        let node_id = h.get_u64();
        let len = h.get_u16() as usize;
        if len > MAX_CLUSTER_ID_BYTES {
            return Err(HandshakeError::ClusterIdTooLong(len));
        }
        let mut id = vec![0u8; len];
        r.read_exact(&mut id).await.map_err(HandshakeError::Io)?;
        let cluster_id = String::from_utf8(id).map_err(|_| HandshakeError::ClusterIdNotUtf8)?;
        Ok(Hello {
            node_id,
            cluster_id,
        })
    }

    fn of(security: &TransportSecurity) -> Hello {
        Hello {
            node_id: security.node_id(),
            cluster_id: security.cluster_id().to_string(),
        }
    }

    async fn write<W: AsyncWrite + Unpin>(&self, w: &mut W) -> Result<(), HandshakeError> {
        let mut out = BytesMut::new();
        self.encode(&mut out)?;
        w.write_all(&out).await.map_err(HandshakeError::Io)?;
        w.flush().await.map_err(HandshakeError::Io)
    }
}

/// The connector's half of an established connection: where frames are written.
pub(super) enum Outbound {
    Plain(OwnedWriteHalf),
    Tls(WriteHalf<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// The acceptor's halves of an established connection: frames are read from the first;
/// the second is held so the connection stays whole while it is read.
pub(super) enum Inbound {
    Plain(OwnedReadHalf, OwnedWriteHalf),
    Tls(
        ReadHalf<tokio_rustls::server::TlsStream<TcpStream>>,
        WriteHalf<tokio_rustls::server::TlsStream<TcpStream>>,
    ),
}

/// Runs the connector's side on a fresh connection to `peer` at `addr`, whose
/// certificate (with TLS) must be valid for `host`.
pub(super) async fn connect(
    tcp: TcpStream,
    peer: u64,
    host: &ServerName<'static>,
    security: &TransportSecurity,
) -> Result<Outbound, HandshakeError> {
    let limit = security.handshake_timeout();
    let handshake = async {
        match security.tls() {
            None => {
                let mut tcp = tcp;
                exchange_as_connector(&mut tcp, peer, security).await?;
                Ok(Outbound::Plain(tcp.into_split().1))
            }
            Some(tls) => {
                let mut s = tls
                    .connector()
                    .connect(host.clone(), tcp)
                    .await
                    .map_err(HandshakeError::Tls)?;
                exchange_as_connector(&mut s, peer, security).await?;
                Ok(Outbound::Tls(tokio::io::split(s).1))
            }
        }
    };
    tokio::time::timeout(limit, handshake)
        .await
        .map_err(|_| HandshakeError::Timeout(limit))?
}

async fn exchange_as_connector<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    peer: u64,
    security: &TransportSecurity,
) -> Result<(), HandshakeError> {
    Hello::of(security).write(s).await?;
    let theirs = Hello::read(s).await?;
    same_cluster(security, &theirs)?;
    if theirs.node_id != peer {
        return Err(HandshakeError::WrongNode {
            expected: peer,
            got: theirs.node_id,
        });
    }
    Ok(())
}

/// A connection the acceptor refused: why, and the node id it claimed if it got as far
/// as saying one.
#[derive(Debug)]
pub(super) struct Refusal {
    pub claimed: Option<u64>,
    pub why: HandshakeError,
}

/// Runs the acceptor's side on an accepted connection; `host_of` gives a peer's host
/// (`None`: not a peer). The node id the connection speaks for, and its halves.
pub(super) async fn accept(
    tcp: TcpStream,
    security: &TransportSecurity,
    host_of: impl Fn(u64) -> Option<ServerName<'static>>,
) -> Result<(u64, Inbound), Refusal> {
    let limit = security.handshake_timeout();
    let mut claimed = None;
    let handshake = accept_within(tcp, security, &host_of, &mut claimed);
    let outcome = tokio::time::timeout(limit, handshake)
        .await
        .unwrap_or(Err(HandshakeError::Timeout(limit)));
    outcome.map_err(|why| Refusal { claimed, why })
}

async fn accept_within(
    tcp: TcpStream,
    security: &TransportSecurity,
    host_of: &impl Fn(u64) -> Option<ServerName<'static>>,
    claimed: &mut Option<u64>,
) -> Result<(u64, Inbound), HandshakeError> {
    match security.tls() {
        None => {
            let mut tcp = tcp;
            let hello = Hello::read(&mut tcp).await?;
            *claimed = Some(hello.node_id);
            check_connector(&hello, security, host_of)?;
            Hello::of(security).write(&mut tcp).await?;
            let (r, w) = tcp.into_split();
            Ok((hello.node_id, Inbound::Plain(r, w)))
        }
        Some(tls) => {
            let mut s = tls
                .acceptor()
                .accept(tcp)
                .await
                .map_err(HandshakeError::Tls)?;
            let hello = Hello::read(&mut s).await?;
            *claimed = Some(hello.node_id);
            let host = check_connector(&hello, security, host_of)?;
            certificate_for_host(s.get_ref().1, hello.node_id, &host)?;
            Hello::of(security).write(&mut s).await?;
            let (r, w) = tokio::io::split(s);
            Ok((hello.node_id, Inbound::Tls(r, w)))
        }
    }
}

/// The connector's hello passes when it is of this cluster and of a peer that is not
/// this node: that peer's host.
fn check_connector(
    hello: &Hello,
    security: &TransportSecurity,
    host_of: &impl Fn(u64) -> Option<ServerName<'static>>,
) -> Result<ServerName<'static>, HandshakeError> {
    same_cluster(security, hello)?;
    if hello.node_id == security.node_id() {
        return Err(HandshakeError::OwnId(hello.node_id));
    }
    host_of(hello.node_id).ok_or(HandshakeError::UnknownPeer(hello.node_id))
}

fn same_cluster(security: &TransportSecurity, hello: &Hello) -> Result<(), HandshakeError> {
    if hello.cluster_id != security.cluster_id() {
        return Err(HandshakeError::WrongCluster {
            ours: security.cluster_id().to_string(),
            theirs: hello.cluster_id.clone(),
        });
    }
    Ok(())
}

/// The client certificate (its chain already verified by rustls) binds the connection to
/// `node` only when it is valid for `host`, the node's host in this node's peer list.
fn certificate_for_host(
    conn: &rustls::ServerConnection,
    node: u64,
    host: &ServerName<'static>,
) -> Result<(), HandshakeError> {
    let cert = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or(HandshakeError::NoCertificate)?;
    let wrong = |source| HandshakeError::CertificateHost {
        node,
        host: host.to_str().into_owned(),
        source,
    };
    let parsed = rustls::server::ParsedCertificate::try_from(cert).map_err(wrong)?;
    rustls::client::verify_server_name(&parsed, host).map_err(wrong)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn read(bytes: &[u8]) -> Result<Hello, HandshakeError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime builds");
        runtime.block_on(Hello::read(&mut &bytes[..]))
    }

    fn encoded(hello: &Hello) -> Vec<u8> {
        let mut out = BytesMut::new();
        hello
            .encode(&mut out)
            .expect("ids in the strategy are short");
        out.to_vec()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// What a peer sends before the hello is checked: anything is read or refused.
        #[test]
        fn any_bytes_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = read(&bytes);
        }

        #[test]
        fn a_hello_round_trips(node_id in any::<u64>(), cluster_id in "[a-zA-Z0-9-]{0,64}") {
            let hello = Hello { node_id, cluster_id };
            prop_assert_eq!(read(&encoded(&hello)).ok(), Some(hello));
        }

        /// A valid hello with bytes overwritten: read or refused, never a panic.
        #[test]
        fn a_damaged_hello_is_read_or_refused(
            node_id in any::<u64>(),
            cluster_id in "[a-z]{0,32}",
            damage in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        ) {
            let mut bytes = encoded(&Hello { node_id, cluster_id });
            for (at, byte) in damage {
                let i = at % bytes.len();
                bytes[i] = byte;
            }
            let _ = read(&bytes);
        }
    }
}
