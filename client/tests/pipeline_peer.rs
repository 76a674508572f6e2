//! The pipelined connection ([`client::connection::Pipeline`]) against a scripted peer
//! that reads requests ahead of its answers: several requests really are in flight on
//! one connection (the peer answers none until it has read them all), over TCP and
//! TLS, and each gets its own answer; a request without response (Produce, acks=0)
//! takes no answer's place; and each failure breaks the connection and fails every
//! request pending on it: a mismatched correlation id, a timeout, an oversized frame.
//! Dropping a pending answer leaves the stream in step. A connection with nothing
//! outstanding still notices the peer closing it, or sending what nobody asked for,
//! and is broken (and closed) at once; a failure marks the connection broken before
//! any request hears of it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use client::connection::{Connection, ConnectionConfig, PendingResponse, Pipeline};
use client::{Error, SecurityConfig};
use common::versions;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// What the peer does with a request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    /// Answers each Metadata request with the topic it asked about.
    Echo,
    /// As `Echo`, but the first answer after the handshake carries another
    /// correlation id.
    WrongFirstId,
    /// As `Echo`, but the first answer after the handshake announces a 1 GiB frame.
    HugeFirstFrame,
    /// Answers nothing after the handshake.
    Silent,
    /// As `Echo`, then closes its sending side after the first answer (as a broker
    /// closing an idle connection), reading on until the client hangs up.
    CloseAfterFirst,
    /// As `Echo`, then sends bytes nobody asked for after the first answer.
    ChatterAfterFirst,
}

/// Serves one connection: ApiVersions at once; other requests are read ahead, and
/// none is answered before `hold` requests that expect an answer have been read.
/// Produce requests with acks=0 get no answer. Says on `hung_up` when the client
/// closed the connection.
async fn serve(
    stream: impl AsyncRead + AsyncWrite + Send + 'static,
    script: Script,
    hold: usize,
    hung_up: mpsc::UnboundedSender<()>,
) {
    let (mut read, mut write) = tokio::io::split(stream);
    // Answers, and whether they count towards `hold` (the handshake's do not).
    let (tx, mut rx) = mpsc::unbounded_channel::<(Vec<u8>, bool)>();
    tokio::spawn(async move {
        let mut held = Vec::new();
        let (mut counted, mut released) = (0, false);
        while let Some((out, counts)) = rx.recv().await {
            held.push(out);
            counted += usize::from(counts);
            released |= counted >= hold;
            if counts && !released {
                continue;
            }
            for out in held.drain(..) {
                let written = write.write_all(&out).await.and(write.flush().await);
                if written.is_err() {
                    return;
                }
            }
            if counts && script == Script::CloseAfterFirst {
                let _ = write.shutdown().await;
                return;
            }
            if counts && script == Script::ChatterAfterFirst {
                let _ = write.write_all(&[0, 0, 0, 8, 1, 2]).await;
                let _ = write.flush().await;
            }
        }
    });
    let mut answered = 0;
    while let Some((header, body)) = common::read_request(&mut read).await {
        let counts = header.request_api_key != ApiKey::ApiVersions as i16;
        let Some(out) = answer(&header, body, script, &mut answered) else {
            continue;
        };
        if tx.send((out, counts)).is_err() {
            break;
        }
    }
    let _ = hung_up.send(());
}

/// The frame answering one request, if any.
fn answer(
    header: &RequestHeader,
    mut body: Bytes,
    script: Script,
    answered: &mut usize,
) -> Option<Vec<u8>> {
    let v = header.request_api_version;
    let mut out = BytesMut::new();
    match ApiKey::try_from(header.request_api_key).expect("api") {
        ApiKey::ApiVersions => {
            let ranges = [
                (ApiKey::ApiVersions, 0, 3),
                (ApiKey::Metadata, 0, 12),
                (ApiKey::Produce, 0, 11),
            ];
            versions(&ranges).encode(&mut out, v).expect("encode");
            return Some(common::response_frame(header, &out).to_vec());
        }
        ApiKey::Produce => {
            let request = ProduceRequest::decode(&mut body, v).expect("produce");
            assert_eq!(request.acks, 0, "only acks=0 Produce requests here");
            return None;
        }
        ApiKey::Metadata => {}
        other => panic!("unexpected {other:?}"),
    }
    *answered += 1;
    let first = *answered == 1;
    let request = MetadataRequest::decode(&mut body, v).expect("metadata");
    let topics = request.topics.unwrap_or_default();
    let response = MetadataResponse::default().with_topics(
        topics
            .into_iter()
            .map(|t| MetadataResponseTopic::default().with_name(t.name))
            .collect(),
    );
    response.encode(&mut out, v).expect("encode");
    match script {
        Script::Silent => None,
        Script::HugeFirstFrame if first => Some((1i32 << 30).to_be_bytes().to_vec()),
        Script::WrongFirstId if first => {
            let other = header
                .clone()
                .with_correlation_id(header.correlation_id + 100);
            Some(common::response_frame(&other, &out).to_vec())
        }
        _ => Some(common::response_frame(header, &out).to_vec()),
    }
}

