//! Who this node is on the Raft transport (cluster id, node id) and, optionally, the TLS
//! material it proves it with: one certificate chain and key, used both as the server
//! certificate of its listener and as the client certificate of its outbound
//! connections, and the CA certificates it trusts for its peers'.
//!
//! TLS is TLS 1.3 only (both ends are Strata brokers) with rustls's *ring* provider,
//! without session resumption, so every connection presents and checks certificates.
//! A node certificate must therefore be usable for both roles: when it has an extended
//! key usage extension, it lists both `serverAuth` and `clientAuth`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::client::Resumption;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::handshake::{HANDSHAKE_TIMEOUT, MAX_CLUSTER_ID_BYTES};

/// Why the transport's identity or TLS material could not be set up. Every variant
/// about a file names it.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("cluster id of {bytes} bytes exceeds the limit of {MAX_CLUSTER_ID_BYTES}")]
    ClusterIdTooLong { bytes: usize },

    #[error("{what} {path}: {source}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },

    #[error("{what} {path} holds no certificate")]
    NoCertificate { what: &'static str, path: PathBuf },

    #[error("keystore {path} holds no private key")]
    NoKey { path: PathBuf },

    #[error("truststore {path}: {source}")]
    TrustStore {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },

    #[error("truststore {path}: {source}")]
    Verifier {
        path: PathBuf,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },

    #[error("keystore {path}: {source}")]
    KeyStore {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },

    #[error("raft transport TLS 1.3 with the ring provider: {0}")]
    Protocol(#[source] rustls::Error),

    #[error("peer host {host:?} is neither a DNS name nor an IP address")]
    PeerHost { host: String },
}

/// The cryptography behind every TLS connection of the transport: rustls's *ring*
/// provider. rustls deprecates it for lacking post-quantum key exchange
/// (X25519MLKEM768, which its aws-lc-rs provider has); aws-lc-rs would add minutes of C
/// build to every cold build, and the broker's Kafka listeners use ring too. Switching
/// is this one function.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// This node's identity on the transport, given to both [`super::Transport`] and
/// [`super::serve`] (through the transport). Cheap to clone.
#[derive(Clone)]
pub struct TransportSecurity {
    cluster_id: String,
    node_id: u64,
    tls: Option<TransportTls>,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for TransportSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportSecurity")
            .field("cluster_id", &self.cluster_id)
            .field("node_id", &self.node_id)
            .field("tls", &self.tls.is_some())
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

impl TransportSecurity {
    /// Node `node_id` of cluster `cluster_id` (empty: no cluster id configured; it then
    /// talks only to peers without one), over TLS when `tls` is given. Fails only on a
    /// cluster id longer than [`MAX_CLUSTER_ID_BYTES`].
    pub fn new(
        cluster_id: impl Into<String>,
        node_id: u64,
        tls: Option<TransportTls>,
    ) -> Result<TransportSecurity, SecurityError> {
        let cluster_id = cluster_id.into();
        if cluster_id.len() > MAX_CLUSTER_ID_BYTES {
            return Err(SecurityError::ClusterIdTooLong {
                bytes: cluster_id.len(),
            });
        }
        Ok(TransportSecurity {
            cluster_id,
            node_id,
            tls,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        })
    }

    /// [`TransportSecurity::new`] without TLS.
    pub fn plaintext(
        cluster_id: impl Into<String>,
        node_id: u64,
    ) -> Result<TransportSecurity, SecurityError> {
        TransportSecurity::new(cluster_id, node_id, None)
    }

    /// [`TransportSecurity::new`] with TLS material loaded from PEM files (see
    /// [`TransportTls::from_pem_files`]).
    pub fn from_pem_files(
        cluster_id: impl Into<String>,
        node_id: u64,
        keystore: &Path,
        truststore: &Path,
    ) -> Result<TransportSecurity, SecurityError> {
        let tls = TransportTls::from_pem_files(keystore, truststore)?;
        TransportSecurity::new(cluster_id, node_id, Some(tls))
    }

    /// The same identity with another limit on a connection's handshake (TCP excluded:
    /// TLS and the hello exchange); [`HANDSHAKE_TIMEOUT`] by default.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> TransportSecurity {
        self.handshake_timeout = timeout;
        self
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    pub fn tls(&self) -> Option<&TransportTls> {
        self.tls.as_ref()
    }

    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }
}

/// The rustls configurations of a node's transport: its listener requires a client
/// certificate signed by a trusted CA; its connections present the same certificate
/// and verify the peer's for the peer's host. Cheap to clone: clones share the files
/// and what [`TransportTls::reload`] loads from them, which new connections use.
#[derive(Clone)]
pub struct TransportTls {
    inner: Arc<Reloadable>,
}

struct Reloadable {
    keystore: PathBuf,
    truststore: PathBuf,
    current: RwLock<Loaded>,
    /// The files' modification times and lengths when last loaded.
    stamps: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

#[derive(Clone)]
struct Loaded {
    connector: tokio_rustls::TlsConnector,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl Loaded {
    fn from_files(keystore: &Path, truststore: &Path) -> Result<Loaded, SecurityError> {
        let chain = certificates("keystore", keystore)?;
        let key = private_key(keystore)?;
        let roots = Arc::new(trust_store(truststore)?);
        let server = server_config(&roots, chain.clone(), key.clone_key(), keystore, truststore)?;
        let client = client_config(&roots, chain, key, keystore)?;
        Ok(Loaded {
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        })
    }
}

fn stamps(paths: [&Path; 2]) -> Vec<Option<(SystemTime, u64)>> {
    let stamp = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    };
    paths.into_iter().map(stamp).collect()
}

impl TransportTls {
    /// Loads `keystore` (a PEM file with this node's private key and its certificate
    /// chain, leaf first) and `truststore` (PEM CA certificates that sign the peers'
    /// certificates). An error names the file and what is wrong with it.
    pub fn from_pem_files(
        keystore: &Path,
        truststore: &Path,
    ) -> Result<TransportTls, SecurityError> {
        let now = stamps([keystore, truststore]);
        let loaded = Loaded::from_files(keystore, truststore)?;
        Ok(TransportTls {
            inner: Arc::new(Reloadable {
                keystore: keystore.to_path_buf(),
                truststore: truststore.to_path_buf(),
                current: RwLock::new(loaded),
                stamps: Mutex::new(now),
            }),
        })
    }

    fn loaded(&self) -> Loaded {
        // A poisoned lock still holds a whole configuration: the swap is one store.
        self.inner
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The connector for a new outbound connection, as last loaded.
    pub(super) fn connector(&self) -> tokio_rustls::TlsConnector {
        self.loaded().connector
    }

    /// The acceptor for a new inbound connection, as last loaded.
    pub(super) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.loaded().acceptor
    }

    /// Loads the files again when `forced` or when they changed since the last
    /// attempt (`None` when nothing was tried). On failure the previous material stays
    /// in use; connections already open keep theirs either way.
    pub fn reload(&self, forced: bool) -> Option<Result<(), SecurityError>> {
        let r = &self.inner;
        let now = stamps([&r.keystore, &r.truststore]);
        {
            let mut last = r.stamps.lock().unwrap_or_else(|p| p.into_inner());
            if !forced && *last == now {
                return None;
            }
            // Noted even when loading fails: a half-written file is reported once and
            // tried again at its next change.
            *last = now;
        }
        let loaded = Loaded::from_files(&r.keystore, &r.truststore);
        Some(loaded.map(|l| *r.current.write().unwrap_or_else(|p| p.into_inner()) = l))
    }
}

fn server_config(
    roots: &Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    keystore: &Path,
    truststore: &Path,
) -> Result<ServerConfig, SecurityError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|source| SecurityError::Verifier {
            path: truststore.to_path_buf(),
            source,
        })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(SecurityError::Protocol)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|source| SecurityError::KeyStore {
            path: keystore.to_path_buf(),
            source,
        })?;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

fn client_config(
    roots: &Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    keystore: &Path,
) -> Result<ClientConfig, SecurityError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(SecurityError::Protocol)?
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(chain, key)
        .map_err(|source| SecurityError::KeyStore {
            path: keystore.to_path_buf(),
            source,
        })?;
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// The PEM certificates of `path` (`what` names the file in errors): at least one.
pub fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, SecurityError> {
    let pem = |source| SecurityError::Pem {
        what,
        path: path.to_path_buf(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if chain.is_empty() {
        return Err(SecurityError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

/// The PEM private key of `path` (PKCS#8, PKCS#1 or SEC1, unencrypted).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, SecurityError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => SecurityError::NoKey {
            path: path.to_path_buf(),
        },
        source => SecurityError::Pem {
            what: "keystore",
            path: path.to_path_buf(),
            source,
        },
    })
}

/// The PEM certificates of `path` as trusted authorities.
pub fn trust_store(path: &Path) -> Result<RootCertStore, SecurityError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("truststore", path)? {
        roots
            .add(cert)
            .map_err(|source| SecurityError::TrustStore {
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(roots)
}
