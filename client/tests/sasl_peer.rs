//! SASL authentication against a scripted broker that runs Kafka's side of it with the
//! `sasl` crate: SaslHandshake v1, then SaslAuthenticate rounds, and nothing else
//! served before the exchange succeeds (as a Kafka broker, which closes the
//! connection). PLAIN and SCRAM-SHA-256/512 succeed with the right password; a wrong
//! password, a mechanism the listener does not enable and a broker without SASL are
//! [`Error::Authentication`] with the broker's reason, never a hang.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use client::connection::{Connection, ConnectionConfig};
use client::{Error, SaslMechanism as Mechanism, SecurityConfig};
use common::versions;
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, RequestHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sasl::{ScramCredential, ScramServer, MIN_ITERATIONS};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Kafka's SASL error codes.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// What the scripted broker knows: the mechanisms its listener enables, whether it
/// advertises SASL at all, and each user's password.
struct Listener {
    enabled: Vec<Mechanism>,
    advertises_sasl: bool,
    passwords: HashMap<String, String>,
}

/// Where one connection's authentication is.
enum Auth {
    Fresh,
    Handshaken(Mechanism),
    Scram(Mechanism, ScramServer),
    Done,
}

async fn sasl_broker(listener: Listener) -> String {
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr").to_string();
    let listener = Arc::new(listener);
    tokio::spawn(async move {
        while let Ok((stream, _)) = socket.accept().await {
            tokio::spawn(serve(stream, Arc::clone(&listener)));
        }
    });
    addr
}

