//! Fault injection: the client against a scripted, misbehaving Kafka peer, for the
//! failures a healthy `strata serve` never produces on demand — an old broker without
//! ApiVersions v3 (the client falls back to v0), silence (requests time out and break
//! the connection), oversized and mismatched frames (refused), and a lost produce
//! response (the idempotent producer resends the same producer id and sequence and
//! counts DUPLICATE_SEQUENCE_NUMBER as success). Everything the client does against the
//! real broker is tested in `tests/client_cli.rs` and `tests/python`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use client::connection::{Connection, ConnectionConfig};
use client::{Acks, ClientConfig, Cluster, Error, Producer, ProducerConfig, ProducerRecord};
use common::versions;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, InitProducerIdResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, ProducerId, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// What the scripted broker does with one request.
enum Reply {
    /// A response body, encoded at the request's version.
    Body(BytesMut),
    /// Raw bytes written instead of a frame.
    Raw(Vec<u8>),
    /// Nothing at all.
    Silence,
}

type Handler = Arc<dyn Fn(&RequestHeader, Bytes) -> Reply + Send + Sync>;

fn encode<T: Encodable>(message: &T, version: i16) -> Reply {
    let mut buf = BytesMut::new();
    message
        .encode(&mut buf, version)
        .expect("encode a response");
    Reply::Body(buf)
}

/// Listens on a free loopback port and answers every connection with `handler`.
async fn fake_broker(handler: Handler) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, handler.clone()));
        }
    });
    addr
}

async fn serve(mut stream: TcpStream, handler: Handler) {
    while let Some((header, frame)) = common::read_request(&mut stream).await {
        match handler(&header, frame) {
            Reply::Silence => {}
            Reply::Raw(bytes) => {
                let _ = stream.write_all(&bytes).await;
            }
            Reply::Body(body) => {
                let out = common::response_frame(&header, &body);
                if stream.write_all(&out).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn full_versions() -> ApiVersionsResponse {
    versions(&[
        (ApiKey::ApiVersions, 0, 3),
        (ApiKey::Metadata, 0, 12),
        (ApiKey::Produce, 0, 11),
        (ApiKey::InitProducerId, 0, 4),
    ])
}

/// For tests whose fake broker answers: a timeout no slow machine reaches, so only the
/// behaviour under test can fail them.
fn patient() -> ConnectionConfig {
    ConnectionConfig {
        request_timeout: Duration::from_secs(30),
        ..ConnectionConfig::default()
    }
}

/// For the test that waits for a timeout: short enough to keep it quick, long enough for
/// the ApiVersions exchange of `connect` on a loaded machine.
fn impatient() -> ConnectionConfig {
    ConnectionConfig {
        request_timeout: Duration::from_secs(2),
        ..ConnectionConfig::default()
    }
}

#[tokio::test]
async fn api_versions_falls_back_to_v0_on_unsupported_version() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let addr = fake_broker(Arc::new(move |h: &RequestHeader, _body| {
        log.lock().unwrap().push(h.request_api_version);
        if h.request_api_version > 0 {
            // An old broker: error 35, in the v0 layout, whatever was asked.
            let refusal = versions(&[(ApiKey::ApiVersions, 0, 0)]).with_error_code(35);
            encode(&refusal, 0)
        } else {
            encode(&full_versions(), 0)
        }
    }))
    .await;
    let conn = Connection::connect(&addr, patient())
        .await
        .expect("connect");
    assert_eq!(*seen.lock().unwrap(), vec![3, 0]);
    assert_eq!(conn.api_version(ApiKey::Metadata), Some(12));
    assert_eq!(conn.api_version(ApiKey::Produce), Some(11));
    assert_eq!(conn.api_version(ApiKey::Fetch), None);
}

#[tokio::test]
async fn silence_times_out_and_breaks_the_connection() {
    let addr = fake_broker(Arc::new(|h: &RequestHeader, _| {
        if h.request_api_key == ApiKey::ApiVersions as i16 {
            encode(&full_versions(), h.request_api_version)
        } else {
            Reply::Silence
        }
    }))
    .await;
    let mut conn = Connection::connect(&addr, impatient())
        .await
        .expect("connect");
    let err = conn
        .send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(conn.is_broken());
    let again = conn.send(&MetadataRequest::default()).await.unwrap_err();
    assert!(matches!(again, Error::Io { .. }), "{again}");
    // Nothing to use: an unsupported API is refused before anything is sent.
    let fetch = kafka_protocol::messages::FetchRequest::default();
    let mut fresh = Connection::connect(&addr, patient())
        .await
        .expect("connect");
    assert!(matches!(
        fresh.send(&fetch).await,
        Err(Error::UnsupportedApi { .. })
    ));
    assert!(!fresh.is_broken());
}

#[tokio::test]
async fn oversized_and_mismatched_frames_are_refused() {
    let addr = fake_broker(Arc::new(|h: &RequestHeader, mut body: Bytes| {
        let v = h.request_api_version;
        if h.request_api_key == ApiKey::ApiVersions as i16 {
            return encode(&full_versions(), v);
        }
        let request = MetadataRequest::decode(&mut body, v).expect("metadata request");
        if request.topics.is_none() {
            // A frame size far beyond the client's limit.
            Reply::Raw((1i32 << 30).to_be_bytes().to_vec())
        } else {
            // A well-formed frame answering some other request.
            let mut raw = BytesMut::new();
            raw.put_i32(5);
            raw.put_i32(h.correlation_id.wrapping_add(100));
            raw.put_u8(0); // no tagged fields (flexible header v1)
            Reply::Raw(raw.to_vec())
        }
    }))
    .await;
    let config = ConnectionConfig {
        max_frame_bytes: 1024 * 1024,
        ..patient()
    };
    let mut conn = Connection::connect(&addr, config.clone())
        .await
        .expect("connect");
    let all_topics = MetadataRequest::default().with_topics(None);
    let err = conn.send(&all_topics).await.unwrap_err();
    assert!(matches!(err, Error::FrameSize { .. }), "{err}");
    assert!(conn.is_broken());

    let mut conn = Connection::connect(&addr, config).await.expect("connect");
    let no_topics = MetadataRequest::default().with_topics(Some(vec![]));
    let err = conn.send(&no_topics).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
    assert!(err.to_string().contains("correlation id"), "{err}");
    assert!(conn.is_broken());
}

/// What the scripted broker saw of each Produce request: (producer id, epoch, base
/// sequence, record count).
type Seen = Arc<Mutex<Vec<(i64, i16, i32, i32)>>>;

fn metadata_for(addr: &str) -> MetadataResponse {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    MetadataResponse::default()
        .with_controller_id(BrokerId(0))
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(0))
            .with_host(StrBytes::from_string(host.to_string()))
            .with_port(port.parse().expect("port"))])
        .with_topics(vec![MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
            .with_partitions(vec![MetadataResponsePartition::default()
                .with_partition_index(0)
                .with_leader_id(BrokerId(0))
                .with_replica_nodes(vec![BrokerId(0)])
                .with_isr_nodes(vec![BrokerId(0)])])])
}

