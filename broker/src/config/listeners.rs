//! Kafka listeners: `listeners`, `advertised.listeners`, `listener.security.protocol.map`,
//! the `ssl.*` settings and `sasl.enabled.mechanisms`, global or per listener
//! (`listener.name.<name>.ssl.*`), with Kafka's names and rules.
//!
//! `kafka-addr` (and `advertised-kafka-addr`) remain the shorthand for one PLAINTEXT
//! listener; setting both `kafka-addr` and `listeners` is an error. Listener names are
//! case-insensitive and reported upper-case, as Kafka normalises them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sasl::Mechanism;

/// Kafka's security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    fn parse(name: &str) -> Option<SecurityProtocol> {
        Some(match name.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    /// Kafka's name of the protocol.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

/// `ssl.client.auth`: whether a TLS listener asks for a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No certificate is asked for (Kafka's default).
    #[default]
    None,
    /// A certificate is asked for; a client without one still connects.
    Requested,
    /// A connection without a certificate the trust store vouches for is refused.
    Required,
}

/// TLS versions a listener accepts (`ssl.enabled.protocols`): 1.2 and 1.3 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// A TLS listener's settings, from the `ssl.*` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `ssl.keystore.location`: one PEM file holding the private key and the
    /// certificate chain, the listener's own certificate first.
    pub keystore: PathBuf,
    /// `ssl.truststore.location`: PEM certificates of the authorities that vouch for
    /// client certificates.
    pub truststore: Option<PathBuf>,
    pub client_auth: ClientAuth,
    pub versions: Vec<TlsVersion>,
    /// `ssl.principal.mapping.rules` (checked when set).
    pub principal_rules: String,
}

/// One resolved listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Upper-case name (`PLAINTEXT`, `SSL`, `INTERNAL`, …).
    pub name: String,
    pub protocol: SecurityProtocol,
    /// Where it binds (`host:port`; an empty host binds every interface).
    pub bind: String,
    /// What clients are told (`host:port`); the bound address when `None`.
    pub advertised: Option<String>,
    /// For SSL and SASL_SSL listeners.
    pub tls: Option<TlsSettings>,
    /// For SASL listeners: the mechanisms offered (`sasl.enabled.mechanisms`).
    pub sasl_mechanisms: Vec<Mechanism>,
}

/// The `ssl.*` and `sasl.*` keys a listener may set.
const SECURITY_KEYS: &[&str] = &[
    "sasl.enabled.mechanisms",
    "ssl.principal.mapping.rules",
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.protocol",
    "ssl.key.password",
];

/// The listener settings as configured, resolved by [`ListenerSettings::resolve`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListenerSettings {
    /// `kafka-addr`: the PLAINTEXT shorthand.
    pub kafka_addr: Option<String>,
    /// `advertised-kafka-addr`.
    pub advertised_kafka_addr: Option<String>,
    listeners: Option<String>,
    advertised_listeners: Option<String>,
    protocol_map: Option<String>,
    /// `ssl.*` and `sasl.*` values by (listener name upper-case, or "" for the
    /// global ones, key).
    security: BTreeMap<(String, String), String>,
}

/// The name under which the Raft port takes its security settings.
pub const RAFT_LISTENER: &str = "RAFT";
/// The name under which the admin HTTP port takes its security settings.
pub const ADMIN_LISTENER: &str = "ADMIN";

/// The address of the shorthand listener when nothing is configured.
pub const DEFAULT_KAFKA_ADDR: &str = "127.0.0.1:9092";

impl ListenerSettings {
    /// Sets `key` when it is a listener setting: `None` when it is not one.
    pub fn set(&mut self, key: &str, value: &str) -> Option<Result<(), String>> {
        let value = value.to_string();
        match key {
            "kafka-addr" => self.kafka_addr = Some(value),
            "advertised-kafka-addr" => self.advertised_kafka_addr = Some(value),
            "listeners" => self.listeners = Some(value),
            "advertised.listeners" => self.advertised_listeners = Some(value),
            "listener.security.protocol.map" => self.protocol_map = Some(value),
            _ => return self.set_security(key, value),
        }
        Some(Ok(()))
    }