async fn tcp_peer(script: Script, hold: usize) -> String {
    tcp_peer_watched(script, hold).await.0
}

/// A peer, and a channel that says when the client closed one of its connections.
async fn tcp_peer_watched(script: Script, hold: usize) -> (String, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (hung_up, hang_ups) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, script, hold, hung_up.clone()));
        }
    });
    (addr, hang_ups)
}

fn settings(request_timeout: Duration) -> ConnectionConfig {
    ConnectionConfig {
        request_timeout,
        max_frame_bytes: 1024 * 1024,
        ..ConnectionConfig::default()
    }
}

async fn pipeline(addr: &str, config: ConnectionConfig) -> Pipeline {
    Connection::connect(addr, config)
        .await
        .expect("connect")
        .into_pipeline()
        .expect("a pipeline")
}

fn metadata(topic: &str) -> MetadataRequest {
    MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]))
}

fn topic_of(response: &MetadataResponse) -> String {
    let name = response.topics[0].name.as_ref().expect("a name");
    name.0.to_string()
}

/// Sends a Metadata request per topic at once and checks that each gets its answer.
async fn answered_in_order(p: &Pipeline, topics: &[&str]) {
    let pending: Vec<PendingResponse<MetadataResponse>> = topics
        .iter()
        .map(|t| p.send(&metadata(t)).expect("queued"))
        .collect();
    for (topic, pending) in topics.iter().zip(pending) {
        let response = pending.await.expect("answered");
        assert_eq!(topic_of(&response), *topic);
    }
}

#[tokio::test]
async fn requests_are_in_flight_together_and_each_gets_its_answer() {
    // The peer answers nothing until it has read all four.
    let addr = tcp_peer(Script::Echo, 4).await;
    let p = pipeline(&addr, settings(Duration::from_secs(30))).await;
    answered_in_order(&p, &["a", "b", "c", "d"]).await;
    answered_in_order(&p, &["e", "f", "g", "h", "i"]).await;
    assert!(!p.is_broken());
}

#[tokio::test]
async fn a_request_without_response_takes_no_answers_place() {
    let addr = tcp_peer(Script::Echo, 2).await;
    let p = pipeline(&addr, settings(Duration::from_secs(30))).await;
    let first = p.send(&metadata("a")).expect("queued");
    let produce = ProduceRequest::default().with_acks(0).with_timeout_ms(1000);
    let written = p.send_no_response(&produce).expect("queued");
    let second = p.send(&metadata("b")).expect("queued");
    written.await.expect("written");
    assert_eq!(topic_of(&first.await.expect("answered")), "a");
    assert_eq!(topic_of(&second.await.expect("answered")), "b");
}

#[tokio::test]
async fn a_dropped_pending_answer_leaves_the_stream_in_step() {
    let addr = tcp_peer(Script::Echo, 1).await;
    let p = pipeline(&addr, settings(Duration::from_secs(30))).await;
    drop(p.send(&metadata("dropped")).expect("queued"));
    let kept = p.send(&metadata("kept")).expect("queued");
    assert_eq!(topic_of(&kept.await.expect("answered")), "kept");
    assert!(!p.is_broken());
}

