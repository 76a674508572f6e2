//! The transport over mutual TLS on loopback TCP, with certificates made here: a group
//! of three nodes elects and commits; a plaintext peer, a certificate from another CA,
//! and a certificate for another host than the claimed node's are refused (closed and
//! counted) on the side that checks them.

mod common;
#[path = "common/serving.rs"]
mod serving;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, TICK};
use log_store::LogConfig;
use raft::eraftpb::Message;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use replication::local_cluster::{LocalCluster, SecurityOf};
use replication::transport::{Hello, Transport, TransportSecurity, TransportStats};
use serving::{node, Node};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

const CLUSTER: &str = "tls-test";
const TIMEOUT: Duration = Duration::from_secs(30);

/// A certificate authority that writes PEM files into a directory.
struct Ca {
    name: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca {
            name: name.to_string(),
            issuer,
        }
    }

    /// Writes this CA's certificate as a truststore: its path.
    fn truststore(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("{}-ca.pem", self.name));
        std::fs::write(&path, self.issuer.pem()).unwrap();
        path
    }

    /// Writes a keystore (key, then certificate) for a node certificate valid for
    /// `names` (IP addresses or DNS names), for both TLS roles: its path.
    fn keystore(&self, dir: &Path, file: &str, names: &[&str]) -> PathBuf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, file);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let path = dir.join(format!("{file}.pem"));
        std::fs::write(&path, format!("{}{}", key.serialize_pem(), cert.pem())).unwrap();
        path
    }
}

/// Node `id` of the test cluster with the given keystore, trusting `truststore`.
fn tls(id: u64, keystore: &Path, truststore: &Path) -> TransportSecurity {
    TransportSecurity::from_pem_files(CLUSTER, id, keystore, truststore).unwrap()
}

fn refused(stats: &TransportStats) -> u64 {
    stats.refused_connections.load(Ordering::Relaxed)
}

/// A transport that sends to node 2 at `addr` (it never listens).
fn sender(security: TransportSecurity, addr: SocketAddr) -> (Transport, watch::Sender<bool>) {
    let (stop, stop_rx) = watch::channel(false);
    let t = Transport::new(stop_rx, security);
    t.add_peer(2, addr);
    (t, stop)
}

fn message(from: u64, commit: u64) -> Message {
    Message {
        from,
        to: 2,
        commit,
        ..Default::default()
    }
}

/// Sends from `sender` until both it and `node` counted a refused connection (one more
/// than before for `node`); then checks that nothing got through.
async fn refused_both_ways(node: &mut Node, sender: &Transport, from: u64) {
    let before = refused(node.transport.stats());
    eventually("both sides refuse the connection", || {
        sender.send(1, message(from, 1));
        refused(node.transport.stats()) > before && refused(sender.stats()) >= 1
    })
    .await;
    assert_eq!(sender.stats().connects.load(Ordering::Relaxed), 0);
    assert_eq!(sender.stats().sent.load(Ordering::Relaxed), 0);
    let received = node.transport.stats().received.load(Ordering::Relaxed);
    assert_eq!(received, 0);
    assert!(node.rx.try_recv().is_err());
}