    fn set_security(&mut self, key: &str, value: String) -> Option<Result<(), String>> {
        let (listener, ssl_key) = match key.strip_prefix("listener.name.") {
            Some(rest) => {
                let (name, k) = rest.split_once('.')?;
                (name.to_ascii_uppercase(), k)
            }
            None => (String::new(), key),
        };
        if !SECURITY_KEYS.contains(&ssl_key) {
            return None;
        }
        Some(check_value(ssl_key, &value).map(|()| {
            self.security.insert((listener, ssl_key.to_string()), value);
        }))
    }

    /// The listeners to open, in the order configured (the first is the one the
    /// broker registers as its main address).
    pub fn resolve(&self) -> Result<Vec<Listener>, String> {
        let Some(spec) = &self.listeners else {
            let bind = self.kafka_addr.as_deref().unwrap_or(DEFAULT_KAFKA_ADDR);
            let (_, port) = bind.rsplit_once(':').unwrap_or_default();
            if port.parse::<u16>().is_err() {
                return Err(format!("kafka-addr: {bind:?} is not HOST:PORT"));
            }
            return Ok(vec![Listener {
                name: "PLAINTEXT".into(),
                protocol: SecurityProtocol::Plaintext,
                bind: bind.to_string(),
                advertised: self.advertised_kafka_addr.clone(),
                tls: None,
                sasl_mechanisms: Vec::new(),
            }]);
        };
        if self.kafka_addr.is_some() || self.advertised_kafka_addr.is_some() {
            return Err(
                "set either listeners or kafka-addr (its PLAINTEXT shorthand), not both; \
                 advertised-kafka-addr goes with kafka-addr, advertised.listeners with listeners"
                    .into(),
            );
        }
        let protocols = self.protocol_map()?;
        let mut out: Vec<Listener> = Vec::new();
        for (name, bind) in endpoints("listeners", spec)? {
            let protocol = *protocols.get(&name).ok_or_else(|| {
                format!("listener {name} is not in listener.security.protocol.map")
            })?;
            if name == RAFT_LISTENER || name == ADMIN_LISTENER {
                return Err(format!(
                    "listeners: {name} names the {} port, not a Kafka listener",
                    if name == RAFT_LISTENER {
                        "Raft"
                    } else {
                        "admin HTTP"
                    }
                ));
            }
            if out.iter().any(|l| l.name == name) {
                return Err(format!("listeners names {name} twice"));
            }
            if out.iter().any(|l| port_of(&l.bind) == port_of(&bind)) {
                return Err(format!("listeners binds port {} twice", port_of(&bind)));
            }
            let tls = match protocol {
                SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => {
                    Some(self.tls_settings(&name)?)
                }
                SecurityProtocol::Plaintext | SecurityProtocol::SaslPlaintext => None,
            };
            let sasl_mechanisms = match protocol {
                SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl => {
                    let list = self.get(&name, "sasl.enabled.mechanisms");
                    mechanisms(list.unwrap_or(DEFAULT_SASL_MECHANISMS))?
                }
                SecurityProtocol::Plaintext | SecurityProtocol::Ssl => Vec::new(),
            };
            out.push(Listener {
                name,
                protocol,
                bind,
                advertised: None,
                tls,
                sasl_mechanisms,
            });
        }
        if let Some(advertised) = &self.advertised_listeners {
            for (name, addr) in endpoints("advertised.listeners", advertised)? {
                let l = out.iter_mut().find(|l| l.name == name).ok_or_else(|| {
                    format!("advertised.listeners names {name}, which listeners does not")
                })?;
                l.advertised = Some(addr);
            }
        }
        Ok(out)
    }

    /// The Raft port's TLS: `RAFT:SSL` in `listener.security.protocol.map`, with the
    /// `listener.name.raft.ssl.*` (or global `ssl.*`) keystore and truststore. Peers
    /// always authenticate each other, so a truststore is required. `None`: plaintext.
    pub fn raft_tls(&self) -> Result<Option<TlsSettings>, String> {
        let tls = self.port_tls(RAFT_LISTENER)?;
        if tls.as_ref().is_some_and(|t| t.truststore.is_none()) {
            return Err("RAFT:SSL needs ssl.truststore.location (or \
                 listener.name.raft.ssl.truststore.location): peers authenticate each \
                 other with certificates from it"
                .into());
        }
        Ok(tls)
    }

