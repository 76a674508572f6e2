//! The brokers' admin HTTP port as the CLI speaks to it (`strata cluster status |
//! rebalance-leaders`, `strata partition move`): over plain HTTP or HTTPS, with the
//! admin credentials of the environment.
//!
//! Guarantees:
//! - HTTPS always verifies the certificate chain and the host name (rustls, TLS 1.2
//!   and 1.3). With `--admin-ca` only the CAs of that PEM file are trusted, as
//!   `curl --cacert`; without it, the public CAs bundled with ureq (Mozilla's,
//!   `webpki-roots`). There is no switch to skip verification.
//! - Redirects are not followed, so credentials go to the address given and no other,
//!   and an HTTPS request is never downgraded.
//! - Every broker of a cluster is reached with the scheme and trust of `--admin`: the
//!   addresses `/cluster` lists are `HOST:PORT` only.
//!
//! The admin port's TLS is set apart from the Kafka listeners' (`ADMIN:SSL`,
//! `listener.name.admin.ssl.*`), so its settings are apart too, as Redpanda's `rpk`
//! keeps `--admin-api-tls-*` apart from `--tls-*`: these commands take no
//! `--command-config`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::Value;

/// How long one admin HTTP request may take.
pub(super) const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// The admin HTTP address of a broker started with the defaults.
pub(super) const ADMIN_DEFAULT: &str = "127.0.0.1:9644";

/// Environment variables with the admin port's credentials (a broker with
/// `admin.api.require.auth`): a bearer token, else a SCRAM user and password (HTTP
/// Basic).
pub(super) const ADMIN_TOKEN_ENV: &str = "STRATA_ADMIN_TOKEN";
pub(super) const ADMIN_USER_ENV: &str = "STRATA_ADMIN_USER";
pub(super) const ADMIN_PASSWORD_ENV: &str = "STRATA_ADMIN_PASSWORD";
/// Environment variables of the flags below (`strata dev-cluster --secure` writes them).
pub(super) const ADMIN_ENV: &str = "STRATA_ADMIN";
pub(super) const ADMIN_CA_ENV: &str = "STRATA_ADMIN_CA";

/// Where the admin port is and how to speak to it; flattened into each admin command.
#[derive(clap::Args, Debug, Clone)]
pub(super) struct AdminEndpointArgs {
    /// Any broker's admin HTTP address: HOST:PORT (plain HTTP unless --admin-tls or
    /// --admin-ca), http://HOST:PORT or https://HOST:PORT.
    #[arg(
        long,
        env = ADMIN_ENV,
        default_value = ADMIN_DEFAULT,
        value_name = "[SCHEME://]HOST:PORT"
    )]
    admin: String,
    /// Speak HTTPS to the admin port (a broker with ADMIN:SSL).
    #[arg(
        long,
        env = "STRATA_ADMIN_TLS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    admin_tls: bool,
    /// PEM file of the CA(s) that signed the admin port's certificate; only these are
    /// trusted, and HTTPS is implied [default: the public CAs bundled with strata].
    #[arg(long, env = ADMIN_CA_ENV, value_name = "FILE")]
    admin_ca: Option<PathBuf>,
}

/// The scheme of the admin port, and for HTTPS the CA file trusted (`None`: the
/// bundled public CAs).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scheme {
    Http,
    Https { ca: Option<PathBuf> },
}

impl Scheme {
    fn prefix(&self) -> &'static str {
        match self {
            Scheme::Http => "http://",
            Scheme::Https { .. } => "https://",
        }
    }
}

/// `--admin` as HOST:PORT and the scheme it names, if it names one.
fn split_scheme(admin: &str) -> Result<(Option<&'static str>, &str)> {
    let (scheme, rest) = match admin.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (Some("http"), rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (Some("https"), rest),
        Some((scheme, _)) => bail!("--admin {admin:?}: {scheme}:// is neither http nor https"),
        None => (None, admin),
    };
    let addr = rest.strip_suffix('/').unwrap_or(rest);
    if addr.is_empty() || addr.contains('/') {
        bail!("--admin {admin:?}: expected [http:// or https://]HOST:PORT, without a path");
    }
    Ok((scheme, addr))
}

