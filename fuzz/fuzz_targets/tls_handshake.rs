//! Fuzzes what a client controls before it is authenticated on a TLS port: the bytes
//! of a TLS handshake into the broker's server configuration (with and without
//! required client certificates), a client certificate's DER into the principal it
//! maps to, and the Raft port's hello. Any panic or abort is a bug.
//!
//! Run: `cargo fuzz run tls_handshake` (see docs/broker.md).
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use broker::config::listeners::{ClientAuth, TlsSettings, TlsVersion};
use libfuzzer_sys::fuzz_target;
use rustls::{ServerConfig, ServerConnection};

/// A self-signed certificate and key in one PEM file (the keystore and, for mTLS,
/// the trust store), written once.
fn keystore() -> PathBuf {
    let key = rcgen::KeyPair::generate().expect("a key pair can be generated");
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .and_then(|p| p.self_signed(&key))
        .expect("a self-signed certificate can be made");
    let path = std::env::temp_dir().join(format!("strata-fuzz-{}.pem", std::process::id()));
    std::fs::write(&path, key.serialize_pem() + &cert.pem()).expect("temp dir is writable");
    path
}

static CONFIGS: LazyLock<Vec<Arc<ServerConfig>>> = LazyLock::new(|| {
    let path = keystore();
    [ClientAuth::None, ClientAuth::Required]
        .into_iter()
        .map(|client_auth| {
            let settings = TlsSettings {
                keystore: path.clone(),
                truststore: Some(path.clone()),
                client_auth,
                versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
                principal_rules: String::new(),
            };
            Arc::new(broker::tls::server_config(&settings).expect("the fuzz keystore loads"))
        })
        .collect()
});

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds")
});

fuzz_target!(|data: &[u8]| {
    for config in CONFIGS.iter() {
        let Ok(mut conn) = ServerConnection::new(config.clone()) else {
            continue;
        };
        let mut input = data;
        while !input.is_empty() {
            match conn.read_tls(&mut input) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if conn.process_new_packets().is_err() {
                break;
            }
        }
        let mut reply = Vec::new();
        let _ = conn.write_tls(&mut reply);
    }
    let _ = broker::principal::certificate_subject(data);
    let _ = RUNTIME.block_on(replication::transport::handshake::Hello::read(
        &mut &data[..],
    ));
});