fn produce_response(code: i16, base_offset: i64) -> ProduceResponse {
    ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
        .with_name(TopicName(StrBytes::from_static_str("t")))
        .with_partition_responses(vec![PartitionProduceResponse::default()
            .with_index(0)
            .with_error_code(code)
            .with_base_offset(base_offset)])])
}

#[tokio::test]
async fn idempotent_retries_resend_the_same_sequence() {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let addr_cell: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
    let (log, addr_of) = (seen.clone(), addr_cell.clone());
    let addr = fake_broker(Arc::new(move |h: &RequestHeader, mut body: Bytes| {
        let v = h.request_api_version;
        match ApiKey::try_from(h.request_api_key).expect("api") {
            ApiKey::ApiVersions => encode(&full_versions(), v),
            ApiKey::Metadata => encode(&metadata_for(&addr_of.lock().unwrap()), v),
            ApiKey::InitProducerId => encode(
                &InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(7))
                    .with_producer_epoch(2),
                v,
            ),
            ApiKey::Produce => {
                let request = ProduceRequest::decode(&mut body, v).expect("produce request");
                assert_eq!(request.acks, -1);
                let mut records = request.topic_data[0].partition_data[0]
                    .records
                    .clone()
                    .expect("records");
                let info = RecordBatchDecoder::decode_batch_info(&mut records).expect("batch");
                assert_eq!(info.len(), 1);
                let mut log = log.lock().unwrap();
                log.push((
                    info[0].producer_id,
                    info[0].producer_epoch,
                    info[0].base_sequence,
                    info[0].record_count,
                ));
                match log.len() {
                    1 => encode(&produce_response(6, -1), v), // NOT_LEADER_OR_FOLLOWER
                    2 => encode(&produce_response(46, 5), v), // DUPLICATE_SEQUENCE_NUMBER
                    _ => encode(&produce_response(0, 6), v),
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }))
    .await;
    *addr_cell.lock().unwrap() = addr.clone();
    let cluster = Cluster::connect(ClientConfig::new(&addr))
        .await
        .expect("connect");
    let producer = Producer::new(
        cluster,
        ProducerConfig {
            acks: Acks::All,
            idempotent: true,
            retry_backoff: Duration::from_millis(10),
            linger: Duration::from_millis(0),
            ..ProducerConfig::default()
        },
    )
    .await
    .expect("producer");
    let first = producer
        .send(ProducerRecord::new("t", "one"))
        .await
        .expect("acknowledged after a retry");
    assert_eq!((first.partition, first.offset), (0, Some(5)));
    let second = producer
        .send(ProducerRecord::new("t", "two"))
        .await
        .expect("acknowledged");
    assert_eq!(second.offset, Some(6));
    producer.close().await.expect("close");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(7, 2, 0, 1), (7, 2, 0, 1), (7, 2, 1, 1)],
        "the retry repeats sequence 0; the next batch continues at 1"
    );
}

#[tokio::test]
async fn non_retriable_produce_errors_reach_the_caller() {
    let addr_cell: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
    let addr_of = addr_cell.clone();
    let addr = fake_broker(Arc::new(move |h: &RequestHeader, _body: Bytes| {
        let v = h.request_api_version;
        match ApiKey::try_from(h.request_api_key).expect("api") {
            ApiKey::ApiVersions => encode(&full_versions(), v),
            ApiKey::Metadata => encode(&metadata_for(&addr_of.lock().unwrap()), v),
            // MESSAGE_TOO_LARGE: retrying cannot help.
            ApiKey::Produce => encode(&produce_response(10, -1), v),
            other => panic!("unexpected {other:?}"),
        }
    }))
    .await;
    *addr_cell.lock().unwrap() = addr.clone();
    let cluster = Cluster::connect(ClientConfig::new(&addr))
        .await
        .expect("connect");
    let producer = Producer::new(
        cluster,
        ProducerConfig {
            acks: Acks::Leader,
            idempotent: false,
            ..ProducerConfig::default()
        },
    )
    .await
    .expect("producer");
    let err = producer
        .send(ProducerRecord::new("t", "big"))
        .await
        .unwrap_err();
    assert_eq!(err.kafka_code(), Some(10), "{err}");
    // Unknown partitions are refused without a request.
    let err = producer
        .send(ProducerRecord::new("t", "x").with_partition(3))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownPartition { .. }), "{err}");
    producer.close().await.expect("close");
}