impl AdminEndpointArgs {
    /// The scheme and HOST:PORT the flags ask for. `http://` with `--admin-tls` or
    /// `--admin-ca` (or their environment variables) is refused as a contradiction.
    fn resolve(&self) -> Result<(Scheme, String)> {
        let (written, addr) = split_scheme(&self.admin)?;
        let tls_asked = self.admin_tls || self.admin_ca.is_some();
        if written == Some("http") && tls_asked {
            bail!(
                "--admin {} is plain HTTP, but --admin-tls or --admin-ca (STRATA_ADMIN_TLS, \
                 {ADMIN_CA_ENV}) asks for HTTPS; write https:// or drop them",
                self.admin
            );
        }
        let scheme = if written == Some("https") || tls_asked {
            Scheme::Https {
                ca: self.admin_ca.clone(),
            }
        } else {
            Scheme::Http
        };
        Ok((scheme, addr.to_string()))
    }
}

/// A client of the brokers' admin ports.
pub(super) struct AdminClient {
    agent: ureq::Agent,
    scheme: Scheme,
    /// The HOST:PORT of `--admin`.
    addr: String,
}

impl AdminClient {
    /// A client for the flags: the CA file, when given, is read here, so a missing or
    /// empty one fails before any request.
    pub(super) fn new(args: &AdminEndpointArgs) -> Result<AdminClient> {
        let (scheme, addr) = args.resolve()?;
        let mut builder = ureq::AgentBuilder::new().redirects(0);
        if let Scheme::Https { ca: Some(ca) } = &scheme {
            builder = builder.tls_config(tls_config(ca)?);
        }
        Ok(AdminClient {
            agent: builder.build(),
            scheme,
            addr,
        })
    }

    /// The HOST:PORT of `--admin`.
    pub(super) fn addr(&self) -> &str {
        &self.addr
    }

    /// The URL of `path` on the admin port at `addr` (HOST:PORT).
    pub(super) fn url(&self, addr: &str, path: &str) -> String {
        format!("{}{addr}{path}", self.scheme.prefix())
    }

    /// `GET path` on `addr`, its JSON answer.
    pub(super) fn get(&self, addr: &str, path: &str) -> Result<Value> {
        let url = self.url(addr, path);
        let request = self.agent.get(&url).timeout(HTTP_TIMEOUT);
        let text = self
            .send(request, None)
            .with_context(|| format!("GET {url}"))?;
        serde_json::from_str(&text).with_context(|| format!("{url} did not answer JSON"))
    }

    /// `POST path` on `addr` with a JSON `body`, waiting up to `timeout`: the answer's
    /// text. A non-2xx answer is a [`Refused`] error (in the chain, for downcasting).
    pub(super) fn post(
        &self,
        addr: &str,
        path: &str,
        body: &str,
        timeout: Duration,
    ) -> Result<String> {
        let url = self.url(addr, path);
        let request = self.agent.post(&url).timeout(timeout);
        self.send(request, Some(body))
            .with_context(|| format!("POST {url}"))
    }

    fn send(&self, request: ureq::Request, json_body: Option<&str>) -> Result<String> {
        let request = with_credentials(request);
        let answer = match json_body {
            Some(body) => request
                .set("Content-Type", "application/json")
                .send_string(body),
            None => request.call(),
        };
        match answer {
            Ok(response) => response.into_string().context("reading the answer"),
            Err(ureq::Error::Status(status, response)) => {
                let text = response.into_string().unwrap_or_default();
                Err(Refused::new(status, &text).into())
            }
            Err(e) => Err(self.explain(e)),
        }
    }

    /// A transport error with what to change, when the cause is recognised. ureq's
    /// message already ends with its causes, so it is kept as one message (as a chain
    /// `{:#}` would print each cause twice).
    fn explain(&self, error: ureq::Error) -> anyhow::Error {
        let hint = match &self.scheme {
            Scheme::Https { ca } => rustls_error(&error).and_then(|e| tls_hint(e, ca.as_deref())),
            Scheme::Http => http_hint(&error).map(str::to_string),
        };
        let error = anyhow::Error::msg(error.to_string());
        match hint {
            Some(hint) => error.context(hint),
            None => error,
        }
    }
}

/// A non-2xx answer of an admin port: its status and its message (the `error` field
/// of a JSON answer, else the body).
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) status: u16,
    pub(super) message: String,
}