    /// The admin HTTP port's TLS: `ADMIN:SSL` in `listener.security.protocol.map`, with
    /// `listener.name.admin.ssl.*` (or the global `ssl.*`). `None`: plain HTTP.
    pub fn admin_tls(&self) -> Result<Option<TlsSettings>, String> {
        self.port_tls(ADMIN_LISTENER)
    }

    /// The TLS settings of a port that is not a Kafka listener (`RAFT`, `ADMIN`): SSL
    /// or PLAINTEXT (the default) in `listener.security.protocol.map`.
    fn port_tls(&self, name: &str) -> Result<Option<TlsSettings>, String> {
        match self.protocol_map()?.get(name) {
            None | Some(SecurityProtocol::Plaintext) => Ok(None),
            Some(SecurityProtocol::Ssl) => self.tls_settings(name).map(Some),
            Some(other) => Err(format!(
                "listener.security.protocol.map: {name} may be PLAINTEXT or SSL, not {}",
                other.name()
            )),
        }
    }

    /// `listener.security.protocol.map`, or Kafka's default (each protocol maps to
    /// itself).
    fn protocol_map(&self) -> Result<BTreeMap<String, SecurityProtocol>, String> {
        let text = self.protocol_map.as_deref().unwrap_or(
            "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        );
        let mut map = BTreeMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, protocol) = pair.split_once(':').ok_or_else(|| {
                format!("listener.security.protocol.map: {pair:?} is not NAME:PROTOCOL")
            })?;
            let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
                format!(
                    "listener.security.protocol.map: {protocol:?} is not PLAINTEXT, SSL, \
                     SASL_PLAINTEXT or SASL_SSL"
                )
            })?;
            map.insert(listener_name(name)?, protocol);
        }
        Ok(map)
    }

    /// Listener `name`'s value of a security key: its own, else the global one.
    fn get(&self, name: &str, key: &str) -> Option<&str> {
        let own = self.security.get(&(name.to_string(), key.to_string()));
        own.or_else(|| self.security.get(&(String::new(), key.to_string())))
            .map(String::as_str)
    }

    /// The TLS settings of listener `name`: its `listener.name.<name>.ssl.*` keys over
    /// the global `ssl.*` ones.
    fn tls_settings(&self, name: &str) -> Result<TlsSettings, String> {
        let get = |key: &str| self.get(name, key);
        if get("ssl.key.password").is_some() {
            return Err(format!(
                "listener {name}: ssl.key.password is set, but encrypted private keys are not \
                 supported; give ssl.keystore.location an unencrypted PEM key (readable by \
                 the broker only)"
            ));
        }
        let keystore = get("ssl.keystore.location").ok_or_else(|| {
            format!(
                "listener {name} is SSL but ssl.keystore.location is not set (a PEM file with \
                 the private key and the certificate chain)"
            )
        })?;
        // Values were checked when set (required, requested or none, maybe padded).
        let client_auth = match get("ssl.client.auth").map(str::trim) {
            Some("required") => ClientAuth::Required,
            Some("requested") => ClientAuth::Requested,
            _ => ClientAuth::None,
        };
        let truststore = get("ssl.truststore.location").map(PathBuf::from);
        if client_auth != ClientAuth::None && truststore.is_none() {
            return Err(format!(
                "listener {name}: ssl.client.auth asks for client certificates, so \
                 ssl.truststore.location must name the PEM certificates that vouch for them"
            ));
        }
        let versions = tls_versions(get("ssl.enabled.protocols").unwrap_or("TLSv1.2,TLSv1.3"))?;
        Ok(TlsSettings {
            keystore: PathBuf::from(keystore),
            truststore,
            client_auth,
            versions,
            principal_rules: get("ssl.principal.mapping.rules")
                .unwrap_or("DEFAULT")
                .to_string(),
        })
    }
}

/// Mechanisms a SASL listener offers unless `sasl.enabled.mechanisms` says otherwise
/// (PLAIN sends the password itself, so it is offered only when asked for).
pub const DEFAULT_SASL_MECHANISMS: &str = "SCRAM-SHA-256,SCRAM-SHA-512";

/// `sasl.enabled.mechanisms`: a list of PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
fn mechanisms(list: &str) -> Result<Vec<Mechanism>, String> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let m = Mechanism::parse(name).ok_or_else(|| {
            format!(
                "sasl.enabled.mechanisms: {name:?} is not offered; PLAIN, SCRAM-SHA-256 and \
                 SCRAM-SHA-512 are"
            )
        })?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        return Err("sasl.enabled.mechanisms names no mechanism".into());
    }
    Ok(out)
}

