//! TLS for the Kafka listeners: a rustls server configuration per SSL listener, built
//! from its PEM files (`ssl.keystore.location`, `ssl.truststore.location`), and built
//! again when those files change or the broker gets SIGHUP, so certificates rotate
//! without a restart. A configuration that fails to load is reported and the one in
//! use stays; connections already open keep the configuration they started with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use replication::transport::security::{certificates, private_key, trust_store};
use replication::transport::{SecurityError, TransportTls};
use rustls::server::WebPkiClientVerifier;
use rustls::{ServerConfig, SupportedProtocolVersion};
use tracing::{info, warn};

use crate::config::listeners::{ClientAuth, TlsSettings, TlsVersion, RAFT_LISTENER};
use crate::metrics::{Metrics, TlsLabels};
use crate::shutdown::Shutdown;

/// How often the PEM files are checked for a change.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// A client's TLS handshake must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a listener's TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file is missing, unreadable or holds the wrong things.
    #[error(transparent)]
    Files(#[from] SecurityError),
    #[error("client certificate verification: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("ssl.keystore.location {path}: {source}")]
    KeyStore {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// The cryptography behind every TLS connection: rustls's *ring* provider. rustls
/// deprecates it for lacking post-quantum key exchange (X25519MLKEM768, which its
/// aws-lc-rs provider has); the Kafka clients in use (librdkafka on OpenSSL 3.0, Java
/// 17/21) do not offer that exchange either, and aws-lc-rs would add minutes of C
/// build to every cold build. Switching is this one function.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls configuration of `settings`.
pub fn server_config(settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let versions: Vec<&'static SupportedProtocolVersion> = settings
        .versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|source| TlsError::KeyStore {
            path: settings.keystore.clone(),
            source,
        })?;
    let builder = match (&settings.truststore, settings.client_auth) {
        (Some(path), auth) if auth != ClientAuth::None => {
            let roots = Arc::new(trust_store(path)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = match auth {
                ClientAuth::Requested => verifier.allow_unauthenticated().build()?,
                _ => verifier.build()?,
            };
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let path = &settings.keystore;
    let chain = certificates("keystore", path)?;
    let key = private_key(path)?;
    builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::KeyStore {
            path: path.clone(),
            source,
        })
}

/// What a file looked like when last loaded: its modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// One SSL listener's TLS configuration, replaced when its files change.
pub struct ListenerTls {
    name: String,
    settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
    stamps: Mutex<Vec<Stamp>>,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTls")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ListenerTls {
    /// Loads the listener's files (an error names the file and what is wrong with it).
    pub fn load(name: &str, settings: TlsSettings) -> Result<ListenerTls, TlsError> {
        let stamps = Mutex::new(Self::stamps_of(&settings));
        let config = server_config(&settings)?;
        Ok(ListenerTls {
            name: name.to_string(),
            settings,
            current: RwLock::new(Arc::new(config)),
            stamps,
        })
    }

    fn stamps_of(settings: &TlsSettings) -> Vec<Stamp> {
        std::iter::once(&settings.keystore)
            .chain(&settings.truststore)
            .map(|p| stamp(p))
            .collect()
    }

    /// The acceptor for a new connection, with the configuration loaded last.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        // A poisoned lock still holds a whole configuration: the swap is one store.
        let config = self.current.read().unwrap_or_else(|p| p.into_inner());
        tokio_rustls::TlsAcceptor::from(config.clone())
    }

    /// Loads the files again when `forced` or when they changed since the last
    /// attempt: `None` when nothing was tried.
    pub fn reload(&self, forced: bool) -> Option<Result<(), TlsError>> {
        let now = Self::stamps_of(&self.settings);
        {
            let mut stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
            if !forced && *stamps == now {
                return None;
            }
            // Noted even when loading fails, so a half-written file is reported once
            // and tried again at its next change.
            *stamps = now;
        }
        let config = server_config(&self.settings);
        Some(config.map(|config| {
            *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// What reloads its certificates: a Kafka or admin listener, or the Raft transport.
#[derive(Clone)]
pub enum Reloading {
    Listener(Arc<ListenerTls>),
    Raft(TransportTls),
}

impl Reloading {
    fn name(&self) -> &str {
        match self {
            Reloading::Listener(l) => l.name(),
            Reloading::Raft(_) => RAFT_LISTENER,
        }
    }

    fn reload(&self, forced: bool) -> Option<Result<(), String>> {
        match self {
            Reloading::Listener(l) => l.reload(forced).map(|r| r.map_err(|e| e.to_string())),
            Reloading::Raft(t) => t.reload(forced).map(|r| r.map_err(|e| e.to_string())),
        }
    }
}

/// Reloads the TLS configurations on SIGHUP and when their files change, until
/// shutdown. New connections use what was loaded last; open ones keep theirs.
pub async fn watch(reloading: Vec<Reloading>, metrics: Arc<Metrics>, mut shutdown: Shutdown) {
    use tokio::signal::unix::{signal, SignalKind};
    if reloading.is_empty() {
        return;
    }
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "no SIGHUP handler: certificates reload on file changes only");
            None
        }
    };
    loop {
        let forced = tokio::select! {
            _ = tokio::time::sleep(RELOAD_CHECK_INTERVAL) => false,
            Some(()) = async { hangup.as_mut()?.recv().await } => true,
            _ = shutdown.wait() => return,
        };
        for r in &reloading {
            let Some(outcome) = r.reload(forced) else {
                continue;
            };
            let labels = |outcome: &str| TlsLabels {
                listener: r.name().to_string(),
                outcome: outcome.into(),
            };
            match outcome {
                Ok(()) => {
                    metrics.tls_reloads.get_or_create(&labels("ok")).inc();
                    info!(listener = r.name(), "TLS certificates reloaded");
                }
                Err(e) => {
                    metrics.tls_reloads.get_or_create(&labels("failed")).inc();
                    warn!(listener = r.name(), error = %e, "TLS certificates not reloaded; the previous ones stay in use");
                }
            }
        }
    }
}
