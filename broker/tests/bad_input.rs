//! Bad input gets Kafka's own error codes over a real connection, the connection stays
//! usable where Kafka keeps it, and nothing malformed reaches the log.

mod common;

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use common::{batch, batch_of, roundtrip, s, start_broker, topic};
use kafka_error::ResponseError;
use kafka_protocol::error as kafka_error;
use kafka_protocol::messages::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// As in the `strata` binary: a forged array length must not abort the process.
#[global_allocator]
static ALLOCATOR: broker::alloc::LazyHugeAlloc = broker::alloc::LazyHugeAlloc;

fn produce(topic_name: &str, partition: i32, records: Bytes, acks: i16) -> RequestKind {
    common::produce_one(topic_name, partition, records, acks).into()
}

/// A batch whose magic byte says message format v1 (what pre-0.11 clients send).
fn old_format() -> Bytes {
    let mut b = batch().to_vec();
    b[16] = 1;
    Bytes::from(b)
}

async fn produce_code(conn: &mut TcpStream, id: i32, req: RequestKind) -> i16 {
    match roundtrip(conn, ApiKey::Produce, 9, id, &req).await {
        ResponseKind::Produce(r) => r.responses[0].partition_responses[0].error_code,
        other => panic!("not a produce response: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_use_kafkas_codes_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let running = common::start_broker(dir.path()).await;
    let overrides = BTreeMap::from([("max.message.bytes".to_string(), "500".to_string())]);
    running
        .broker
        .cluster
        .create_topic(&running.broker.topics, "t", 2, 1, overrides)
        .await
        .unwrap();
    let mut conn = TcpStream::connect(running.kafka_addr).await.unwrap();

    let mut bad_crc = batch().to_vec();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x55;
    let mut truncated = batch().to_vec();
    truncated.truncate(truncated.len() - 3);
    let two = [batch(), batch()].concat();
    let cases: Vec<(&str, RequestKind, ResponseError)> = vec![
        (
            "bad CRC",
            produce("t", 0, Bytes::from(bad_crc), -1),
            ResponseError::CorruptMessage,
        ),
        (
            "truncated batch",
            produce("t", 0, Bytes::from(truncated), 1),
            ResponseError::CorruptMessage,
        ),
        (
            "two batches",
            produce("t", 0, Bytes::from(two), 1),
            ResponseError::InvalidRecord,
        ),
        (
            "garbage",
            produce("t", 0, Bytes::from_static(&[7u8; 80]), 1),
            ResponseError::CorruptMessage,
        ),
        (
            "old format",
            produce("t", 0, old_format(), 1),
            ResponseError::UnsupportedForMessageFormat,
        ),
        (
            "too large",
            produce("t", 0, batch_of(600), 1),
            ResponseError::MessageTooLarge,
        ),
        (
            "unknown topic",
            produce("nope", 0, batch(), 1),
            ResponseError::UnknownTopicOrPartition,
        ),
        (
            "unknown partition",
            produce("t", 7, batch(), 1),
            ResponseError::UnknownTopicOrPartition,
        ),
        (
            "bad acks",
            produce("t", 0, batch(), 3),
            ResponseError::InvalidRequiredAcks,
        ),
    ];
    for (i, (what, req, code)) in cases.into_iter().enumerate() {
        assert_eq!(
            produce_code(&mut conn, i as i32, req).await,
            code.code(),
            "{what}"
        );
    }
    // The connection still works and the log holds only what was valid: nothing yet.
    assert_eq!(
        produce_code(&mut conn, 100, produce("t", 0, batch(), -1)).await,
        0
    );
    let p = running.broker.topics.get("t").unwrap().partitions[0].clone();
    let offsets = p.offsets().unwrap();
    assert_eq!((offsets.log_start, offsets.log_end), (0, 1));
    // A raised limit takes the batch it refused.
    let raised = BTreeMap::from([("max.message.bytes".to_string(), "5000".to_string())]);
    running
        .broker
        .cluster
        .set_topic_overrides(&running.broker.topics, "t", raised, false)
        .await
        .unwrap();
    assert_eq!(
        produce_code(&mut conn, 99, produce("t", 1, batch_of(600), 1)).await,
        0
    );

    // Fetch and ListOffsets errors.
    let fetch = common::fetch_one("t", 0, 99);
    match roundtrip(&mut conn, ApiKey::Fetch, 12, 101, &fetch.into()).await {
        ResponseKind::Fetch(r) => assert_eq!(
            r.responses[0].partitions[0].error_code,
            ResponseError::OffsetOutOfRange.code()
        ),
        other => panic!("{other:?}"),
    }
    let create = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(topic("bad/name"))
            .with_num_partitions(1)
            .with_replication_factor(1),
        create_topics_request::CreatableTopic::default()
            .with_name(topic("t"))
            .with_num_partitions(1)
            .with_replication_factor(1),
        create_topics_request::CreatableTopic::default()
            .with_name(topic("rf3"))
            .with_num_partitions(1)
            .with_replication_factor(3),
        create_topics_request::CreatableTopic::default()
            .with_name(topic("badcfg"))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("soon")))]),
    ]);
    match roundtrip(&mut conn, ApiKey::CreateTopics, 7, 102, &create.into()).await {
        ResponseKind::CreateTopics(r) => {
            let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
            assert_eq!(
                codes,
                vec![
                    ResponseError::InvalidTopicException.code(),
                    ResponseError::TopicAlreadyExists.code(),
                    ResponseError::InvalidReplicationFactor.code(),
                    ResponseError::InvalidConfig.code(),
                ]
            );
            assert!(r.topics.iter().all(|t| t.error_message.is_some()));
        }
        other => panic!("{other:?}"),
    }
    running.shutdown();
    running.wait().await.unwrap();
}