/// Checks one `ssl.*` or `sasl.*` value as it is set.
fn check_value(key: &str, value: &str) -> Result<(), String> {
    let v = value.trim();
    match key {
        "sasl.enabled.mechanisms" => mechanisms(v).map(|_| ()),
        "ssl.principal.mapping.rules" => crate::principal::PrincipalRules::parse(v).map(|_| ()),
        "ssl.keystore.type" | "ssl.truststore.type" if !v.eq_ignore_ascii_case("PEM") => Err(
            format!("{key}: {value:?} is not supported; the broker reads PEM files only"),
        ),
        "ssl.client.auth" if !matches!(v, "required" | "requested" | "none") => Err(format!(
            "{key}: {value:?} is not required, requested or none"
        )),
        "ssl.enabled.protocols" => tls_versions(v).map(|_| ()),
        "ssl.protocol" if !matches!(v, "TLS" | "TLSv1.2" | "TLSv1.3") => {
            Err(format!("{key}: {value:?} is not TLS, TLSv1.2 or TLSv1.3"))
        }
        "ssl.keystore.location" | "ssl.truststore.location" if v.is_empty() => {
            Err(format!("{key}: a file path is needed"))
        }
        _ => Ok(()),
    }
}

/// `ssl.enabled.protocols`: a list of TLSv1.2 and TLSv1.3.
fn tls_versions(list: &str) -> Result<Vec<TlsVersion>, String> {
    let mut out = Vec::new();
    for v in list.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        out.push(match v {
            "TLSv1.2" => TlsVersion::Tls12,
            "TLSv1.3" => TlsVersion::Tls13,
            other => {
                return Err(format!(
                    "ssl.enabled.protocols: {other:?} is not accepted; TLSv1.2 and TLSv1.3 only"
                ))
            }
        });
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err("ssl.enabled.protocols: name TLSv1.2, TLSv1.3 or both".into());
    }
    Ok(out)
}

/// `NAME://host:port,...` → (upper-case name, `host:port`).
fn endpoints(key: &str, text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, addr) = item
            .split_once("://")
            .ok_or_else(|| format!("{key}: {item:?} is not NAME://HOST:PORT"))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("{key}: {item:?} has no port"))?;
        if port.parse::<u16>().is_err() {
            return Err(format!("{key}: {item:?} has no valid port"));
        }
        // Kafka's empty host means every interface.
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        out.push((listener_name(name)?, format!("{host}:{port}")));
    }
    if out.is_empty() {
        return Err(format!("{key} names no listener"));
    }
    Ok(out)
}

fn listener_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(format!(
            "{name:?} is not a listener name (letters, digits, _ and -)"
        ));
    }
    Ok(name.to_ascii_uppercase())
}

