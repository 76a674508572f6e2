//! The TLS side of a client: a rustls client configuration built from PEM files
//! (`ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`), the server
//! name a connection checks, and TLS failures turned into errors that say which
//! setting may fix them.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct};
use rustls::{RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::TlsConnector;

use super::config::{invalid, EndpointIdentification, SecurityConfig};
use super::config::{SSL_CA_LOCATION, SSL_CERTIFICATE_LOCATION, SSL_KEY_LOCATION};
use crate::error::{Error, Result};

/// The cryptography behind every TLS connection: rustls's *ring* provider, as the
/// broker uses. rustls deprecates it for lacking post-quantum key exchange
/// (X25519MLKEM768, which its aws-lc-rs provider has); the brokers this client talks
/// to do not offer that exchange either, and aws-lc-rs would add minutes of C build to
/// every cold build. Switching is this one function.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS client configuration of `config`: its CAs, its host name policy and its
/// client certificate, if any.
pub(crate) fn connector(config: &SecurityConfig) -> Result<TlsConnector> {
    let ca = config.ssl_ca_location.as_deref().ok_or_else(|| {
        invalid(
            SSL_CA_LOCATION,
            format!(
                "security.protocol={} needs the PEM file of the CA that signed the brokers' \
                 certificates (there are no built-in roots)",
                config.protocol
            ),
        )
    })?;
    let provider = provider();
    let roots = Arc::new(trust_anchors(ca)?);
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
        .build()
        .map_err(|e| invalid(SSL_CA_LOCATION, format!("{}: {e}", ca.display())))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("security.protocol", format!("TLS: {e}")))?;
    let builder = match config.ssl_endpoint_identification {
        EndpointIdentification::Https => builder.with_webpki_verifier(verifier),
        EndpointIdentification::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnlyVerifier(verifier))),
    };
    let cert = config.ssl_certificate_location.as_deref();
    let key = config.ssl_key_location.as_deref();
    let client = match (cert, key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(
                certificates(SSL_CERTIFICATE_LOCATION, cert)?,
                private_key(key)?,
            )
            .map_err(|e| invalid(SSL_KEY_LOCATION, format!("{}: {e}", key.display())))?,
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(invalid(
                SSL_KEY_LOCATION,
                "not set, but ssl.certificate.location is: give the certificate's private key"
                    .to_string(),
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                SSL_CERTIFICATE_LOCATION,
                "not set, but ssl.key.location is: give the key's certificate".to_string(),
            ))
        }
    };
    Ok(TlsConnector::from(Arc::new(client)))
}

fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = |e: rustls_pki_types::pem::Error| invalid(key, format!("{}: {e}", path.display()));
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if chain.is_empty() {
        return Err(invalid(
            key,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(chain)
}

fn trust_anchors(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(SSL_CA_LOCATION, path)? {
        roots
            .add(cert)
            .map_err(|e| invalid(SSL_CA_LOCATION, format!("{}: {e}", path.display())))?;
    }
    Ok(roots)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| invalid(SSL_KEY_LOCATION, format!("{}: {e}", path.display())))
}

/// The name a broker's certificate must carry: the host of `addr` (`host:port`,
/// `[v6]:port`), an IP address when the host is one.
pub(crate) fn server_name(addr: &str) -> Result<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => addr,
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_string()).map_err(|_| Error::Tls {
        addr: addr.to_string(),
        reason: format!("{host:?} is neither a DNS name nor an IP address"),
    })
}

/// The error of a failed TLS handshake with `addr`: [`Error::Tls`] when TLS itself
/// refused (certificates, alerts), [`Error::Connect`] (retriable) when the connection
/// was lost midway.
pub(crate) fn handshake_error(addr: &str, error: io::Error) -> Error {
    tls_failure(addr, &error).unwrap_or_else(|| Error::Connect {
        addr: addr.to_string(),
        reason: format!("TLS handshake: {error} (is this a TLS listener?)"),
    })
}

/// [`Error::Tls`] when `error` carries a TLS failure (an alert from the broker after
/// the handshake, such as a refused client certificate under TLS 1.3), else `None`.
pub(crate) fn tls_failure(addr: &str, error: &io::Error) -> Option<Error> {
    let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(Error::Tls {
        addr: addr.to_string(),
        reason: describe(tls),
    })
}

