//! A single broker's data directory started as a one-node cluster converts once
//! (`broker::convert`): every record at its offset, the topic ids, the cluster id,
//! committed group offsets and producer state carry over, and a start stopped at any
//! step of the conversion carries on at the next start.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::{
    batch_of, idempotent_batch, one_node_cluster, roundtrip, s, start_broker, start_broker_with,
    test_config, topic,
};
use kafka_protocol::messages::*;
use log_store::failpoint;
use tokio::net::TcpStream;

/// Offsets of the batch header's leader epoch (Kafka's RecordBatch v2 layout).
const LEADER_EPOCH: std::ops::Range<usize> = 12..16;
const TOPIC: &str = "t";
const GROUP: &str = "g";

/// What a client sees of the directory.
#[derive(Debug, PartialEq)]
struct Seen {
    cluster_id: String,
    topic_id: String,
    /// Per partition: the stored batches, their leader epochs zeroed.
    batches: Vec<Vec<u8>>,
    /// The leader epochs of the batches.
    epochs: std::collections::BTreeSet<i32>,
    committed: i64,
}

async fn connect(running: &broker::Running) -> TcpStream {
    TcpStream::connect(running.kafka_addr).await.unwrap()
}

/// Writes a single broker's directory: topic `t` (2 partitions), an idempotent
/// producer's batches on partition 0, plain ones on 1, and a committed offset of
/// group `g`. Returns what a client saw, and the producer id.
async fn write_single(dir: &Path) -> (Seen, i64) {
    let running = start_broker(dir).await;
    let mut conn = connect(&running).await;
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(topic(TOPIC))
            .with_num_partitions(2)
            .with_replication_factor(1)]);
    match roundtrip(&mut conn, ApiKey::CreateTopics, 7, 1, &create.into()).await {
        ResponseKind::CreateTopics(r) => assert_eq!(r.topics[0].error_code, 0),
        other => panic!("{other:?}"),
    }
    let pid = init_producer_id(&mut conn).await;
    for seq in [0, 3] {
        assert_eq!(
            produce(&mut conn, 0, idempotent_batch(pid, 0, seq, 3)).await,
            0
        );
    }
    for len in [10, 2000, 30] {
        assert_eq!(produce(&mut conn, 1, batch_of(len)).await, 0);
    }
    commit(&mut conn, 4).await;
    let seen = look(&mut conn).await;
    running.shutdown();
    running.wait().await.unwrap();
    (seen, pid)
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

/// Produces `records` to partition `partition` with acks=all: the error code.
async fn produce(conn: &mut TcpStream, partition: i32, records: Bytes) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic(TOPIC))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records)),
            ])]);
    match roundtrip(conn, ApiKey::Produce, 9, 3, &req.into()).await {
        ResponseKind::Produce(r) => r.responses[0].partition_responses[0].error_code,
        other => panic!("{other:?}"),
    }
}

async fn commit(conn: &mut TcpStream, offset: i64) {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic(TOPIC))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    match roundtrip(conn, ApiKey::OffsetCommit, 8, 4, &req.into()).await {
        ResponseKind::OffsetCommit(r) => {
            assert_eq!(r.topics[0].partitions[0].error_code, 0)
        }
        other => panic!("{other:?}"),
    }
}

/// The cluster id, the topic's id and partitions' batches, and the group's committed
/// offset, all answered without an error: a started broker (a one-node cluster too)
/// leads every partition and coordinates every group before its start returns.
async fn look(conn: &mut TcpStream) -> Seen {
    try_look(conn).await.expect("every answer free of errors")
}

async fn try_look(conn: &mut TcpStream) -> Option<Seen> {
    let req = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic(TOPIC))),
    ]));
    let (cluster_id, topic_id) = match roundtrip(conn, ApiKey::Metadata, 12, 5, &req.into()).await {
        ResponseKind::Metadata(r) => {
            let t = &r.topics[0];
            let led = t
                .partitions
                .iter()
                .all(|p| p.error_code == 0 && p.leader_id.0 >= 0);
            if t.error_code != 0 || !led {
                return None;
            }
            (r.cluster_id?.to_string(), t.topic_id.to_string())
        }
        other => panic!("{other:?}"),
    };
    let mut batches = Vec::new();
    let mut epochs = std::collections::BTreeSet::new();
    for partition in 0..2 {
        let fetch = common::fetch_one(TOPIC, partition, 0)
            .with_max_wait_ms(0)
            .with_min_bytes(0);
        match roundtrip(conn, ApiKey::Fetch, 12, 6, &fetch.into()).await {
            ResponseKind::Fetch(r) => {
                let p = &r.responses[0].partitions[0];
                if p.error_code != 0 {
                    return None;
                }
                let records = p.records.as_deref().unwrap_or_default();
                batches.push(zero_epochs(records, &mut epochs));
            }
            other => panic!("{other:?}"),
        }
    }
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic(TOPIC))
                .with_partition_indexes(vec![0]),
        ]));
    let committed = match roundtrip(conn, ApiKey::OffsetFetch, 7, 7, &req.into()).await {
        ResponseKind::OffsetFetch(r) => {
            let p = r.topics.first()?.partitions.first()?;
            if r.error_code != 0 || p.error_code != 0 {
                return None;
            }
            p.committed_offset
        }
        other => panic!("{other:?}"),
    };
    Some(Seen {
        cluster_id,
        topic_id,
        batches,
        epochs,
        committed,
    })
}