/// Rewrites big-endian header fields of a batch and signs it again (CRC-32C of the bytes
/// from the attributes on), as a forger would.
fn forged(batch: &Bytes, fields: &[(usize, i32)]) -> Bytes {
    fields
        .iter()
        .fold(forged_bytes(batch, 0, &[]), |b, &(at, value)| {
            forged_bytes(&b, at, &value.to_be_bytes())
        })
}

/// One record with `key` and CreateTime `timestamp_ms`.
fn record(key: Option<&'static [u8]>, timestamp_ms: i64) -> Bytes {
    let spec = strata_testkit::RecordSpec {
        key: key.map(Bytes::from_static),
        value: Some(Bytes::from_static(b"v")),
        timestamp_ms,
    };
    strata_testkit::encode_batch(
        [spec],
        strata_testkit::NO_PRODUCER,
        strata_testkit::Compression::None,
    )
    .freeze()
}

async fn produce_answer(
    conn: &mut TcpStream,
    id: i32,
    req: RequestKind,
) -> produce_response::PartitionProduceResponse {
    match roundtrip(conn, ApiKey::Produce, 9, id, &req).await {
        ResponseKind::Produce(mut r) => r.responses.remove(0).partition_responses.remove(0),
        other => panic!("not a produce response: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_records_are_refused_and_the_partition_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_broker(dir.path()).await;
    let (cluster, topics) = (&running.broker.cluster, &running.broker.topics);
    cluster
        .create_topic(topics, "f", 1, 1, BTreeMap::new())
        .await
        .unwrap();
    let compact = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
    cluster
        .create_topic(topics, "c", 1, 1, compact)
        .await
        .unwrap();
    let mut conn = TcpStream::connect(running.kafka_addr).await.unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;

    // One record claiming 2^31-1 (lastOffsetDelta at 23, recordsCount at 57), CRC valid:
    // it once moved the log end to 2147483647 and broke every consumer.
    let count_forged = forged(&batch(), &[(23, i32::MAX - 1), (57, i32::MAX)]);
    let r = produce_answer(&mut conn, 1, produce("f", 0, count_forged, -1)).await;
    assert_eq!(r.error_code, ResponseError::CorruptMessage.code());
    assert!(r.error_message.is_some());
    // A record whose length runs past the batch.
    let mut long = batch().to_vec();
    long[61] = 0x7e;
    let long = forged(&Bytes::from(long), &[]);
    let r = produce_answer(&mut conn, 2, produce("f", 0, long, 1)).await;
    assert_eq!(r.error_code, ResponseError::CorruptMessage.code());

    // A keyless record on a compacted topic, and one from two hours ahead: refused with
    // the record named.
    let r = produce_answer(&mut conn, 3, produce("c", 0, record(None, now_ms), 1)).await;
    assert_eq!(r.error_code, ResponseError::InvalidRecord.code());
    assert_eq!(r.record_errors.len(), 1);
    assert_eq!(r.record_errors[0].batch_index, 0);
    let ahead = record(Some(b"k"), now_ms + 7_200_000);
    let r = produce_answer(&mut conn, 4, produce("f", 0, ahead, 1)).await;
    assert_eq!(r.error_code, ResponseError::InvalidTimestamp.code());
    assert_eq!(r.record_errors.len(), 1);

    // Nothing reached either log; the next good batch takes offset 0 and reads back.
    for t in ["f", "c"] {
        let p = topics.get(t).unwrap().partitions[0].clone();
        assert_eq!(p.offsets().unwrap().log_end, 0, "{t}");
        let r = produce_answer(&mut conn, 5, produce(t, 0, batch(), -1)).await;
        assert_eq!((r.error_code, r.base_offset), (0, 0), "{t}");
    }
    let fetch = common::fetch_one("f", 0, 0);
    match roundtrip(&mut conn, ApiKey::Fetch, 12, 6, &fetch.into()).await {
        ResponseKind::Fetch(r) => {
            let p = &r.responses[0].partitions[0];
            assert_eq!((p.error_code, p.high_watermark), (0, 1));
            let stored = p.records.as_deref().unwrap_or_default();
            let epoch = i32::from_be_bytes(stored[12..16].try_into().unwrap());
            assert!(epoch >= 1, "stamped with the leader's epoch, {epoch}");
            assert_eq!(stored, &batch_as_stored(0, epoch)[..]);
        }
        other => panic!("{other:?}"),
    }
    running.shutdown();
    running.wait().await.unwrap();
}

/// `batch()` as the log stores it at `offset` in leader epoch `epoch` (both patched,
/// both outside the CRC).
fn batch_as_stored(offset: i64, epoch: i32) -> Bytes {
    let mut b = batch().to_vec();
    b[..8].copy_from_slice(&offset.to_be_bytes());
    b[12..16].copy_from_slice(&epoch.to_be_bytes());
    Bytes::from(b)
}

/// Sends raw bytes as one frame and reports whether the broker closed the connection.
async fn closes_after(conn: &mut TcpStream, frame: &[u8]) -> bool {
    let mut buf = BytesMut::new();
    buf.put_i32(frame.len() as i32);
    buf.put_slice(frame);
    if conn.write_all(&buf).await.is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_broker(dir.path()).await;
    let mut forged = vec![0, 3, 0, 1, 0, 0, 0, 1, 0, 0];
    forged.extend_from_slice(&i32::MAX.to_be_bytes());
    let frames: Vec<Vec<u8>> = vec![
        vec![0, 3],                         // shorter than a header
        vec![0x7f, 0, 0, 0, 0, 0, 0, 1],    // unknown API key
        vec![0, 3, 0, 1, 0, 0, 0, 1, 0x7f], // header with a bad client id
        forged,                             // Metadata claiming 2^31 - 1 topics
        vec![0, 8, 0, 1, 0, 0, 0, 1, 0, 0], // OffsetCommit v1: gone from Kafka 4 and the codec
    ];
    for frame in frames {
        let mut conn = TcpStream::connect(running.kafka_addr).await.unwrap();
        assert!(closes_after(&mut conn, &frame).await, "{frame:?}");
    }
    // A length prefix above socket.request.max.bytes closes without reading the body.
    let mut conn = TcpStream::connect(running.kafka_addr).await.unwrap();
    conn.write_all(&(200 * 1024 * 1024i32).to_be_bytes())
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(conn.read(&mut byte).await.unwrap_or(0), 0);

    // An API we do not implement is answered with UNSUPPORTED_VERSION where its response
    // has a top-level error code.
    let mut conn = TcpStream::connect(running.kafka_addr).await.unwrap();
    let sasl: RequestKind = SaslHandshakeRequest::default().into();
    match roundtrip(&mut conn, ApiKey::SaslHandshake, 0, 2, &sasl).await {
        ResponseKind::SaslHandshake(r) => {
            assert_eq!(r.error_code, ResponseError::UnsupportedVersion.code())
        }
        other => panic!("{other:?}"),
    }

    // Everyone else is still served.
    let mut conn = TcpStream::connect(running.kafka_addr).await.unwrap();
    let req: RequestKind = ApiVersionsRequest::default().into();
    assert!(matches!(
        roundtrip(&mut conn, ApiKey::ApiVersions, 0, 1, &req).await,
        ResponseKind::ApiVersions(_)
    ));
    running.shutdown();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_creates_a_bounded_number_of_topics_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_broker(dir.path()).await;
    let mut conn = TcpStream::connect(running.kafka_addr).await.unwrap();
    let names: Vec<String> = (0..20).map(|i| format!("auto-{i}")).collect();
    let request: RequestKind = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(
            names
                .iter()
                .map(|n| {
                    metadata_request::MetadataRequestTopic::default().with_name(Some(topic(n)))
                })
                .collect(),
        ))
        .into();
    let codes = |r: ResponseKind| match r {
        ResponseKind::Metadata(m) => m.topics.iter().map(|t| t.error_code).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let first = codes(roundtrip(&mut conn, ApiKey::Metadata, 9, 1, &request).await);
    let limit = broker::handlers::metadata::MAX_AUTO_CREATED_PER_REQUEST;
    assert!(first[..limit].iter().all(|&c| c == 0), "{first:?}");
    assert!(
        first[limit..]
            .iter()
            .all(|&c| c == ResponseError::LeaderNotAvailable.code()),
        "{first:?}"
    );
    assert_eq!(running.broker.topics.all().len(), limit + 1); // + __consumer_offsets
                                                              // The client's retry creates the rest.
    let second = codes(roundtrip(&mut conn, ApiKey::Metadata, 9, 2, &request).await);
    assert!(second.iter().all(|&c| c == 0), "{second:?}");
    running.shutdown();
    running.wait().await.unwrap();
}

/// `batch` with the bytes at `at` replaced and signed again, as a forger would.
fn forged_bytes(batch: &Bytes, at: usize, value: &[u8]) -> Bytes {
    let mut b = batch.to_vec();
    b[at..at + value.len()].copy_from_slice(value);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_timestamps_cannot_mislead_time_retention_or_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_broker(dir.path()).await;
    let (cluster, topics) = (&running.broker.cluster, &running.broker.topics);
    cluster
        .create_topic(topics, "ts", 1, 1, BTreeMap::new())
        .await
        .unwrap();
    let mut conn = TcpStream::connect(running.kafka_addr).await.unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let good = record(Some(b"k"), now_ms);

    // A producer may not claim LogAppendTime (attributes at 21): consumers would read
    // its unchecked max timestamp for every record.
    let claimed = forged_bytes(&good, 21, &0x08i16.to_be_bytes());
    let r = produce_answer(&mut conn, 1, produce("ts", 0, claimed, 1)).await;
    assert_eq!(r.error_code, ResponseError::InvalidTimestamp.code());
    // A max timestamp (at 35) far beyond the records' is corrected, as Kafka does,
    // rather than kept to hold a segment past its retention forever.
    let ahead = forged_bytes(&good, 35, &i64::MAX.to_be_bytes());
    let r = produce_answer(&mut conn, 2, produce("ts", 0, ahead, -1)).await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    let fetch = common::fetch_one("ts", 0, 0);
    match roundtrip(&mut conn, ApiKey::Fetch, 12, 3, &fetch.into()).await {
        ResponseKind::Fetch(r) => {
            let stored = r.responses[0].partitions[0].records.clone().unwrap();
            let header = log_store::BatchHeader::parse_validated(&stored).unwrap();
            assert_eq!(header.max_timestamp, now_ms);
        }
        other => panic!("{other:?}"),
    }
    running.shutdown();
    running.wait().await.unwrap();
}