async fn serve(mut stream: TcpStream, listener: Arc<Listener>) {
    let mut auth = Auth::Fresh;
    while let Some((header, body)) = common::read_request(&mut stream).await {
        let Some(answer) = answer(&listener, &mut auth, &header, body) else {
            return; // closes the connection, as Kafka does before authentication
        };
        let out = common::response_frame(&header, &answer);
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn encoded<T: Encodable>(message: &T, version: i16) -> Option<BytesMut> {
    let mut buf = BytesMut::new();
    message
        .encode(&mut buf, version)
        .expect("encode a response");
    Some(buf)
}

fn answer(
    listener: &Listener,
    auth: &mut Auth,
    header: &RequestHeader,
    mut body: Bytes,
) -> Option<BytesMut> {
    let v = header.request_api_version;
    match ApiKey::try_from(header.request_api_key).ok()? {
        ApiKey::ApiVersions => {
            let mut ranges = vec![(ApiKey::ApiVersions, 0, 3), (ApiKey::Metadata, 0, 12)];
            if listener.advertises_sasl {
                ranges.extend([
                    (ApiKey::SaslHandshake, 0, 1),
                    (ApiKey::SaslAuthenticate, 0, 2),
                ]);
            }
            encoded(&versions(&ranges), v)
        }
        ApiKey::SaslHandshake => {
            let request = SaslHandshakeRequest::decode(&mut body, v).ok()?;
            let names = listener
                .enabled
                .iter()
                .map(|m| StrBytes::from_static_str(m.name()));
            let mut response = SaslHandshakeResponse::default().with_mechanisms(names.collect());
            match Mechanism::parse(request.mechanism.as_str()) {
                Some(m) if listener.enabled.contains(&m) => *auth = Auth::Handshaken(m),
                _ => response.error_code = UNSUPPORTED_SASL_MECHANISM,
            }
            encoded(&response, v)
        }
        ApiKey::SaslAuthenticate => {
            let token = SaslAuthenticateRequest::decode(&mut body, v)
                .ok()?
                .auth_bytes;
            let response = match authenticate(listener, auth, &token) {
                Ok(bytes) => SaslAuthenticateResponse::default().with_auth_bytes(bytes.into()),
                Err(message) => SaslAuthenticateResponse::default()
                    .with_error_code(SASL_AUTHENTICATION_FAILED)
                    .with_error_message(Some(StrBytes::from_string(message))),
            };
            encoded(&response, v)
        }
        ApiKey::Metadata if matches!(auth, Auth::Done) => encoded(&MetadataResponse::default(), v),
        _ => None,
    }
}

/// One SaslAuthenticate token: the broker's answer, or its error message.
fn authenticate(listener: &Listener, auth: &mut Auth, token: &[u8]) -> Result<Vec<u8>, String> {
    let failed = |m: Mechanism| {
        format!(
            "Authentication failed during authentication due to invalid credentials with \
             SASL mechanism {}",
            m.name()
        )
    };
    match std::mem::replace(auth, Auth::Fresh) {
        Auth::Handshaken(Mechanism::Plain) => {
            let (user, password) = sasl::parse_plain(token).map_err(|e| e.to_string())?;
            if listener.passwords.get(&user).map(String::as_bytes) != Some(&password[..]) {
                return Err("Authentication failed: Invalid username or password".into());
            }
            *auth = Auth::Done;
            Ok(Vec::new())
        }
        Auth::Handshaken(m) => {
            let lookup = |user: &str| credential(listener, m, user);
            let (server, first) = ScramServer::start(m, token, lookup).map_err(|_| failed(m))?;
            *auth = Auth::Scram(m, server);
            Ok(first)
        }
        Auth::Scram(m, server) => {
            let (_, last) = server.finish(token).map_err(|_| failed(m))?;
            *auth = Auth::Done;
            Ok(last)
        }
        Auth::Fresh | Auth::Done => Err("Unexpected SaslAuthenticate request".into()),
    }
}

fn credential(listener: &Listener, m: Mechanism, user: &str) -> Option<ScramCredential> {
    let password = listener.passwords.get(user)?;
    let salt = sasl::new_salt().ok()?;
    Some(sasl::credential(
        m,
        password.as_bytes(),
        salt,
        MIN_ITERATIONS,
    ))
}

fn listener(enabled: &[Mechanism]) -> Listener {
    Listener {
        enabled: enabled.to_vec(),
        advertises_sasl: true,
        passwords: HashMap::from([("alice".to_string(), "s3cret".to_string())]),
    }
}

fn config(mechanism: &str, user: &str, password: &str) -> ConnectionConfig {
    let security = SecurityConfig::from_properties([
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", mechanism),
        ("sasl.username", user),
        ("sasl.password", password),
    ])
    .and_then(|c| c.build())
    .expect("SASL settings");
    ConnectionConfig {
        request_timeout: Duration::from_secs(30),
        security,
        ..ConnectionConfig::default()
    }
}

#[tokio::test]
async fn every_mechanism_authenticates_with_the_right_password() {
    for m in Mechanism::ALL {
        let addr = sasl_broker(listener(&[m])).await;
        let mut conn = Connection::connect(&addr, config(m.name(), "alice", "s3cret"))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", m.name()));
        // The broker serves nothing but SASL before the exchange succeeded.
        conn.send(&MetadataRequest::default())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", m.name()));
    }
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_the_brokers_message() {
    for m in Mechanism::ALL {
        let addr = sasl_broker(listener(&[m])).await;
        for (user, password) in [("alice", "wrong"), ("mallory", "s3cret")] {
            let err = Connection::connect(&addr, config(m.name(), user, password))
                .await
                .unwrap_err();
            let Error::Authentication {
                mechanism, reason, ..
            } = &err
            else {
                panic!("{}: {err}", m.name());
            };
            assert_eq!(*mechanism, m.name());
            assert!(reason.starts_with("Authentication failed"), "{err}");
            assert!(!err.is_retriable(), "{err}");
        }
    }
}

#[tokio::test]
async fn a_mechanism_the_listener_lacks_names_those_it_has() {
    let addr = sasl_broker(listener(&[Mechanism::ScramSha512])).await;
    let err = Connection::connect(&addr, config("PLAIN", "alice", "s3cret"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Authentication { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("UNSUPPORTED_SASL_MECHANISM"), "{text}");
    assert!(
        text.contains("the listener enables: SCRAM-SHA-512"),
        "{text}"
    );
}

#[tokio::test]
async fn a_broker_without_sasl_is_named() {
    let addr = sasl_broker(Listener {
        advertises_sasl: false,
        ..listener(&[Mechanism::Plain])
    })
    .await;
    let err = Connection::connect(&addr, config("PLAIN", "alice", "s3cret"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Authentication { .. }), "{err}");
    assert!(err.to_string().contains("offers no SASL"), "{err}");
}
