//! Three Raft nodes in one process, talking over loopback TCP through the real
//! transport: proposals to several groups commit with identical offsets on every replica,
//! and the groups keep committing when one node stops.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use log_store::{Log, LogConfig};
use replication::group::{discard_logger, Group, ProposeError};
use replication::node::{self, NodeHandle};
use replication::transport::{self, Transport};
use replication::LogStorage;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

const NODES: u64 = 3;
const GROUPS: u64 = 4;

fn batch(n: u64) -> Vec<u8> {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from(format!("value {n}"))),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [record].iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encoding one small record cannot fail");
    buf.to_vec()
}

struct Cluster {
    handles: HashMap<u64, NodeHandle>,
    stops: HashMap<u64, watch::Sender<bool>>,
    logs: HashMap<(u64, u64), Arc<RwLock<Log>>>,
    _dir: tempfile::TempDir,
}

async fn start_cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let mut listeners = HashMap::new();
    let mut addrs = HashMap::new();
    for id in 1..=NODES {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.insert(id, l.local_addr().unwrap());
        listeners.insert(id, l);
    }
    let voters: Vec<u64> = (1..=NODES).collect();
    let mut cluster = Cluster {
        handles: HashMap::new(),
        stops: HashMap::new(),
        logs: HashMap::new(),
        _dir: dir,
    };
    for id in 1..=NODES {
        let (stop, stop_rx) = watch::channel(false);
        let transport = Transport::new(stop_rx.clone());
        for (&peer, &addr) in &addrs {
            if peer != id {
                transport.add_peer(peer, addr);
            }
        }
        let (inbound_tx, inbound_rx) = mpsc::channel(8192);
        tokio::spawn(transport::serve(
            listeners.remove(&id).unwrap(),
            inbound_tx,
            transport.stats().clone(),
            stop_rx.clone(),
        ));
        let mut groups = HashMap::new();
        for g in 1..=GROUPS {
            let path = cluster._dir.path().join(format!("node-{id}/p-{g}"));
            let log = Arc::new(RwLock::new(Log::open(&path, LogConfig::default()).unwrap()));
            cluster.logs.insert((id, g), log.clone());
            let storage = LogStorage::new(log).unwrap();
            groups.insert(
                g,
                Group::open(id, storage, &voters, &discard_logger()).unwrap(),
            );
        }
        let (handle, _task) = node::start(
            groups,
            transport,
            inbound_rx,
            Duration::from_millis(20),
            stop_rx,
        );
        cluster.handles.insert(id, handle);
        cluster.stops.insert(id, stop);
    }
    cluster
}

impl Cluster {
    /// Proposes through whichever live node leads `group`, following NotLeader hints.
    async fn propose(&self, group: u64, n: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut target = *self.handles.keys().min().unwrap();
        loop {
            assert!(
                Instant::now() < deadline,
                "group {group} never committed proposal {n}"
            );
            let Some(h) = self.handles.get(&target) else {
                target = *self.handles.keys().min().unwrap();
                continue;
            };
            match h.propose(group, batch(n)).await {
                Ok(c) => return c.high_watermark,
                Err(ProposeError::NotLeader { leader }) if self.handles.contains_key(&leader) => {
                    target = leader;
                }
                Err(_) => {
                    // No leader yet, or it is on a stopped node: try the next node later.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let ids: Vec<u64> = self.handles.keys().copied().collect();
                    let i = ids.iter().position(|&x| x == target).unwrap_or(0);
                    target = ids[(i + 1) % ids.len()];
                }
            }
        }
    }
}

/// Raft index → (term, bytes) of every entry in a log.
fn entries(log: &Arc<RwLock<Log>>) -> Vec<(u64, Bytes)> {
    let log = log.read().unwrap();
    (log.first_raft_index()..=log.last_raft_index())
        .map(|i| (log.term_of(i).unwrap(), log.entry_payload(i).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_commit_everywhere_and_survive_a_stopped_node() {
    let mut cluster = start_cluster().await;
    for n in 0..50 {
        for g in 1..=GROUPS {
            cluster.propose(g, n).await;
        }
    }
    // Stop node 1; the others still form a quorum for every group.
    cluster.stops.remove(&1).unwrap().send_replace(true);
    cluster.handles.remove(&1);
    for n in 50..80 {
        for g in 1..=GROUPS {
            let hw = cluster.propose(g, n).await;
            assert!(hw > n, "group {g}: high watermark {hw} after proposal {n}");
        }
    }
    // Both live replicas of each group receive all 80 batches (followers may trail the
    // leader's commit briefly) ...
    let deadline = Instant::now() + Duration::from_secs(30);
    for g in 1..=GROUPS {
        for id in [2, 3] {
            while cluster.logs[&(id, g)].read().unwrap().next_offset() < 80 {
                assert!(
                    Instant::now() < deadline,
                    "node {id} group {g} never caught up"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // ... and hold identical entries (bytes, so offsets too) up to the shorter log.
    for g in 1..=GROUPS {
        let a = entries(&cluster.logs[&(2, g)]);
        let b = entries(&cluster.logs[&(3, g)]);
        let common = a.len().min(b.len());
        assert_eq!(a[..common], b[..common], "group {g}");
    }
    for stop in cluster.stops.values() {
        stop.send_replace(true);
    }
}