impl Refused {
    fn new(status: u16, body: &str) -> Refused {
        let json = serde_json::from_str::<Value>(body).ok();
        let error = json.as_ref().and_then(|v| v.get("error")?.as_str());
        Refused {
            status,
            message: error.unwrap_or(body).trim().to_string(),
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "answered {}: {}", self.status, self.message)
    }
}

impl std::error::Error for Refused {}

/// `request` with the admin credentials of the environment, if it has any.
fn with_credentials(request: ureq::Request) -> ureq::Request {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let header = authorization(
        var(ADMIN_TOKEN_ENV),
        var(ADMIN_USER_ENV),
        var(ADMIN_PASSWORD_ENV),
    );
    match header {
        Some(value) => request.set("Authorization", &value),
        None => request,
    }
}

/// The `Authorization` header: the bearer token if there is one, else Basic with a
/// user and password when both are given.
fn authorization(
    token: Option<String>,
    user: Option<String>,
    password: Option<String>,
) -> Option<String> {
    use base64::Engine as _;
    if let Some(token) = token {
        return Some(format!("Bearer {token}"));
    }
    let (user, password) = user.zip(password)?;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Some(format!("Basic {basic}"))
}

/// The cryptography of the admin client: rustls's *ring* provider, as the Kafka client
/// and ureq's own default use (see `client::security::tls` on its deprecation).
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS client configuration trusting exactly the certificates of the PEM file `ca`.
fn tls_config(ca: &Path) -> Result<Arc<ClientConfig>> {
    let shown = ca.display();
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("--admin-ca {shown}: reading the PEM file"))?;
    for certificate in certificates {
        let certificate =
            certificate.with_context(|| format!("--admin-ca {shown}: a broken PEM block"))?;
        roots
            .add(certificate)
            .with_context(|| format!("--admin-ca {shown}: not a CA certificate"))?;
    }
    if roots.is_empty() {
        bail!("--admin-ca {shown} holds no PEM certificate");
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS versions of the admin client")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The rustls error behind a ureq transport error, if TLS failed. ureq wraps it in an
/// `io::Error`, whose `source()` skips it, so each cause is also looked inside.
fn rustls_error(error: &ureq::Error) -> Option<&rustls::Error> {
    let mut cause = std::error::Error::source(error);
    while let Some(c) = cause {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = c.downcast_ref::<io::Error>().and_then(io::Error::get_ref);
        if let Some(tls) = inner.and_then(|e| e.downcast_ref::<rustls::Error>()) {
            return Some(tls);
        }
        cause = c.source();
    }
    None
}

/// What to change for a TLS failure, when there is something to say: `ca` is the
/// `--admin-ca` file, if one was given.
fn tls_hint(error: &rustls::Error, ca: Option<&Path>) -> Option<String> {
    use rustls::Error as E;
    use CertificateError as C;
    let hint = match error {
        E::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => match ca {
            Some(ca) => format!(
                "the admin port's certificate is not signed by a CA in --admin-ca {}",
                ca.display()
            ),
            None => format!(
                "the admin port's certificate is not signed by a public CA: give the PEM \
                 file of the CA that signed it with --admin-ca ({ADMIN_CA_ENV})"
            ),
        },
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "the admin port's certificate does not name the host of --admin: connect by a \
             name or IP address it carries"
                .to_string()
        }
        E::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => "the admin port's certificate is outside its validity period".to_string(),
        E::InvalidMessage(_) => "the admin port did not answer in TLS: if it is plain HTTP, \
             give http:// (or HOST:PORT) without --admin-tls and --admin-ca"
            .to_string(),
        _ => return None,
    };
    Some(hint)
}

