//! The producer with several Produce requests in flight per broker, against a scripted
//! broker that keeps a log per partition: requests really overlap (up to
//! `max_in_flight_requests`, never more), each partition's records land in send order,
//! also when one partition's batch is refused and retried while others go on, and every
//! delivery resolves once with the offset the broker gave its record.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use client::{Acks, ClientConfig, Cluster, Producer, ProducerConfig, ProducerRecord};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataResponse, ProduceRequest, ProduceResponse,
    RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const PARTITIONS: i32 = 4;
/// NOT_LEADER_OR_FOLLOWER: retriable.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// How long a parked request waits for the others before answering anyway: only a
/// failing test gets there (its assertion then says how many overlapped).
const PARK_TIMEOUT: Duration = Duration::from_secs(10);

/// The scripted broker's state, shared by its connections.
#[derive(Default)]
struct State {
    addr: String,
    /// Record values per partition, in append order.
    log: HashMap<i32, Vec<Bytes>>,
    /// Produce requests answered so far / waiting to be answered now.
    parked: usize,
    max_parked: usize,
    /// Connections that carried a Produce request.
    produce_connections: HashSet<usize>,
    /// The largest batch received: bytes, records.
    max_batch: (usize, usize),
    /// Produce attempts for partition 0 refused so far, and how many to refuse.
    refused: usize,
    refuse_partition_0: usize,
}

struct Broker {
    state: Mutex<State>,
    /// Produce requests are held until this many are in flight at once; then every
    /// request is answered at once.
    hold_until_parked: usize,
    released: watch::Sender<bool>,
    /// Produce requests held right now.
    parked: watch::Sender<usize>,
}

impl Broker {
    async fn start(hold_until_parked: usize, refuse_partition_0: usize) -> Arc<Broker> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let broker = Arc::new(Broker {
            state: Mutex::new(State {
                addr: listener.local_addr().expect("addr").to_string(),
                refuse_partition_0,
                ..State::default()
            }),
            hold_until_parked,
            released: watch::channel(hold_until_parked <= 1).0,
            parked: watch::channel(0).0,
        });
        let serving = Arc::clone(&broker);
        tokio::spawn(async move {
            let mut id = 0;
            while let Ok((stream, _)) = listener.accept().await {
                id += 1;
                tokio::spawn(Arc::clone(&serving).serve(id, stream));
            }
        });
        broker
    }

    fn addr(&self) -> String {
        self.state.lock().unwrap().addr.clone()
    }

    async fn serve(self: Arc<Self>, connection: usize, mut stream: TcpStream) {
        while let Some((header, frame)) = common::read_request(&mut stream).await {
            let body = self.answer(connection, &header, frame).await;
            let out = common::response_frame(&header, &body);
            if stream.write_all(&out).await.is_err() {
                return;
            }
        }
    }

    async fn answer(&self, connection: usize, h: &RequestHeader, mut body: Bytes) -> BytesMut {
        let v = h.request_api_version;
        let mut out = BytesMut::new();
        match ApiKey::try_from(h.request_api_key).expect("api") {
            ApiKey::ApiVersions => versions().encode(&mut out, v),
            ApiKey::Metadata => metadata(&self.addr()).encode(&mut out, v),
            ApiKey::Produce => {
                let request = ProduceRequest::decode(&mut body, v).expect("produce");
                let response = self.append(connection, &request);
                self.park().await;
                response.encode(&mut out, v)
            }
            other => panic!("unexpected {other:?}"),
        }
        .expect("encode");
        out
    }

    /// Appends every partition's batch to the log (or refuses partition 0's while it
    /// should), as a broker handles a request: in the order requests arrive.
    fn append(&self, connection: usize, request: &ProduceRequest) -> ProduceResponse {
        let mut state = self.state.lock().unwrap();
        state.produce_connections.insert(connection);
        let mut partitions = Vec::new();
        for data in &request.topic_data[0].partition_data {
            let mut records = data.records.clone().expect("records");
            let batch_bytes = records.len();
            let batch = RecordBatchDecoder::decode(&mut records).expect("a batch");
            state.max_batch = state.max_batch.max((batch_bytes, batch.records.len()));
            let response = PartitionProduceResponse::default().with_index(data.index);
            if data.index == 0 && state.refused < state.refuse_partition_0 {
                state.refused += 1;
                partitions.push(response.with_error_code(NOT_LEADER_OR_FOLLOWER));
                continue;
            }
            let log = state.log.entry(data.index).or_default();
            let base_offset = log.len() as i64;
            log.extend(batch.records.into_iter().map(|r| r.value.expect("value")));
            partitions.push(response.with_base_offset(base_offset));
        }
        ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_responses(partitions)])
    }

    /// Holds the response until `hold_until_parked` requests are held at once.
    async fn park(&self) {
        {
            let mut state = self.state.lock().unwrap();
            state.parked += 1;
            state.max_parked = state.max_parked.max(state.parked);
            if state.parked >= self.hold_until_parked {
                self.released.send_replace(true);
            }
            self.parked.send_replace(state.parked);
        }
        let mut released = self.released.subscribe();
        let _ = tokio::time::timeout(PARK_TIMEOUT, released.wait_for(|r| *r)).await;
        let mut state = self.state.lock().unwrap();
        state.parked -= 1;
        self.parked.send_replace(state.parked);
    }
}