/// Sends from `sender` until `node` receives a message: it got through.
async fn delivered(node: &mut Node, sender: &Transport, from: u64) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        sender.send(1, message(from, 7));
        match tokio::time::timeout(Duration::from_millis(50), node.rx.recv()).await {
            Ok(Some(e)) => {
                assert_eq!((e.message.from, e.message.commit), (from, 7));
                return;
            }
            _ => assert!(Instant::now() < deadline, "nothing delivered"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_three_over_mutual_tls_elects_and_commits() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster");
    let truststore = ca.truststore(certs.path());
    for id in 1..=3 {
        ca.keystore(certs.path(), &format!("node-{id}"), &["127.0.0.1"]);
    }
    let dir = certs.path().to_path_buf();
    let security: SecurityOf = Arc::new(move |id| {
        let keystore = dir.join(format!("node-{id}.pem"));
        TransportSecurity::from_pem_files(CLUSTER, id, &keystore, &truststore)
    });
    let data = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let mut cluster = LocalCluster::start_with_security(data.path(), 3, 1, config, TICK, security)
        .await
        .unwrap();
    for n in 0..5 {
        cluster
            .propose(1, common::batch(n, 2).to_vec(), TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("proposal {n}: {e}"));
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let status = cluster.status(1).await;
        if status.len() == 3 && status.iter().all(|s| s.committed_index >= 5) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not committed everywhere: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(cluster.leader(1).await.is_some());
    for id in 1..=3 {
        let stats = cluster.transport_stats(id).unwrap();
        assert_eq!(refused(&stats), 0, "node {id}");
        assert_eq!(stats.spoofed.load(Ordering::Relaxed), 0, "node {id}");
        assert!(stats.connects.load(Ordering::Relaxed) >= 2, "node {id}");
        assert!(stats.received.load(Ordering::Relaxed) > 0, "node {id}");
    }
    cluster.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_peer_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster");
    let trust = ca.truststore(certs.path());
    let keystore = ca.keystore(certs.path(), "node-2", &["127.0.0.1"]);
    let mut node = node(tls(2, &keystore, &trust), &[(1, None)]).await;

    // A right hello, in plaintext: not a TLS ClientHello, so the node closes.
    let mut conn = TcpStream::connect(node.addr).await.unwrap();
    let mut out = bytes::BytesMut::new();
    let hello = Hello {
        node_id: 1,
        cluster_id: CLUSTER.into(),
    };
    hello.encode(&mut out).unwrap();
    conn.write_all(&out).await.unwrap();
    let answer = tokio::time::timeout(TIMEOUT, Hello::read(&mut conn)).await;
    assert!(answer.expect("closed in time").is_err(), "no answer");
    eventually("the raw connection counted", || {
        refused(node.transport.stats()) == 1
    })
    .await;

    // A plaintext transport: refused too, and it counts the closed connection.
    let plain = TransportSecurity::plaintext(CLUSTER, 1).unwrap();
    let (node_1, _stop) = sender(plain, node.addr);
    refused_both_ways(&mut node, &node_1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster");
    let trust = ca.truststore(certs.path());
    let keystore = ca.keystore(certs.path(), "node-2", &["127.0.0.1"]);
    let mut node = node(tls(2, &keystore, &trust), &[(1, None)]).await;

    // Node 1's certificate is signed by another CA; it trusts node 2's.
    let other = Ca::new("other");
    let foreign = other.keystore(certs.path(), "node-1-foreign", &["127.0.0.1"]);
    let (node_1, _stop) = sender(tls(1, &foreign, &trust), node.addr);
    refused_both_ways(&mut node, &node_1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster");
    let trust = ca.truststore(certs.path());
    let keystore = ca.keystore(certs.path(), "node-2", &["127.0.0.1"]);
    let elsewhere = ca.keystore(certs.path(), "elsewhere", &["10.9.9.9"]);

    // Node 1 (known to node 2 at 127.0.0.1) presents a certificate for 10.9.9.9.
    let mut node_2 = node(tls(2, &keystore, &trust), &[(1, None)]).await;
    let (node_1, _stop) = sender(tls(1, &elsewhere, &trust), node_2.addr);
    refused_both_ways(&mut node_2, &node_1, 1).await;

    // And node 1 refuses a node 2 whose certificate is for 10.9.9.9.
    let mut impostor = node(tls(2, &elsewhere, &trust), &[(1, None)]).await;
    let (node_1, _stop) = sender(tls(1, &keystore, &trust), impostor.addr);
    refused_both_ways(&mut impostor, &node_1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_id_is_bound_to_its_certificates_host() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster");
    let trust = ca.truststore(certs.path());
    let keystore = ca.keystore(certs.path(), "node-2", &["127.0.0.1"]);
    let node_1_cert = ca.keystore(certs.path(), "node-1", &["127.0.0.1"]);
    let node_3_cert = ca.keystore(certs.path(), "node-3", &["node3.test"]);
    // Node 2 knows node 1 at 127.0.0.1 and node 3 as node3.test.
    let peers = vec![(1, None), (3, Some("node3.test"))];
    let mut node = node(tls(2, &keystore, &trust), &peers).await;

    // Node 1's certificate claiming node 3: refused.
    let (as_3, stop) = sender(tls(3, &node_1_cert, &trust), node.addr);
    refused_both_ways(&mut node, &as_3, 3).await;
    drop((as_3, stop));
    // Node 3's certificate claiming node 1: refused.
    let before = refused(node.transport.stats());
    let (as_1, stop) = sender(tls(1, &node_3_cert, &trust), node.addr);
    eventually("node 2 refuses node 3's certificate for node 1", || {
        as_1.send(1, message(1, 1));
        refused(node.transport.stats()) > before && refused(as_1.stats()) >= 1
    })
    .await;
    assert_eq!(as_1.stats().connects.load(Ordering::Relaxed), 0);
    drop((as_1, stop));
    assert!(node.rx.try_recv().is_err());

    // Each certificate for its own node: accepted.
    let (real_3, _stop3) = sender(tls(3, &node_3_cert, &trust), node.addr);
    delivered(&mut node, &real_3, 3).await;
    let (real_1, _stop1) = sender(tls(1, &node_1_cert, &trust), node.addr);
    delivered(&mut node, &real_1, 1).await;
    assert_eq!(refused(real_3.stats()) + refused(real_1.stats()), 0);
}