/// What to change for a plain HTTP request that got no HTTP answer: an HTTPS port
/// closes the connection (after a TLS alert) on a plain request.
fn http_hint(error: &ureq::Error) -> Option<&'static str> {
    match error.kind() {
        ureq::ErrorKind::BadStatus | ureq::ErrorKind::Io => Some(
            "no HTTP answer: if the admin port is HTTPS (ADMIN:SSL), give https://HOST:PORT \
             or --admin-tls",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        admin: AdminEndpointArgs,
    }

    fn endpoint(args: &[&str]) -> Result<(Scheme, String)> {
        let flags = Flags::try_parse_from(std::iter::once("strata").chain(args.iter().copied()))?;
        flags.admin.resolve()
    }

    fn https(ca: Option<&str>) -> Scheme {
        Scheme::Https {
            ca: ca.map(PathBuf::from),
        }
    }

    #[test]
    fn the_scheme_comes_from_the_address_or_the_tls_flags() {
        let plain = endpoint(&["--admin", "10.0.0.1:9644"]).unwrap();
        assert_eq!(plain, (Scheme::Http, "10.0.0.1:9644".into()));
        let written = endpoint(&["--admin", "HTTPS://b1.example.com:9644/"]).unwrap();
        assert_eq!(written, (https(None), "b1.example.com:9644".into()));
        let flag = endpoint(&["--admin", "10.0.0.1:9644", "--admin-tls"]).unwrap();
        assert_eq!(flag.0, https(None));
        let ca = endpoint(&["--admin", "https://[::1]:9644", "--admin-ca", "/ca.pem"]).unwrap();
        assert_eq!(ca, (https(Some("/ca.pem")), "[::1]:9644".into()));
        let implied = endpoint(&["--admin", "10.0.0.1:9644", "--admin-ca", "/ca.pem"]).unwrap();
        assert_eq!(implied.0, https(Some("/ca.pem")));
        assert_eq!(
            endpoint(&["--admin", "http://h:1"]).unwrap().0,
            Scheme::Http
        );
    }

    #[test]
    fn contradictions_and_other_schemes_are_refused() {
        let e = endpoint(&["--admin", "http://h:1", "--admin-tls"]).unwrap_err();
        assert!(e.to_string().contains("is plain HTTP"), "{e}");
        assert!(endpoint(&["--admin", "http://h:1", "--admin-ca", "/ca.pem"]).is_err());
        let e = endpoint(&["--admin", "ftp://h:1"]).unwrap_err();
        assert!(e.to_string().contains("neither http nor https"), "{e}");
        for bad in ["https://", "h:1/cluster", "https://h:1/x/"] {
            assert!(endpoint(&["--admin", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_carry_the_scheme_for_every_broker() {
        let args = Flags::try_parse_from(["strata", "--admin", "h:1", "--admin-tls"]).unwrap();
        let client = AdminClient::new(&args.admin).unwrap();
        assert_eq!(client.addr(), "h:1");
        assert_eq!(client.url("h2:2", "/cluster"), "https://h2:2/cluster");
    }

    #[test]
    fn a_token_wins_over_a_user_and_basic_needs_both() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            authorization(s("t0k"), s("u"), s("p")).as_deref(),
            Some("Bearer t0k")
        );
        assert_eq!(
            authorization(None, s("bob"), s("pw")).as_deref(),
            Some("Basic Ym9iOnB3")
        );
        assert_eq!(authorization(None, s("bob"), None), None);
        assert_eq!(authorization(None, None, s("pw")), None);
    }

    #[test]
    fn refusals_show_the_json_error_or_the_body() {
        let r = Refused::new(403, r#"{"error":"needs super.users"}"#);
        assert_eq!(r.to_string(), "answered 403: needs super.users");
        assert_eq!(Refused::new(502, " bad gateway\n").message, "bad gateway");
    }

    #[test]
    fn ca_files_are_checked_when_the_client_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = format!("{:#}", tls_config(&missing).unwrap_err());
        assert!(
            e.starts_with("--admin-ca") && e.contains("missing.pem"),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no PEM here\n").unwrap();
        let e = tls_config(&empty).unwrap_err().to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_string()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        assert!(tls_config(&good).is_ok());
    }

    #[test]
    fn tls_failures_say_what_to_change() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let hint = tls_hint(&unknown, None).unwrap();
        assert!(hint.contains("not signed by a public CA") && hint.contains("--admin-ca"));
        let hint = tls_hint(&unknown, Some(Path::new("/etc/ca.pem"))).unwrap();
        assert!(hint.ends_with("a CA in --admin-ca /etc/ca.pem"), "{hint}");
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert!(tls_hint(&name, None)
            .unwrap()
            .contains("does not name the host"));
        let plain = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert!(tls_hint(&plain, None).unwrap().contains("plain HTTP"));
        assert!(tls_hint(&rustls::Error::HandshakeNotComplete, None).is_none());
    }
}