fn versions() -> ApiVersionsResponse {
    let ranges = [
        (ApiKey::ApiVersions, 0, 3),
        (ApiKey::Metadata, 0, 12),
        (ApiKey::Produce, 0, 11),
    ];
    ApiVersionsResponse::default().with_api_keys(
        ranges
            .iter()
            .map(|&(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(k as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect(),
    )
}

fn metadata(addr: &str) -> MetadataResponse {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(0))
            .with_host(StrBytes::from_string(host.to_string()))
            .with_port(port.parse().expect("port"))])
        .with_topics(vec![MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
            .with_partitions(
                (0..PARTITIONS)
                    .map(|p| {
                        MetadataResponsePartition::default()
                            .with_partition_index(p)
                            .with_leader_id(BrokerId(0))
                            .with_replica_nodes(vec![BrokerId(0)])
                            .with_isr_nodes(vec![BrokerId(0)])
                    })
                    .collect(),
            )])
}

/// Sends `per_partition` records to each partition, interleaved, and checks that each
/// delivery got the offset of its value in the broker's log, and the log is in order.
/// With `staggered`, the first records of the first `broker.hold_until_parked`
/// partitions go one at a time, each once the broker holds the request before it: a
/// partition's batches are never in flight together, so only partitions that become
/// ready while others are in flight start requests of their own.
async fn produce_and_check(
    broker: &Broker,
    config: ProducerConfig,
    per_partition: usize,
    staggered: bool,
) {
    let cluster = Cluster::connect(ClientConfig::new(&broker.addr()))
        .await
        .expect("connect");
    let producer = Producer::new(cluster, config).await.expect("producer");
    let mut deliveries = Vec::new();
    let mut first = 0;
    if staggered {
        let mut parked = broker.parked.subscribe();
        for p in 0..broker.hold_until_parked as i32 {
            let record = ProducerRecord::new("t", format!("p{p}-{:05}", 0)).with_partition(p);
            deliveries.push((p, 0, producer.enqueue(record).await.expect("enqueue")));
            if (p as usize) + 1 < broker.hold_until_parked {
                let want = p as usize + 1;
                parked.wait_for(|n| *n >= want).await.expect("broker");
            }
        }
        for p in broker.hold_until_parked as i32..PARTITIONS {
            let record = ProducerRecord::new("t", format!("p{p}-{:05}", 0)).with_partition(p);
            deliveries.push((p, 0, producer.enqueue(record).await.expect("enqueue")));
        }
        first = 1;
    }
    for i in first..per_partition {
        for p in 0..PARTITIONS {
            let value = format!("p{p}-{i:05}");
            let record = ProducerRecord::new("t", value.clone()).with_partition(p);
            let delivery = producer.enqueue(record).await.expect("enqueue");
            deliveries.push((p, i, delivery));
        }
    }
    for (p, i, delivery) in deliveries {
        let meta = delivery.await.expect("acknowledged");
        assert_eq!((&*meta.topic, meta.partition), ("t", p));
        assert_eq!(meta.offset, Some(i as i64), "p{p}-{i}");
    }
    producer.close().await.expect("close");
    let state = broker.state.lock().unwrap();
    for p in 0..PARTITIONS {
        let expected: Vec<Bytes> = (0..per_partition)
            .map(|i| Bytes::from(format!("p{p}-{i:05}")))
            .collect();
        assert_eq!(state.log[&p], expected, "partition {p} in send order, once");
    }
}