/// Three requests in flight; the first fails with what `first` accepts, the others
/// with a retriable I/O error; the connection is broken and refuses more.
async fn everything_pending_fails(script: Script, timeout: Duration, first: fn(&Error) -> bool) {
    let addr = tcp_peer(script, 3).await;
    let p = pipeline(&addr, settings(timeout)).await;
    let pending: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|t| p.send(&metadata(t)).expect("queued"))
        .collect();
    let mut results = Vec::new();
    for pending in pending {
        results.push(pending.await.expect_err("failed"));
        assert!(
            p.is_broken(),
            "broken before a request hears of the failure"
        );
    }
    assert!(first(&results[0]), "{}", results[0]);
    for e in &results[1..] {
        assert!(matches!(e, Error::Io { .. }), "{e}");
        assert!(e.is_retriable(), "{e}");
    }
    assert!(p.is_broken());
    let again = p.send(&metadata("d")).map(|_| ()).expect_err("refused");
    assert!(matches!(again, Error::Io { .. }), "{again}");
}

#[tokio::test]
async fn a_mismatched_correlation_id_fails_everything_pending() {
    everything_pending_fails(Script::WrongFirstId, Duration::from_secs(30), |e| {
        matches!(e, Error::Decode { .. }) && e.to_string().contains("correlation id")
    })
    .await;
}

#[tokio::test]
async fn a_timeout_fails_everything_pending() {
    everything_pending_fails(Script::Silent, Duration::from_secs(1), |e| {
        matches!(e, Error::Timeout { .. })
    })
    .await;
}

#[tokio::test]
async fn an_oversized_frame_fails_everything_pending() {
    everything_pending_fails(Script::HugeFirstFrame, Duration::from_secs(30), |e| {
        matches!(e, Error::FrameSize { .. })
    })
    .await;
}

/// The peer answers one request, then does what `script` says while nothing is
/// outstanding: the pipeline breaks and closes the connection by itself (the peer sees
/// it hang up), and later sends fail at once.
async fn an_idle_connection_breaks(script: Script) {
    let (addr, mut hang_ups) = tcp_peer_watched(script, 1).await;
    let p = pipeline(&addr, settings(Duration::from_secs(30))).await;
    answered_in_order(&p, &["a"]).await;
    // Bounded only so that a failing test fails instead of hanging.
    let hung_up = tokio::time::timeout(Duration::from_secs(10), hang_ups.recv()).await;
    hung_up
        .expect("the client hung up in time")
        .expect("a peer");
    assert!(p.is_broken());
    let again = p.send(&metadata("b")).map(|_| ()).expect_err("refused");
    assert!(matches!(again, Error::Io { .. }), "{again}");
}

#[tokio::test]
async fn a_connection_the_peer_closed_while_idle_breaks() {
    an_idle_connection_breaks(Script::CloseAfterFirst).await;
}

#[tokio::test]
async fn bytes_nobody_asked_for_break_an_idle_connection() {
    an_idle_connection_breaks(Script::ChatterAfterFirst).await;
}

/// A CA and a certificate for 127.0.0.1 it signed, as PEM files in `dir`.
fn make_pki(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key)?;
    let issuer = Issuer::new(params, ca_key);
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(&key, &issuer)?;
    std::fs::write(dir.join("broker.pem"), key.serialize_pem() + &cert.pem())?;
    Ok(())
}

/// The ring provider, as the client uses (deprecated only for lacking post-quantum
/// key exchange).
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[tokio::test]
async fn requests_are_in_flight_together_over_tls() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    make_pki(dir.path()).expect("certificates");
    let keystore = dir.path().join("broker.pem");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&keystore)
        .expect("certificates")
        .collect::<Result<_, _>>()
        .expect("PEM");
    let key = PrivateKeyDer::from_pem_file(&keystore).expect("key");
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(stream) = acceptor.accept(tcp).await {
                let (hung_up, _) = mpsc::unbounded_channel();
                tokio::spawn(serve(stream, Script::Echo, 8, hung_up));
            }
        }
    });
    let ca = dir.path().join("ca.pem");
    let security = SecurityConfig::from_properties([
        ("security.protocol", "SSL"),
        ("ssl.ca.location", ca.to_str().expect("UTF-8 path")),
    ])
    .and_then(|c| c.build())
    .expect("TLS settings");
    let config = ConnectionConfig {
        security,
        ..settings(Duration::from_secs(30))
    };
    let p = pipeline(&addr, config).await;
    let topics: Vec<String> = (0..8)
        .map(|i| format!("topic-{i}-{}", "x".repeat(2000)))
        .collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    answered_in_order(&p, &names).await;
    answered_in_order(&p, &names[..3]).await;
}