fn port_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or("", |(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<ListenerSettings, String> {
        let mut s = ListenerSettings::default();
        for (k, v) in pairs {
            s.set(k, v).expect("a listener key")?;
        }
        Ok(s)
    }

    #[test]
    fn the_shorthand_is_one_plaintext_listener() {
        let l = ListenerSettings::default().resolve().unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(
            (l[0].name.as_str(), l[0].bind.as_str()),
            ("PLAINTEXT", DEFAULT_KAFKA_ADDR)
        );
        let s = settings(&[
            ("kafka-addr", "127.0.0.1:1"),
            ("advertised-kafka-addr", "h:2"),
        ]);
        let l = s.unwrap().resolve().unwrap();
        assert_eq!(l[0].advertised.as_deref(), Some("h:2"));
    }

    #[test]
    fn listeners_with_a_map_per_listener_ssl_and_advertised_names() {
        let s = settings(&[
            ("listeners", "internal://127.0.0.1:1, EXTERNAL://:2"),
            ("advertised.listeners", "EXTERNAL://broker.example:2"),
            (
                "listener.security.protocol.map",
                "INTERNAL:PLAINTEXT,EXTERNAL:SSL",
            ),
            ("ssl.keystore.location", "/k.pem"),
            ("listener.name.external.ssl.client.auth", " required "),
            ("listener.name.external.ssl.truststore.location", "/ca.pem"),
            ("ssl.enabled.protocols", "TLSv1.3"),
        ])
        .unwrap();
        let l = s.resolve().unwrap();
        assert_eq!(l[0].name, "INTERNAL");
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(
            (l[1].bind.as_str(), l[1].advertised.as_deref()),
            ("0.0.0.0:2", Some("broker.example:2"))
        );
        let tls = l[1].tls.as_ref().unwrap();
        assert_eq!(tls.client_auth, ClientAuth::Required);
        assert_eq!(
            tls.truststore.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        assert_eq!(tls.versions, vec![TlsVersion::Tls13]);
    }

    #[test]
    fn the_raft_port_takes_ssl_from_the_map() {
        assert_eq!(ListenerSettings::default().raft_tls(), Ok(None));
        let s = settings(&[
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,RAFT:SSL",
            ),
            ("listener.name.raft.ssl.keystore.location", "/node.pem"),
            ("ssl.truststore.location", "/ca.pem"),
        ])
        .unwrap();
        let tls = s.raft_tls().unwrap().unwrap();
        assert_eq!(tls.keystore, PathBuf::from("/node.pem"));
        let no_ca = settings(&[
            ("listener.security.protocol.map", "RAFT:SSL"),
            ("ssl.keystore.location", "/node.pem"),
        ]);
        assert!(no_ca
            .unwrap()
            .raft_tls()
            .unwrap_err()
            .contains("truststore"));
        let sasl = settings(&[("listener.security.protocol.map", "RAFT:SASL_SSL")]);
        assert!(sasl.unwrap().raft_tls().is_err());
        let named = settings(&[
            ("listeners", "RAFT://h:1"),
            ("listener.security.protocol.map", "RAFT:PLAINTEXT"),
        ]);
        assert!(named.unwrap().resolve().unwrap_err().contains("Raft port"));
        let admin = settings(&[
            ("listener.security.protocol.map", "ADMIN:SSL"),
            ("listener.name.admin.ssl.keystore.location", "/admin.pem"),
        ]);
        let tls = admin.unwrap().admin_tls().unwrap().unwrap();
        assert_eq!(tls.keystore, PathBuf::from("/admin.pem"));
    }

    #[test]
    fn bad_listener_settings_are_refused_with_the_reason() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("listeners", "PLAINTEXT://h:1"), ("kafka-addr", "h:2")],
                "not both",
            ),
            (&[("listeners", "SSL://h:1")], "ssl.keystore.location"),
            (&[("listeners", "OTHER://h:1")], "protocol.map"),
            (&[("listeners", "PLAINTEXT://h:1,PLAINTEXT://h:2")], "twice"),
            (&[("listeners", "PLAINTEXT://h:1,SSL://h:1")], "twice"),
            (&[("listeners", "PLAINTEXT://h")], "port"),
            (&[("listeners", "h:1")], "NAME://"),
            (&[("listeners", "SASL_SSL://h:1")], "ssl.keystore.location"),
            (
                &[
                    ("listeners", "SASL_PLAINTEXT://h:1"),
                    ("sasl.enabled.mechanisms", "GSSAPI"),
                ],
                "GSSAPI",
            ),
            (
                &[
                    ("listeners", "PLAINTEXT://h:1"),
                    ("advertised.listeners", "SSL://h:1"),
                ],
                "does not",
            ),
            (
                &[
                    ("listeners", "SSL://h:1"),
                    ("ssl.keystore.location", "/k"),
                    ("ssl.client.auth", "required"),
                ],
                "truststore",
            ),
            (
                &[
                    ("listeners", "SSL://h:1"),
                    ("ssl.keystore.location", "/k"),
                    ("ssl.key.password", "x"),
                ],
                "encrypted",
            ),
        ];
        for (pairs, why) in cases {
            let err = settings(pairs).and_then(|s| s.resolve()).unwrap_err();
            assert!(err.contains(why), "{pairs:?}: {err}");
        }
        for (k, v) in [
            ("ssl.keystore.type", "JKS"),
            ("ssl.client.auth", "sometimes"),
            ("ssl.enabled.protocols", "TLSv1.1"),
            ("ssl.protocol", "SSLv3"),
        ] {
            assert!(settings(&[(k, v)]).is_err(), "{k}={v}");
        }
        assert!(ListenerSettings::default()
            .set("ssl.cipher.suites", "x")
            .is_none());
    }
}