fn config(max_in_flight_requests: usize) -> ProducerConfig {
    ProducerConfig {
        acks: Acks::Leader,
        idempotent: false,
        linger: Duration::ZERO,
        // A few records per batch: many batches per partition.
        batch_size_bytes: 300,
        max_in_flight_requests,
        retry_backoff: Duration::from_millis(5),
        ..ProducerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_overlap_up_to_the_limit_and_partitions_keep_their_order() {
    let broker = Broker::start(3, 0).await;
    produce_and_check(&broker, config(3), 200, true).await;
    let state = broker.state.lock().unwrap();
    assert_eq!(state.max_parked, 3, "three requests were in flight at once");
    assert!(
        state.produce_connections.len() <= 3,
        "one connection per request in flight: {:?}",
        state.produce_connections
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_is_not_overtaken_by_its_partitions_next_batches() {
    // Partition 0's first three attempts are refused (retriable) while the other
    // partitions' requests keep flowing.
    let broker = Broker::start(1, 3).await;
    produce_and_check(&broker, config(5), 100, false).await;
    let state = broker.state.lock().unwrap();
    assert_eq!(state.refused, 3);
    assert!(state.max_parked <= 5, "{}", state.max_parked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_in_flight_still_delivers_everything_in_order() {
    let broker = Broker::start(1, 1).await;
    produce_and_check(&broker, config(1), 50, false).await;
    let state = broker.state.lock().unwrap();
    assert_eq!(state.max_parked, 1);
    assert_eq!(state.produce_connections.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_enqueue_hands_the_record_back_while_the_buffer_is_full() {
    // Produce requests are held until released: the buffer fills, then the queue.
    let broker = Broker::start(usize::MAX, 0).await;
    let cluster = Cluster::connect(ClientConfig::new(&broker.addr()))
        .await
        .expect("connect");
    let config = ProducerConfig {
        max_request_bytes: 4096,
        buffer_bytes: 4096,
        ..config(5)
    };
    let producer = Producer::new(cluster, config).await.expect("producer");
    let mut deliveries = Vec::new();
    let mut refused = None;
    for i in 0..100_000 {
        let record = ProducerRecord::new("t", format!("p0-{i:05}")).with_partition(0);
        match producer.try_enqueue(record) {
            Ok(d) => deliveries.push(d),
            Err(client::TryEnqueueError::Full(record)) => {
                refused = Some(record);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let refused = refused.expect("the queue filled up");
    assert_eq!(
        refused.value.as_deref(),
        Some(format!("p0-{:05}", deliveries.len()).as_bytes())
    );
    broker.released.send_replace(true);
    deliveries.push(producer.enqueue(*refused).await.expect("enqueue"));
    for (i, d) in deliveries.into_iter().enumerate() {
        assert_eq!(d.await.expect("acknowledged").offset, Some(i as i64));
    }
    producer.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_behind_a_busy_one_grows_but_stays_within_a_default_broker_limit() {
    // The first request is held while ~2.7 MB of records arrive for its partition.
    let broker = Broker::start(usize::MAX, 0).await;
    let cluster = Cluster::connect(ClientConfig::new(&broker.addr()))
        .await
        .expect("connect");
    let config = ProducerConfig {
        batch_size_bytes: 16 * 1024,
        max_request_bytes: 4 * 1024 * 1024,
        buffer_bytes: 8 * 1024 * 1024,
        ..config(5)
    };
    let producer = Producer::new(cluster, config).await.expect("producer");
    let value = "x".repeat(100);
    let mut deliveries = Vec::new();
    for _ in 0..20_000 {
        let record = ProducerRecord::new("t", value.clone()).with_partition(0);
        deliveries.push(producer.enqueue(record).await.expect("enqueue"));
    }
    broker.released.send_replace(true);
    for (i, d) in deliveries.into_iter().enumerate() {
        assert_eq!(d.await.expect("acknowledged").offset, Some(i as i64));
    }
    producer.close().await.expect("close");
    let (bytes, records) = broker.state.lock().unwrap().max_batch;
    // Kafka's default message.max.bytes.
    assert!(bytes <= 1_048_588, "a batch of {bytes} bytes");
    assert!(
        records > 1000,
        "batches grew past 16 KiB: {records} records"
    );
}