/// The rustls error with the setting that may fix it.
fn describe(error: &rustls::Error) -> String {
    use rustls::Error as E;
    use AlertDescription as A;
    use CertificateError as C;
    let hint = match error {
        E::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "the broker's certificate is not signed by a CA in ssl.ca.location"
        }
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "the broker's certificate does not name the host in the broker address; connect \
             by a name it carries, or set ssl.endpoint.identification.algorithm=none"
        }
        E::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => "the broker's certificate is outside its validity period",
        E::AlertReceived(A::CertificateRequired) => {
            "the broker requires a client certificate: set ssl.certificate.location and \
             ssl.key.location"
        }
        E::AlertReceived(
            A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::CertificateExpired,
        ) => {
            "the broker refused the client certificate (ssl.certificate.location): is it \
             valid and signed by a CA the broker trusts?"
        }
        _ => return error.to_string(),
    };
    format!("{error}: {hint}")
}

/// Whether `bytes` start a TLS record (RFC 8446 section 5.1): a content type from
/// change_cipher_spec (20) to application_data (23), then protocol version 3.0 to 3.4.
/// A Kafka frame that starts so would be over 300 MiB, beyond any frame limit.
pub(crate) fn is_record_header(bytes: [u8; 4]) -> bool {
    matches!(bytes, [20..=23, 3, 0..=4, _])
}

/// `ssl.endpoint.identification.algorithm=none`: rustls's WebPKI verification, with
/// only its host name check waived. The chain, validity period, key usage and
/// handshake signatures are checked as with `https`.
#[derive(Debug)]
struct ChainOnlyVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // WebPKI checks the name last, after the chain: its name error means all else
        // passed.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.0.root_hint_subjects()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn the_server_name_is_the_host_of_the_address() {
        let name = |a: &str| server_name(a).map(|n| n.to_str().into_owned());
        assert_eq!(
            name("broker1.example.com:9093").unwrap(),
            "broker1.example.com"
        );
        assert_eq!(name("localhost").unwrap(), "localhost");
        assert_eq!(
            server_name("127.0.0.1:9093").unwrap(),
            ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into())
        );
        assert_eq!(
            server_name("[::1]:9093").unwrap(),
            ServerName::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST).into())
        );
        assert!(matches!(server_name("bad host:1"), Err(Error::Tls { .. })));
    }

    #[test]
    fn tls_needs_a_ca_file_and_a_whole_client_certificate() {
        let mut c = SecurityConfig::from_properties([("security.protocol", "SSL")]).unwrap();
        let e = c.build().unwrap_err().to_string();
        assert!(
            e.starts_with("ssl.ca.location: security.protocol=SSL needs the PEM file"),
            "{e}"
        );
        c.set("ssl.ca.location", "/nonexistent/ca.pem").unwrap();
        let e = c.build().unwrap_err().to_string();
        assert!(
            e.starts_with("ssl.ca.location: /nonexistent/ca.pem:"),
            "{e}"
        );

        let dir = std::env::temp_dir().join(format!("strata-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no PEM here\n").unwrap();
        c.set("ssl.ca.location", empty.to_str().unwrap()).unwrap();
        let e = c.build().unwrap_err().to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failures_name_the_setting_to_change() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(describe(&unknown).ends_with("not signed by a CA in ssl.ca.location"));
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert!(describe(&name).contains("ssl.endpoint.identification.algorithm=none"));
        let required = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        assert!(describe(&required).contains("ssl.certificate.location"));
        let io = io::Error::new(io::ErrorKind::InvalidData, required);
        assert!(matches!(tls_failure("a:1", &io), Some(Error::Tls { .. })));
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert!(tls_failure("a:1", &eof).is_none());
        assert!(handshake_error("a:1", eof).is_retriable());
    }

    #[test]
    fn tls_records_are_told_from_frame_sizes() {
        assert!(is_record_header([21, 3, 3, 0])); // an alert
        assert!(is_record_header([22, 3, 1, 2])); // a handshake
        assert!(!is_record_header(1024i32.to_be_bytes()));
        assert!(!is_record_header([24, 3, 3, 0]));
        assert!(!is_record_header([22, 4, 3, 0]));
    }
}