/// The batches with their leader epochs zeroed (a conversion gives every batch written
/// without Raft epoch 1); the epochs go into `epochs`.
fn zero_epochs(records: &[u8], epochs: &mut std::collections::BTreeSet<i32>) -> Vec<u8> {
    let mut out = records.to_vec();
    let mut at = 0;
    while at + 16 <= out.len() {
        let len = i32::from_be_bytes(out[at + 8..at + 12].try_into().unwrap()) as usize;
        let epoch = &mut out[at + LEADER_EPOCH.start..at + LEADER_EPOCH.end];
        epochs.insert(i32::from_be_bytes((&*epoch).try_into().unwrap()));
        epoch.fill(0);
        at += 12 + len;
    }
    out
}

/// Starts the directory as a one-node cluster and checks that it serves `before`, that
/// the registry was renamed, and that the producer carries on.
async fn check_converted(dir: &Path, before: &Seen, pid: i64) {
    let running = start_broker_with(dir, one_node_cluster).await;
    assert!(!dir.join("topics.toml").exists());
    assert!(dir.join(broker::convert::CONVERTED_REGISTRY_FILE).exists());
    let mut conn = connect(&running).await;
    let after = look(&mut conn).await;
    assert_eq!(before.epochs, [0].into(), "a single broker's batches");
    assert_eq!(after.epochs, [1].into(), "restamped to the first term");
    let unstamped = |s: &Seen| {
        (
            s.cluster_id.clone(),
            s.topic_id.clone(),
            s.batches.clone(),
            s.committed,
        )
    };
    assert_eq!(unstamped(&after), unstamped(before));
    // The producer's next batch follows on; a new producer gets an id the single
    // broker never handed out.
    assert_eq!(
        produce(&mut conn, 0, idempotent_batch(pid, 0, 6, 2)).await,
        0
    );
    let fresh = init_producer_id(&mut conn).await;
    assert!(
        fresh >= broker::producer_ids::PRODUCER_ID_BLOCK_SIZE,
        "{fresh} after {pid}"
    );
    running.shutdown();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_brokers_directory_converts_to_a_one_node_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (before, pid) = write_single(dir.path()).await;
    check_converted(dir.path(), &before, pid).await;

    // A converted directory starts again as it is; as a single broker it is refused.
    let running = start_broker_with(dir.path(), one_node_cluster).await;
    let mut conn = connect(&running).await;
    let again = look(&mut conn).await;
    assert_eq!(
        (&again.cluster_id, &again.topic_id),
        (&before.cluster_id, &before.topic_id)
    );
    assert_eq!(again.batches[1], before.batches[1]);
    assert!(
        again.batches[0].len() > before.batches[0].len(),
        "the batch produced after"
    );
    running.shutdown();
    running.wait().await.unwrap();
    let single = broker::BrokerConfig {
        node_id: 1,
        ..test_config(dir.path())
    };
    let err = broker::run(single)
        .await
        .err()
        .expect("refused as a single broker");
    assert!(err.to_string().contains("--peers"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_brokers_directory_joins_no_cluster_with_other_peers() {
    let dir = tempfile::tempdir().unwrap();
    write_single(dir.path()).await;
    let mut config = test_config(dir.path());
    one_node_cluster(&mut config);
    config.raft_addr = Some("127.0.0.1:0".into());
    config.peers.insert(2, "127.0.0.1:1".into());
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
        let dir = tempfile::tempdir().unwrap();
        let (before, pid) = write_single(dir.path()).await;
        let mut config = test_config(dir.path());
        one_node_cluster(&mut config);
        failpoint::arm(point, 0);
        let stopped = broker::run(config).await;
        failpoint::disarm();
        assert_eq!(failpoint::take_fired(), vec![point]);
        assert!(stopped.is_err(), "{point}: the start must stop");
        check_converted(dir.path(), &before, pid).await;
    }
}
