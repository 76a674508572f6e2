//! Helpers for the broker's in-process TCP tests: a broker on ephemeral ports, request
//! encoding with the codec's client side, and one request/answer round trip.
#![allow(dead_code)]

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strata_testkit::{encode_batch, Compression, Producer, RecordSpec, NO_PRODUCER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A broker serving a fresh temporary directory on ephemeral ports.
pub async fn start_broker(dir: &std::path::Path) -> broker::Running {
    start_broker_with(dir, |_| {}).await
}

/// [`start_broker`] with settings changed by `adjust`.
pub async fn start_broker_with(
    dir: &std::path::Path,
    adjust: impl FnOnce(&mut broker::BrokerConfig),
) -> broker::Running {
    let mut config = test_config(dir);
    adjust(&mut config);
    broker::run(config).await.expect("start the broker")
}

/// The settings of [`start_broker`]: `dir`, ephemeral ports, 4 offsets partitions,
/// joins that complete at once.
pub fn test_config(dir: &std::path::Path) -> broker::BrokerConfig {
    let mut listeners = broker::config::ListenerSettings::default();
    listeners.kafka_addr = Some("127.0.0.1:0".into());
    broker::BrokerConfig {
        data_dir: dir.to_path_buf(),
        listeners,
        admin_addr: "127.0.0.1:0".into(),
        groups: broker::config::GroupConfig {
            // No waiting for more members in tests: a join completes at once.
            initial_rebalance_delay: Duration::ZERO,
            offsets_topic_partitions: 4,
            ..Default::default()
        },
        ..Default::default()
    }
}

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn topic(v: &str) -> TopicName {
    TopicName(s(v))
}

/// A Fetch of one partition from `offset` (as a consumer: replica id -1), 1 MiB at most;
/// the wait settings are the codec's defaults unless the caller sets them.
/// A Produce of `records` to one partition, with `acks` and a 10 s timeout.
pub fn produce_one(topic_name: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic(topic_name))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records)),
            ])])
}

pub fn fetch_one(topic_name: &str, partition: i32, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic(topic_name))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

pub fn batch() -> Bytes {
    batch_of(1)
}

/// A batch of `records` records from an idempotent producer, first sequence `seq`.
pub fn idempotent_batch(producer_id: i64, epoch: i16, seq: i32, records: usize) -> Bytes {
    let specs = (0..records).map(|i| RecordSpec {
        key: None,
        value: Some(Bytes::from(format!("{seq}+{i}"))),
        timestamp_ms: 1_700_000_000_000 + i as i64,
    });
    let producer = Producer {
        id: producer_id,
        epoch,
        first_sequence: seq,
    };
    encode_batch(specs, producer, Compression::None).freeze()
}

/// One uncompressed record with a value of `value_len` bytes.
pub fn batch_of(value_len: usize) -> Bytes {
    let spec = RecordSpec {
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::from(vec![b'v'; value_len])),
        timestamp_ms: 1_700_000_000_000,
    };
    encode_batch([spec], NO_PRODUCER, Compression::None).freeze()
}

/// Writes one request frame without reading the answer.
pub async fn send(
    conn: &mut TcpStream,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &RequestKind,
) {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(s("every-version")))
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    conn.write_all(&buf).await.unwrap();
}

pub async fn roundtrip(
    conn: &mut TcpStream,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &RequestKind,
) -> ResponseKind {
    send(conn, api, version, correlation_id, body).await;
    let read = async {
        let len = conn.read_i32().await?;
        let mut frame = vec![0u8; len as usize];
        conn.read_exact(&mut frame).await?;
        Ok::<_, std::io::Error>(Bytes::from(frame))
    };
    let mut frame = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| panic!("{api:?} v{version}: no answer"))
        .unwrap_or_else(|e| panic!("{api:?} v{version}: connection closed ({e})"));
    let header = ResponseHeader::decode(&mut frame, api.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, correlation_id, "{api:?} v{version}");
    let response = ResponseKind::decode(api, &mut frame, version)
        .unwrap_or_else(|e| panic!("{api:?} v{version}: undecodable answer: {e}"));
    assert_eq!(frame.remaining(), 0, "{api:?} v{version}: trailing bytes");
    response
}
