//! A single broker's data directory, as the releases before the one replication path
//! wrote it, converts once when it starts (`broker::convert`): every record at its
//! offset, the topic id, the cluster id, committed group offsets and producer state
//! carry over, and a start stopped at any step of the conversion carries on at the next
//! start. The directory is the fixture `tests/fixtures/single-broker.tar.gz`, written by
//! `tests/fixtures/make_single_broker.py` with such a release and killed with SIGKILL;
//! `single-broker.json` says what clients saw before the kill.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::{idempotent_batch, roundtrip, s, start_broker, test_config, topic};
use kafka_protocol::messages::*;
use log_store::failpoint;
use tokio::net::TcpStream;

/// Offsets in a RecordBatch v2 header (Kafka's layout).
const LEADER_EPOCH: std::ops::Range<usize> = 12..16;
const LAST_OFFSET_DELTA: std::ops::Range<usize> = 23..27;
const PRODUCER_ID: std::ops::Range<usize> = 43..51;
const PRODUCER_EPOCH: std::ops::Range<usize> = 51..53;
const BASE_SEQUENCE: std::ops::Range<usize> = 53..57;
const PARTITIONS: i32 = 3;

fn fixture(ext: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/fixtures/single-broker.{ext}"))
}

/// What the fixture's clients saw before the kill.
struct Manifest {
    cluster_id: String,
    topic: String,
    topic_id: String,
    group: String,
    end_offsets: Vec<i64>,
    committed: Vec<i64>,
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(fixture("json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let string = |k: &str| v[k].as_str().unwrap().to_string();
    let per_partition = |k: &str| {
        (0..PARTITIONS)
            .map(|p| v[k][p.to_string()].as_i64().unwrap())
            .collect()
    };
    Manifest {
        cluster_id: string("cluster_id"),
        topic: string("topic"),
        topic_id: string("topic_id"),
        group: string("group"),
        end_offsets: per_partition("end_offsets"),
        committed: per_partition("committed"),
    }
}

/// A temporary directory holding the fixture's data directory.
fn unpack() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(fixture("tar.gz"))
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "tar -xzf of the fixture: {status}");
    assert!(dir.path().join("topics.toml").exists());
    dir
}

/// A partition's batches as the single broker stored them: the fixture's segment
/// files in offset order, concatenated.
fn stored_batches(topic: &str, partition: i32) -> Vec<u8> {
    let dir = unpack();
    let pdir = dir.path().join(format!("{topic}-{partition}"));
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    assert!(
        logs.len() > 1,
        "the fixture's partitions have several segments"
    );
    logs.iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// The batches in `records`: (start, end) byte ranges.
fn batch_ranges(records: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 61 <= records.len() {
        let len = i32::from_be_bytes(records[at + 8..at + 12].try_into().unwrap()) as usize;
        out.push(at..at + 12 + len);
        at += 12 + len;
    }
    assert_eq!(at, records.len(), "whole batches only");
    out
}

fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes(b.try_into().unwrap())
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes(b.try_into().unwrap())
}

/// The batches with their leader epochs zeroed, and the epochs they had.
fn zero_epochs(records: &[u8]) -> (Vec<u8>, BTreeSet<i32>) {
    let mut out = records.to_vec();
    let mut epochs = BTreeSet::new();
    for batch in batch_ranges(records) {
        let epoch = &mut out[batch.start + LEADER_EPOCH.start..batch.start + LEADER_EPOCH.end];
        epochs.insert(be_i32(epoch));
        epoch.fill(0);
    }
    (out, epochs)
}

async fn connect(running: &broker::Running) -> TcpStream {
    TcpStream::connect(running.kafka_addr).await.unwrap()
}

async fn init_producer_id(conn: &mut TcpStream) -> i64 {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    match roundtrip(conn, ApiKey::InitProducerId, 4, 2, &req.into()).await {
        ResponseKind::InitProducerId(r) => {
            assert_eq!(r.error_code, 0);
            r.producer_id.0
        }
        other => panic!("{other:?}"),
    }
}

/// Produces `records` to partition `partition` of `topic` with acks=all: the error code.
async fn produce(conn: &mut TcpStream, topic_name: &str, partition: i32, records: Bytes) -> i16 {
    let req = common::produce_one(topic_name, partition, records, -1);
    match roundtrip(conn, ApiKey::Produce, 9, 3, &req.into()).await {
        ResponseKind::Produce(r) => r.responses[0].partition_responses[0].error_code,
        other => panic!("{other:?}"),
    }
}

/// The cluster id and the topic's id, from Metadata; every partition led.
async fn ids(conn: &mut TcpStream, topic_name: &str) -> (String, String) {
    let req = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic(topic_name))),
    ]));
    match roundtrip(conn, ApiKey::Metadata, 12, 5, &req.into()).await {
        ResponseKind::Metadata(r) => {
            let t = &r.topics[0];
            assert_eq!(t.error_code, 0);
            assert!(t
                .partitions
                .iter()
                .all(|p| p.error_code == 0 && p.leader_id.0 >= 0));
            (r.cluster_id.unwrap().to_string(), t.topic_id.to_string())
        }
        other => panic!("{other:?}"),
    }
}

