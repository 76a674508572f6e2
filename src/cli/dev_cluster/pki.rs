//! The certificates of `strata dev-cluster --secure`, made with rcgen (ECDSA P-256) at
//! each start, as PEM text; `secure` writes them.
//!
//! - A CA, whose private key only lives in memory: once the certificates are signed
//!   it is dropped, so no one can issue another certificate from the folder.
//! - Per broker, a keystore (private key, then certificate) valid for 127.0.0.1 and
//!   localhost, with the serverAuth and clientAuth usages: it serves the Kafka
//!   listeners and the admin port, and both serves and connects on the Raft port.
//! - The administrator's client certificate (subject `CN=strata-dev-admin`,
//!   clientAuth): the principal `User:CN=strata-dev-admin` that `super.users` names,
//!   with which the dev cluster creates its SCRAM user over mutual TLS.
//!
//! Every certificate is valid from a day before `now` (clock skew) for a year.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The administrator certificate's common name; its principal is
/// `User:CN=<this>`.
pub(super) const ADMIN_COMMON_NAME: &str = "strata-dev-admin";
/// The names every broker certificate carries: the dev cluster listens on loopback.
const BROKER_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];
const ONE_DAY: Duration = Duration::from_secs(24 * 60 * 60);
const VALIDITY_DAYS: u32 = 365;

/// The PEM text of a dev cluster's certificates.
pub(super) struct DevCertificates {
    /// The CA certificate (the trust store of brokers and clients).
    pub ca_pem: String,
    /// Per broker, in node id order from 1: its key, then its certificate.
    pub broker_keystores: Vec<String>,
    /// The administrator's certificate.
    pub admin_cert_pem: String,
    /// The administrator's private key (PKCS#8).
    pub admin_key_pem: String,
}

/// A new CA and the certificates of `nodes` brokers and of the administrator, valid
/// from a day before `now` for a year.
pub(super) fn generate(nodes: u16, now: SystemTime) -> Result<DevCertificates> {
    let ca = authority(now).context("making the dev cluster's CA")?;
    let broker_keystores = (1..=nodes)
        .map(|id| {
            broker_keystore(&ca, id, now).with_context(|| format!("broker {id}'s certificate"))
        })
        .collect::<Result<Vec<_>>>()?;
    let (admin_cert_pem, admin_key_pem) =
        admin_certificate(&ca, now).context("the administrator's certificate")?;
    Ok(DevCertificates {
        ca_pem: ca.pem(),
        broker_keystores,
        admin_cert_pem,
        admin_key_pem,
    })
}

/// Parameters valid for `names` (IP addresses or DNS names), with common name `cn`,
/// from a day before `now` for [`VALIDITY_DAYS`].
fn params(names: &[&str], cn: &str, now: SystemTime) -> Result<CertificateParams> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name.push(DnType::CommonName, cn);
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .context("the clock is before 1970")?;
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + since_epoch.saturating_sub(ONE_DAY);
    params.not_after = epoch + since_epoch + ONE_DAY * VALIDITY_DAYS;
    Ok(params)
}

fn authority(now: SystemTime) -> Result<CertifiedIssuer<'static, KeyPair>> {
    let mut params = params(&[], "strata dev-cluster CA", now)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(CertifiedIssuer::self_signed(params, KeyPair::generate()?)?)
}

/// Broker `id`'s keystore: its private key, then its certificate.
fn broker_keystore(
    ca: &CertifiedIssuer<'static, KeyPair>,
    id: u16,
    now: SystemTime,
) -> Result<String> {
    let mut params = params(&BROKER_NAMES, &format!("strata-dev-broker-{id}"), now)?;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    Ok(key.serialize_pem() + &cert.pem())
}

/// The administrator's certificate and private key.
fn admin_certificate(
    ca: &CertifiedIssuer<'static, KeyPair>,
    now: SystemTime,
) -> Result<(String, String)> {
    let mut params = params(&[], ADMIN_COMMON_NAME, now)?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

    use super::*;

    fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[allow(deprecated)]
    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    #[test]
    fn brokers_and_the_administrator_chain_to_the_ca() {
        let made = generate(2, SystemTime::now()).unwrap();
        assert_eq!(made.broker_keystores.len(), 2);
        let mut roots = RootCertStore::empty();
        roots.add(certs(&made.ca_pem).remove(0)).unwrap();
        let roots = Arc::new(roots);
        let servers = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .unwrap();
        let now = UnixTime::now();
        for keystore in &made.broker_keystores {
            assert!(PrivateKeyDer::from_pem_slice(keystore.as_bytes()).is_ok());
            let leaf = certs(keystore).remove(0);
            for name in BROKER_NAMES {
                let name = ServerName::try_from(name).unwrap();
                servers
                    .verify_server_cert(&leaf, &[], &name, &[], now)
                    .unwrap();
            }
            let elsewhere = ServerName::try_from("10.0.0.1").unwrap();
            assert!(servers
                .verify_server_cert(&leaf, &[], &elsewhere, &[], now)
                .is_err());
        }
        let clients = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .unwrap();
        let admin = certs(&made.admin_cert_pem).remove(0);
        clients.verify_client_cert(&admin, &[], now).unwrap();
        assert!(PrivateKeyDer::from_pem_slice(made.admin_key_pem.as_bytes()).is_ok());
    }

    #[test]
    fn certificates_start_a_day_early_and_last_a_year() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let p = params(&BROKER_NAMES, "x", now).unwrap();
        assert_eq!(p.not_before.unix_timestamp(), 1_800_000_000 - 86_400);
        assert_eq!(p.not_after.unix_timestamp(), 1_800_000_000 + 365 * 86_400);
    }
}
