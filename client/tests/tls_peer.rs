//! TLS against an in-process tokio-rustls broker that answers ApiVersions, with
//! certificates the test makes (rcgen): the chain and the host name are verified
//! (`ssl.endpoint.identification.algorithm=https`), `none` waives the name but never
//! the chain, and a broker that requires client certificates gets one from
//! `ssl.certificate.location` / `ssl.key.location` — or refuses the connection with an
//! error that names those settings.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use client::connection::{Connection, ConnectionConfig};
use client::{Error, SecurityConfig};
use common::versions;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The PEM files of the tests, made once per test process in a temporary directory:
/// `ca.pem` and `other-ca.pem` (two authorities), `broker-ip.pem` (key and certificate
/// for 127.0.0.1) and `broker-dns.pem` (for the name broker.test only), both from
/// `ca.pem`, and `client.cert.pem` / `client.key.pem`.
fn fixture(name: &str) -> PathBuf {
    static DIR: std::sync::LazyLock<tempfile::TempDir> = std::sync::LazyLock::new(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        make_pki(dir.path()).expect("test certificates");
        dir
    });
    DIR.path().join(name)
}

fn make_pki(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let authority = |name: &str| -> Result<_, Box<dyn std::error::Error>> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key)?;
        Ok((cert, Issuer::new(params, key)))
    };
    let (ca, issuer) = authority("strata test CA")?;
    let (other, _) = authority("another CA")?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    std::fs::write(dir.join("other-ca.pem"), other.pem())?;
    let leaf = |names: &[&str]| -> Result<(String, String), Box<dyn std::error::Error>> {
        let key = KeyPair::generate()?;
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)?.signed_by(&key, &issuer)?;
        Ok((key.serialize_pem(), cert.pem()))
    };
    for (file, names) in [
        ("broker-ip.pem", ["127.0.0.1"]),
        ("broker-dns.pem", ["broker.test"]),
    ] {
        let (key, cert) = leaf(&names)?;
        std::fs::write(dir.join(file), key + &cert)?;
    }
    let (key, cert) = leaf(&["client.test"])?;
    std::fs::write(dir.join("client.key.pem"), key)?;
    std::fs::write(dir.join("client.cert.pem"), cert)?;
    Ok(())
}

fn certificates(name: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(fixture(name))
        .expect("a test certificate file")
        .collect::<Result<_, _>>()
        .expect("PEM certificates")
}

/// The ring provider, as the client uses (deprecated only for lacking post-quantum
/// key exchange).
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS broker presenting `keystore` (key and certificate in one PEM file) that
/// requires a client certificate signed by `ca.pem` when `client_auth`.
async fn tls_broker(keystore: &str, client_auth: bool) -> String {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions");
    let builder = if client_auth {
        let mut roots = RootCertStore::empty();
        for cert in certificates("ca.pem") {
            roots.add(cert).expect("a CA certificate");
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .expect("client verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let key = PrivateKeyDer::from_pem_file(fixture(keystore)).expect("key");
    let config = builder
        .with_single_cert(certificates(keystore), key)
        .expect("server certificate");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = socket.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(tcp).await else {
                    return;
                };
                while let Some((header, _)) = common::read_request(&mut stream).await {
                    let mut body = BytesMut::new();
                    versions(&[(ApiKey::ApiVersions, 0, 3), (ApiKey::Metadata, 0, 12)])
                        .encode(&mut body, header.request_api_version)
                        .expect("encode");
                    let out = common::response_frame(&header, &body);
                    if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn config(settings: &[(&str, &str)]) -> ConnectionConfig {
    let ca = fixture("ca.pem");
    let mut properties = vec![
        ("security.protocol", "SSL"),
        ("ssl.ca.location", ca.to_str().expect("UTF-8 path")),
    ];
    properties.extend_from_slice(settings);
    let security = SecurityConfig::from_properties(properties)
        .and_then(|c| c.build())
        .expect("TLS settings");
    ConnectionConfig {
        connect_timeout: Duration::from_secs(30),
        security,
        ..ConnectionConfig::default()
    }
}

#[tokio::test]
async fn a_broker_certificate_naming_the_address_is_accepted() {
    let addr = tls_broker("broker-ip.pem", false).await;
    let conn = Connection::connect(&addr, config(&[])).await.expect("TLS");
    assert_eq!(conn.api_version(ApiKey::Metadata), Some(12));
}

#[tokio::test]
async fn a_certificate_for_another_name_needs_identification_off() {
    let addr = tls_broker("broker-dns.pem", false).await;
    let err = Connection::connect(&addr, config(&[])).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    assert!(!err.is_retriable());
    let text = err.to_string();
    assert!(text.contains("does not name the host"), "{text}");
    assert!(
        text.contains("ssl.endpoint.identification.algorithm=none"),
        "{text}"
    );

    let none = [("ssl.endpoint.identification.algorithm", "none")];
    Connection::connect(&addr, config(&none))
        .await
        .expect("no host name check");
}

#[tokio::test]
async fn the_chain_is_verified_even_without_the_name_check() {
    let addr = tls_broker("broker-ip.pem", false).await;
    let other = fixture("other-ca.pem");
    let other = other.to_str().expect("UTF-8 path");
    for identification in ["https", "none"] {
        let settings = [
            ("ssl.ca.location", other),
            ("ssl.endpoint.identification.algorithm", identification),
        ];
        let err = Connection::connect(&addr, config(&settings))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Tls { .. }), "{identification}: {err}");
        assert!(
            err.to_string()
                .contains("not signed by a CA in ssl.ca.location"),
            "{identification}: {err}"
        );
    }
}

#[tokio::test]
async fn a_required_client_certificate_comes_from_the_settings() {
    let addr = tls_broker("broker-ip.pem", true).await;
    let err = Connection::connect(&addr, config(&[])).await.unwrap_err();
    // Under TLS 1.3 the refusal arrives as an alert after the client's handshake.
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    assert!(
        err.to_string().contains("ssl.certificate.location"),
        "{err}"
    );

    let (cert, key) = (fixture("client.cert.pem"), fixture("client.key.pem"));
    let settings = [
        (
            "ssl.certificate.location",
            cert.to_str().expect("UTF-8 path"),
        ),
        ("ssl.key.location", key.to_str().expect("UTF-8 path")),
    ];
    Connection::connect(&addr, config(&settings))
        .await
        .expect("with a client certificate");
}
