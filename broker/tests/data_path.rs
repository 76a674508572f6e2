//! The produce → fetch data path over the wire: a Fetch answer carries the produced
//! batches byte for byte (only the base offset and leader epoch, outside the CRC, are the
//! broker's), whether the answer is small enough to be gathered in the connection's
//! write buffer or large enough to go out as a vectored write of stored slices.

mod common;

use bytes::Bytes;
use common::{batch_of, roundtrip, start_broker, topic};
use kafka_protocol::messages::*;
use tokio::net::TcpStream;

/// Offsets of the batch header fields the broker sets (Kafka's RecordBatch v2 layout).
const BASE_OFFSET: std::ops::Range<usize> = 0..8;
const LEADER_EPOCH: std::ops::Range<usize> = 12..16;

async fn produce(conn: &mut TcpStream, id: i32, partitions: &[(i32, Bytes)]) {
    let req: RequestKind = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic("bytes"))
            .with_partition_data(
                partitions
                    .iter()
                    .map(|(index, records)| {
                        produce_request::PartitionProduceData::default()
                            .with_index(*index)
                            .with_records(Some(records.clone()))
                    })
                    .collect(),
            )])
        .into();
    match roundtrip(conn, ApiKey::Produce, 9, id, &req).await {
        ResponseKind::Produce(r) => {
            for p in &r.responses[0].partition_responses {
                assert_eq!(p.error_code, 0, "partition {}", p.index);
            }
        }
        other => panic!("{other:?}"),
    }
}

async fn fetch(conn: &mut TcpStream, version: i16, partitions: &[i32]) -> Vec<Bytes> {
    let req: RequestKind = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(16 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic("bytes"))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        fetch_request::FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(8 << 20)
                    })
                    .collect(),
            )])
        .into();
    match roundtrip(conn, ApiKey::Fetch, version, 100 + version as i32, &req).await {
        ResponseKind::Fetch(r) => r.responses[0]
            .partitions
            .iter()
            .map(|p| {
                assert_eq!(p.error_code, 0);
                p.records.clone().unwrap_or_default()
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

/// Checks that `fetched` is `produced`, batch after batch, apart from the fields the
/// broker sets; base offsets must count up from 0 (one record per batch).
fn assert_same_batches(fetched: &Bytes, produced: &[Bytes]) {
    let mut at = 0;
    for (offset, batch) in produced.iter().enumerate() {
        let got = &fetched[at..at + batch.len()];
        assert_eq!(&got[BASE_OFFSET], &(offset as i64).to_be_bytes());
        assert_eq!(
            &got[BASE_OFFSET.end..LEADER_EPOCH.start],
            &batch[BASE_OFFSET.end..LEADER_EPOCH.start]
        );
        assert_eq!(&got[LEADER_EPOCH.end..], &batch[LEADER_EPOCH.end..]);
        at += batch.len();
    }
    assert_eq!(at, fetched.len(), "nothing beyond the produced batches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_returns_the_produced_bytes_small_and_large_answers() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_broker(dir.path()).await;
    running
        .broker
        .cluster
        .create_topic(&running.broker.topics, "bytes", 3, 1, Default::default())
        .await
        .unwrap();
    let mut conn = TcpStream::connect(running.kafka_addr).await.unwrap();
    // Partition 0: batches far above the splice threshold, 200 KB in all (an answer
    // larger than the write buffer); 1: tiny batches (copied into the frame); 2: empty.
    let large: Vec<Bytes> = (0..5).map(|i| batch_of(40_000 + i)).collect();
    let small: Vec<Bytes> = (0..5).map(|i| batch_of(10 + i)).collect();
    for (i, (l, s)) in large.iter().zip(&small).enumerate() {
        produce(&mut conn, i as i32, &[(0, l.clone()), (1, s.clone())]).await;
    }
    for version in [4, 11, 12] {
        let got = fetch(&mut conn, version, &[0, 1, 2]).await;
        assert_same_batches(&got[0], &large);
        assert_same_batches(&got[1], &small);
        assert!(got[2].is_empty());
        // Only the small partition: an answer gathered in the write buffer.
        let got = fetch(&mut conn, version, &[1]).await;
        assert_same_batches(&got[0], &small);
    }
    running.shutdown();
}