/// Every batch of a partition below `end`, fetched from offset 0.
async fn fetch_all(conn: &mut TcpStream, topic_name: &str, partition: i32, end: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = 0;
    while next < end {
        let fetch = common::fetch_one(topic_name, partition, next)
            .with_max_wait_ms(0)
            .with_min_bytes(0);
        let records = match roundtrip(conn, ApiKey::Fetch, 12, 6, &fetch.into()).await {
            ResponseKind::Fetch(r) => {
                let p = &r.responses[0].partitions[0];
                assert_eq!(p.error_code, 0);
                p.records.clone().unwrap_or_default()
            }
            other => panic!("{other:?}"),
        };
        let batches = batch_ranges(&records);
        let last = batches
            .last()
            .expect("a fetch below the end returns a batch");
        let b = &records[last.clone()];
        next = be_i64(&b[..8]) + i64::from(be_i32(&b[LAST_OFFSET_DELTA])) + 1;
        out.extend_from_slice(&records);
    }
    out
}

/// The group's committed offsets of the topic's partitions.
async fn committed(conn: &mut TcpStream, m: &Manifest) -> Vec<i64> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(&m.group)))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic(&m.topic))
                .with_partition_indexes((0..PARTITIONS).collect()),
        ]));
    match roundtrip(conn, ApiKey::OffsetFetch, 7, 7, &req.into()).await {
        ResponseKind::OffsetFetch(r) => {
            assert_eq!(r.error_code, 0);
            let t = &r.topics[0];
            t.partitions
                .iter()
                .map(|p| {
                    assert_eq!(p.error_code, 0);
                    p.committed_offset
                })
                .collect()
        }
        other => panic!("{other:?}"),
    }
}

/// Starts the unpacked fixture `dir` (a one-node cluster, the default) and checks that
/// it serves what the single broker stored, that the registry was renamed, and that the
/// idempotent producer carries on.
async fn check_converted(dir: &Path) {
    let m = manifest();
    let running = start_broker(dir).await;
    assert!(!dir.join("topics.toml").exists());
    assert!(dir.join(broker::convert::CONVERTED_REGISTRY_FILE).exists());
    let mut conn = connect(&running).await;
    assert_eq!(
        ids(&mut conn, &m.topic).await,
        (m.cluster_id.clone(), m.topic_id.clone())
    );
    let mut last_batch = Vec::new();
    for p in 0..PARTITIONS {
        let stored = stored_batches(&m.topic, p);
        let served = fetch_all(&mut conn, &m.topic, p, m.end_offsets[p as usize]).await;
        let (stored, before) = zero_epochs(&stored);
        let (served, after) = zero_epochs(&served);
        assert_eq!(before, [0].into(), "a single broker's batches");
        assert_eq!(after, [1].into(), "restamped to the first term");
        assert!(
            served == stored,
            "partition {p}: the stored batches, as stored"
        );
        if p == 0 {
            last_batch = served[batch_ranges(&served).last().unwrap().clone()].to_vec();
        }
    }
    assert_eq!(committed(&mut conn, &m).await, m.committed);
    // The producer's next batch follows on; a new producer gets an id the single
    // broker never handed out (it reserved ids in blocks of 1000).
    let pid = be_i64(&last_batch[PRODUCER_ID]);
    let epoch = i16::from_be_bytes(last_batch[PRODUCER_EPOCH].try_into().unwrap());
    let next_seq = be_i32(&last_batch[BASE_SEQUENCE]) + be_i32(&last_batch[LAST_OFFSET_DELTA]) + 1;
    assert!(pid >= 0, "the fixture's producer is idempotent");
    let follow_on = idempotent_batch(pid, epoch, next_seq, 2);
    assert_eq!(produce(&mut conn, &m.topic, 0, follow_on).await, 0);
    let fresh = init_producer_id(&mut conn).await;
    assert!(fresh >= 1000, "{fresh} after {pid}");
    running.shutdown();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_brokers_directory_converts_to_a_one_node_cluster() {
    let dir = unpack();
    check_converted(dir.path()).await;

    // A converted directory starts again as it is.
    let m = manifest();
    let running = start_broker(dir.path()).await;
    let mut conn = connect(&running).await;
    assert_eq!(
        ids(&mut conn, &m.topic).await,
        (m.cluster_id.clone(), m.topic_id.clone())
    );
    let end = m.end_offsets[0] + 2;
    let (served, _) = zero_epochs(&fetch_all(&mut conn, &m.topic, 0, end).await);
    let (stored, _) = zero_epochs(&stored_batches(&m.topic, 0));
    assert!(served.len() > stored.len() && served.starts_with(&stored));
    running.shutdown();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_brokers_directory_joins_no_cluster_with_other_peers() {
    let dir = unpack();
    let mut config = test_config(dir.path());
    config.raft_addr = Some("127.0.0.1:0".into());
    config.peers = [(1, "127.0.0.1:0".into()), (2, "127.0.0.1:1".into())].into();
    let err = broker::run(config).await.err().expect("refused");
    assert!(err.to_string().contains("one-node cluster"), "{err}");
    assert!(dir.path().join("topics.toml").exists(), "nothing converted");
}

/// Every step a start can stop at: the log's restamp, the Raft state's write, the
/// import into the controller, the registry's rename.
const STEPS: &[&str] = &[
    "log.restamp.before_table",
    "log.restamp.before_checkpoint",
    "raft.state.before_rename",
    "convert.before_import",
    "convert.before_rename",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_stopped_at_any_step_carries_on_at_the_next_start() {
    assert!(broker::convert::POINTS.iter().all(|p| STEPS.contains(p)));
    for &point in STEPS {
        let dir = unpack();
        failpoint::arm(point, 0);
        let stopped = broker::run(test_config(dir.path())).await;
        failpoint::disarm();
        assert_eq!(failpoint::take_fired(), vec![point]);
        assert!(stopped.is_err(), "{point}: the start must stop");
        check_converted(dir.path()).await;
    }
}
