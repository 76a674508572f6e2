//! The producer with several Produce requests in flight per broker, all on one
//! pipelined connection, against a scripted broker that reads requests ahead of its
//! answers (as Kafka brokers do), keeps a log per partition and checks idempotent
//! producers' sequence numbers as a broker does (OUT_OF_ORDER_SEQUENCE_NUMBER for a
//! gap, DUPLICATE_SEQUENCE_NUMBER for a batch it has): requests really overlap (up to
//! `max_in_flight_requests`, never more), each partition's records land in send order,
//! also when one partition's batch is refused and retried while its next batches are in
//! flight behind it and others go on, and every delivery resolves once with the offset
//! the broker gave its record. As Kafka and Strata do, the broker takes a producer id
//! it has no state for (on a partition) at any sequence; it hands out a new producer id
//! per InitProducerId.

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
    ApiKey, ApiVersionsResponse, BrokerId, InitProducerIdResponse, MetadataResponse,
    ProduceRequest, ProduceResponse, ProducerId, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

const PARTITIONS: i32 = 4;
/// NOT_LEADER_OR_FOLLOWER: retriable.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// MESSAGE_TOO_LARGE: not retriable.
const MESSAGE_TOO_LARGE: i16 = 10;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
/// How long a parked request waits for the others before answering anyway: only a
/// failing test gets there (its assertion then says how many overlapped).
const PARK_TIMEOUT: Duration = Duration::from_secs(10);

/// An idempotent batch appended: base sequence, records, base offset.
type Appended = (i32, i32, i64);

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
    /// Produce attempts for partition 0 refused so far, and how many to refuse: the
    /// first ones that would have been appended after `accept_first` were.
    refused: usize,
    refuse_partition_0: usize,
    accept_first: usize,
    /// Partition 0's batches appended so far.
    appended_0: usize,
    /// Idempotent producers' batches appended per partition and producer id: (base
    /// sequence, records, base offset); the next sequence is the one after the last.
    sequences: HashMap<(i32, i64), Vec<Appended>>,
    /// Partition 0's batches as they arrived: (base sequence, error code answered),
    /// and their producer ids.
    arrivals: Vec<(i32, i16)>,
    arrival_ids: Vec<i64>,
    /// InitProducerId requests answered (producer ids 7, 8, …).
    inits: i64,
    /// Produce requests per connection.
    produce_requests: HashMap<usize, usize>,
    /// The answer to partition 0's first batch was cut off (once).
    cut: bool,
}

/// What the scripted broker does beyond appending and checking sequences.
#[derive(Clone, Copy, Default)]
struct Script {
    /// Produce answers are held until this many are in flight at once (a producer's
    /// first batch on a partition, sequence 0, is answered at once: the producer sends
    /// nothing more to the partition until it has the answer).
    hold_until_parked: usize,
    /// Hold the answers to first batches too.
    hold_first_batches: bool,
    /// Partition 0's attempts to refuse (retriable), once `accept_first` were appended.
    refuse_partition_0: usize,
    accept_first: usize,
    /// Refuse partition 1's batches with this code.
    refuse_partition_1: Option<i16>,
    /// Append partition 0's first batch, then close the connection instead of
    /// answering (once).
    cut_after_first_0: bool,
    /// Close a connection's sending side (as a broker closing an idle connection)
    /// after its first Produce answer, and read on until the client hangs up.
    close_after_produce: bool,
}

/// An answer for the writer.
struct Reply {
    header: RequestHeader,
    body: BytesMut,
    /// A held Produce answer.
    parked: bool,
    /// Close the connection instead of answering.
    cut: bool,
    /// Close the sending side after answering.
    close: bool,
}

struct Broker {
    state: Mutex<State>,
    script: Script,
    /// Produce requests are held until `hold_until_parked` are in flight at once; then
    /// every request is answered at once.
    hold_until_parked: usize,
    released: watch::Sender<bool>,
    /// Produce requests held right now.
    parked: watch::Sender<usize>,
    /// Connections that carried Produce requests and that the client closed.
    hung_up: watch::Sender<usize>,
}

impl Broker {
    async fn start(hold_until_parked: usize, refuse_partition_0: usize) -> Arc<Broker> {
        Broker::start_refusing_after(hold_until_parked, 0, refuse_partition_0).await
    }

    async fn start_refusing_after(
        hold_until_parked: usize,
        accept_first: usize,
        refuse_partition_0: usize,
    ) -> Arc<Broker> {
        Broker::start_with(Script {
            hold_until_parked,
            accept_first,
            refuse_partition_0,
            ..Script::default()
        })
        .await
    }

    async fn start_with(script: Script) -> Arc<Broker> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let hold_until_parked = script.hold_until_parked;
        let broker = Arc::new(Broker {
            state: Mutex::new(State {
                addr: listener.local_addr().expect("addr").to_string(),
                refuse_partition_0: script.refuse_partition_0,
                accept_first: script.accept_first,
                ..State::default()
            }),
            script,
            hold_until_parked,
            released: watch::channel(hold_until_parked <= 1).0,
            parked: watch::channel(0).0,
            hung_up: watch::channel(0).0,
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

    /// Reads requests ahead of the answers: each is applied as it arrives, and its
    /// answer queued to the writer, which holds Produce answers while `park` says so.
    async fn serve(self: Arc<Self>, connection: usize, stream: TcpStream) {
        let (mut read, mut write) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Reply>();
        let broker = Arc::clone(&self);
        tokio::spawn(async move {
            while let Some(reply) = rx.recv().await {
                if reply.parked {
                    broker.unpark().await;
                }
                if reply.cut {
                    return;
                }
                let out = common::response_frame(&reply.header, &reply.body);
                if write.write_all(&out).await.is_err() {
                    return;
                }
                if reply.close {
                    let _ = write.shutdown().await;
                    return;
                }
            }
        });
        while let Some((header, frame)) = common::read_request(&mut read).await {
            let reply = self.answer(connection, header, frame);
            let cut = reply.cut;
            if tx.send(reply).is_err() || cut {
                return;
            }
        }
        if self
            .state
            .lock()
            .unwrap()
            .produce_requests
            .contains_key(&connection)
        {
            self.hung_up.send_modify(|n| *n += 1);
        }
    }

    /// The answer to one request.
    fn answer(&self, connection: usize, header: RequestHeader, mut body: Bytes) -> Reply {
        let v = header.request_api_version;
        let mut out = BytesMut::new();
        let (mut parked, mut cut, mut close) = (false, false, false);
        match ApiKey::try_from(header.request_api_key).expect("api") {
            ApiKey::ApiVersions => versions().encode(&mut out, v),
            ApiKey::Metadata => metadata(&self.addr()).encode(&mut out, v),
            ApiKey::InitProducerId => {
                let mut state = self.state.lock().unwrap();
                state.inits += 1;
                InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(6 + state.inits))
                    .with_producer_epoch(0)
                    .encode(&mut out, v)
            }
            ApiKey::Produce => {
                let request = ProduceRequest::decode(&mut body, v).expect("produce");
                let (response, first, cut_it) = self.append(connection, &request);
                if !first || self.script.hold_first_batches {
                    self.park();
                    parked = true;
                }
                cut = cut_it;
                close = self.script.close_after_produce;
                response.encode(&mut out, v)
            }
            other => panic!("unexpected {other:?}"),
        }
        .expect("encode");
        Reply {
            header,
            body: out,
            parked,
            cut,
            close,
        }
    }

    /// Appends every partition's batch to the log (or refuses partition 0's while it
    /// should, or a batch out of sequence), as a broker handles a request: in the order
    /// requests arrive. Also says whether the request carried a producer's first batch
    /// (sequence 0), and whether to cut the connection instead of answering.
    fn append(&self, connection: usize, request: &ProduceRequest) -> (ProduceResponse, bool, bool) {
        let mut state = self.state.lock().unwrap();
        state.produce_connections.insert(connection);
        *state.produce_requests.entry(connection).or_default() += 1;
        let (mut first_batch, mut cut) = (false, false);
        let mut partitions = Vec::new();
        for data in &request.topic_data[0].partition_data {
            let mut records = data.records.clone().expect("records");
            let batch_bytes = records.len();
            let batch = RecordBatchDecoder::decode(&mut records).expect("a batch");
            state.max_batch = state.max_batch.max((batch_bytes, batch.records.len()));
            let first = batch.records.first().expect("a record");
            let (producer_id, sequence) = (first.producer_id, first.sequence);
            first_batch |= producer_id >= 0 && sequence == 0;
            let count = batch.records.len() as i32;
            let response = PartitionProduceResponse::default().with_index(data.index);
            let code = state.check_sequence(data.index, producer_id, sequence, count);
            let code = match (code, self.script.refuse_partition_1) {
                (Ok(()), _) if data.index == 0 => state.maybe_refuse(),
                (Ok(()), Some(refusal)) if data.index == 1 => refusal,
                (other, _) => other.err().unwrap_or(0),
            };
            if data.index == 0 {
                state.arrivals.push((sequence, code));
                state.arrival_ids.push(producer_id);
            }
            match code {
                0 => {}
                DUPLICATE_SEQUENCE_NUMBER => {
                    let known = state.sequences[&(data.index, producer_id)].iter();
                    let (_, _, offset) = known.copied().find(|b| b.0 == sequence).expect("known");
                    partitions.push(response.with_error_code(code).with_base_offset(offset));
                    continue;
                }
                _ => {
                    partitions.push(response.with_error_code(code));
                    continue;
                }
            }
            let log = state.log.entry(data.index).or_default();
            let base_offset = log.len() as i64;
            log.extend(batch.records.into_iter().map(|r| r.value.expect("value")));
            if data.index == 0 {
                state.appended_0 += 1;
                if self.script.cut_after_first_0 && !state.cut {
                    state.cut = true;
                    cut = true;
                }
            }
            if producer_id >= 0 {
                let appended = (sequence, count, base_offset);
                let key = (data.index, producer_id);
                state.sequences.entry(key).or_default().push(appended);
            }
            partitions.push(response.with_base_offset(base_offset));
        }
        let response =
            ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_responses(partitions)]);
        (response, first_batch, cut)
    }

    /// Counts a Produce request held; all are released once `hold_until_parked` are
    /// held at once.
    fn park(&self) {
        let mut state = self.state.lock().unwrap();
        state.parked += 1;
        state.max_parked = state.max_parked.max(state.parked);
        if state.parked >= self.hold_until_parked {
            self.released.send_replace(true);
        }
        self.parked.send_replace(state.parked);
    }

    /// Waits for the release (or, in a failing test, `PARK_TIMEOUT`) of a held answer.
    async fn unpark(&self) {
        let mut released = self.released.subscribe();
        let _ = tokio::time::timeout(PARK_TIMEOUT, released.wait_for(|r| *r)).await;
        let mut state = self.state.lock().unwrap();
        state.parked -= 1;
        self.parked.send_replace(state.parked);
    }
}

impl State {
    /// As a broker checks an idempotent batch: the next sequence is appended, a batch
    /// it has is a duplicate, anything else is out of order; a producer id it has no
    /// batch of (on this partition) is taken at any sequence.
    fn check_sequence(
        &self,
        partition: i32,
        producer_id: i64,
        sequence: i32,
        count: i32,
    ) -> Result<(), i16> {
        if producer_id < 0 {
            return Ok(());
        }
        let Some(known) = self.sequences.get(&(partition, producer_id)) else {
            return Ok(());
        };
        if known.iter().any(|b| b.0 == sequence && b.1 == count) {
            return Err(DUPLICATE_SEQUENCE_NUMBER);
        }
        let next = known.last().map_or(0, |b| b.0 + b.1);
        if sequence == next {
            Ok(())
        } else {
            Err(OUT_OF_ORDER_SEQUENCE_NUMBER)
        }
    }

    /// Partition 0's batch that would be appended: refused while the script says so.
    fn maybe_refuse(&mut self) -> i16 {
        if self.appended_0 >= self.accept_first && self.refused < self.refuse_partition_0 {
            self.refused += 1;
            NOT_LEADER_OR_FOLLOWER
        } else {
            0
        }
    }
}

fn versions() -> ApiVersionsResponse {
    let ranges = [
        (ApiKey::ApiVersions, 0, 3),
        (ApiKey::Metadata, 0, 12),
        (ApiKey::Produce, 0, 11),
        (ApiKey::InitProducerId, 0, 4),
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
        // A few records per batch: many batches per partition. A batch behind others
        // in flight grows up to what one request carries, so that is small too.
        batch_size_bytes: 300,
        max_request_bytes: 400,
        max_in_flight_requests,
        retry_backoff: Duration::from_millis(5),
        ..ProducerConfig::default()
    }
}

/// An idempotent producer (acks=all) with `max_in_flight_requests`.
fn idempotent(max_in_flight_requests: usize) -> ProducerConfig {
    ProducerConfig {
        acks: Acks::All,
        idempotent: true,
        ..config(max_in_flight_requests)
    }
}

/// Sends `count` records to partition 0 and checks that each delivery got the offset
/// of its value in the broker's log, and the log holds them in order, once.
async fn produce_partition_0(broker: &Broker, config: ProducerConfig, count: usize) {
    let cluster = Cluster::connect(ClientConfig::new(&broker.addr()))
        .await
        .expect("connect");
    let producer = Producer::new(cluster, config).await.expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..count {
        let record = ProducerRecord::new("t", format!("p0-{i:05}")).with_partition(0);
        deliveries.push(producer.enqueue(record).await.expect("enqueue"));
    }
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let meta = delivery.await.expect("acknowledged");
        assert_eq!(meta.offset, Some(i as i64), "p0-{i}");
    }
    producer.close().await.expect("close");
    let state = broker.state.lock().unwrap();
    let expected: Vec<Bytes> = (0..count)
        .map(|i| Bytes::from(format!("p0-{i:05}")))
        .collect();
    assert_eq!(state.log[&0], expected, "in send order, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_overlap_up_to_the_limit_and_partitions_keep_their_order() {
    let broker = Broker::start(3, 0).await;
    produce_and_check(&broker, config(3), 200, true).await;
    let state = broker.state.lock().unwrap();
    assert_eq!(state.max_parked, 3, "three requests were in flight at once");
    assert_eq!(
        state.produce_connections.len(),
        1,
        "all on one connection: {:?}",
        state.produce_connections
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_partitions_batches_are_in_flight_together_on_one_connection() {
    // Answers are held until five requests are in flight: one partition fills them.
    let broker = Broker::start(5, 0).await;
    produce_partition_0(&broker, idempotent(5), 300).await;
    let state = broker.state.lock().unwrap();
    assert_eq!(
        state.max_parked, 5,
        "five of its batches were in flight at once"
    );
    assert_eq!(state.produce_connections.len(), 1);
    assert!(state.arrivals.iter().all(|(_, code)| *code == 0));
    let batches = &state.sequences[&(0, 7)];
    assert!(batches.len() > 5, "{batches:?}");
    for pair in batches.windows(2) {
        assert_eq!(pair[0].0 + pair[0].1, pair[1].0, "sequences without a gap");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_and_the_out_of_order_ones_behind_it_are_resent_in_order() {
    // Five requests are held until all five are in flight; partition 0's second batch
    // is refused (retriable), so the broker finds the three behind it out of order.
    let broker = Broker::start_refusing_after(5, 1, 1).await;
    produce_partition_0(&broker, idempotent(5), 300).await;
    let state = broker.state.lock().unwrap();
    assert_eq!(state.max_parked, 5);
    let codes: Vec<i16> = state.arrivals.iter().map(|(_, code)| *code).collect();
    assert_eq!(
        codes[..5],
        [
            0,
            NOT_LEADER_OR_FOLLOWER,
            OUT_OF_ORDER_SEQUENCE_NUMBER,
            OUT_OF_ORDER_SEQUENCE_NUMBER,
            OUT_OF_ORDER_SEQUENCE_NUMBER
        ],
        "{:?}",
        state.arrivals
    );
    // Batches sent before the producer read the refusal are out of order too. Once all
    // were back, the partition resent from the refused batch, with its sequence
    // numbers, then the others in order: nothing refused again.
    let first_sent: Vec<i32> = state.arrivals[1..5].iter().map(|(seq, _)| *seq).collect();
    let resend_at = 5 + state.arrivals[5..]
        .iter()
        .position(|(seq, _)| *seq == first_sent[0])
        .expect("the refused batch was resent");
    assert!(
        codes[5..resend_at]
            .iter()
            .all(|code| *code == OUT_OF_ORDER_SEQUENCE_NUMBER),
        "{:?}",
        state.arrivals
    );
    let resent: Vec<i32> = state.arrivals[resend_at..resend_at + 4]
        .iter()
        .map(|(seq, _)| *seq)
        .collect();
    assert_eq!(resent, first_sent);
    assert!(
        codes[resend_at..].iter().all(|code| *code == 0),
        "{codes:?}"
    );
    for pair in state.sequences[&(0, 7)].windows(2) {
        assert_eq!(pair[0].0 + pair[0].1, pair[1].0, "sequences without a gap");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_is_not_overtaken_by_its_partitions_next_batches() {
    // Partition 0's first three attempts are refused (retriable) while the other
    // partitions' requests keep flowing; the idempotent producer's batches behind the
    // refused one are refused as out of order and resent after it.
    let broker = Broker::start(1, 3).await;
    produce_and_check(&broker, idempotent(5), 100, false).await;
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
    let config = ProducerConfig {
        buffer_bytes: 8 * 1024 * 1024,
        ..config(5)
    };
    produce_100_byte_records_while_held(&broker, config, 20_000).await;
    let (bytes, records) = broker.state.lock().unwrap().max_batch;
    // Kafka's default message.max.bytes.
    assert!(bytes <= 1_048_588, "a batch of {bytes} bytes");
    assert!(
        records > 1000,
        "batches grew past 16 KiB: {records} records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_behind_one_in_flight_grows_rather_than_filling_free_slots() {
    // The first request is held while ~110 KB arrive for its partition: four slots are
    // free, but no batch reaches the grown size (1 MiB), so the records wait in one
    // growing batch and the partition never has two requests in flight.
    let broker = Broker::start(usize::MAX, 0).await;
    produce_100_byte_records_while_held(&broker, config(5), 1000).await;
    assert_eq!(broker.state.lock().unwrap().max_parked, 1);
}

/// Enqueues `count` records of 100 bytes to partition 0 while `broker` holds every
/// answer (batches of 16 KiB, requests of up to 4 MiB), then releases the answers and
/// checks each record got the next offset.
async fn produce_100_byte_records_while_held(
    broker: &Broker,
    config: ProducerConfig,
    count: usize,
) {
    let config = ProducerConfig {
        batch_size_bytes: 16 * 1024,
        max_request_bytes: 4 * 1024 * 1024,
        ..config
    };
    let producer = producer_for(broker, config).await;
    let value = "x".repeat(100);
    let mut deliveries = Vec::new();
    for _ in 0..count {
        let record = ProducerRecord::new("t", value.clone()).with_partition(0);
        deliveries.push(producer.enqueue(record).await.expect("enqueue"));
    }
    broker.released.send_replace(true);
    for (i, d) in deliveries.into_iter().enumerate() {
        assert_eq!(d.await.expect("acknowledged").offset, Some(i as i64));
    }
    producer.close().await.expect("close");
}

async fn producer_for(broker: &Broker, config: ProducerConfig) -> Producer {
    let cluster = Cluster::connect(ClientConfig::new(&broker.addr()))
        .await
        .expect("connect");
    Producer::new(cluster, config).await.expect("producer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitions_first_batch_goes_alone_until_it_is_acknowledged() {
    // The broker takes the new producer id at any sequence and refuses partition 0's
    // first attempt (retriable): had a later batch gone beside it, that one would have
    // been appended first, and the first batch's retry been out of order for good.
    let broker = Broker::start_refusing_after(1, 0, 1).await;
    produce_partition_0(&broker, idempotent(5), 300).await;
    let state = broker.state.lock().unwrap();
    let appended_at = state.arrivals.iter().position(|(_, code)| *code == 0);
    let appended_at = appended_at.expect("appended");
    assert!(
        state.arrivals[..=appended_at]
            .iter()
            .all(|(seq, _)| *seq == 0),
        "nothing but the first batch before it was appended: {:?}",
        state.arrivals
    );
    assert_eq!(state.arrivals[0], (0, NOT_LEADER_OR_FOLLOWER));
    assert!(state.sequences[&(0, 7)].len() > 5, "then many batches");
    assert_eq!(state.inits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definite_refusal_keeps_the_producer_id_and_a_lost_batch_is_resent_as_it_was() {
    // Partition 1's batch is refused for good while partition 0's is in flight behind
    // it; the broker appends partition 0's batch but the connection is lost before its
    // answer. Renewing the id here would re-stamp that batch and store it twice.
    let broker = Broker::start_with(Script {
        hold_until_parked: 2,
        hold_first_batches: true,
        refuse_partition_1: Some(MESSAGE_TOO_LARGE),
        cut_after_first_0: true,
        ..Script::default()
    })
    .await;
    let producer = producer_for(&broker, idempotent(5)).await;
    let refused = producer
        .enqueue(ProducerRecord::new("t", "p1").with_partition(1))
        .await
        .expect("enqueue");
    let mut parked = broker.parked.subscribe();
    parked.wait_for(|n| *n >= 1).await.expect("broker");
    let lost = producer
        .enqueue(ProducerRecord::new("t", "p0").with_partition(0))
        .await
        .expect("enqueue");
    let e = refused.await.expect_err("refused");
    assert_eq!(e.kafka_code(), Some(MESSAGE_TOO_LARGE), "{e}");
    assert_eq!(lost.await.expect("acknowledged").offset, Some(0));
    producer.close().await.expect("close");
    let state = broker.state.lock().unwrap();
    assert!(state.cut);
    assert_eq!(state.log[&0], vec![Bytes::from("p0")], "once");
    assert_eq!(state.inits, 1, "the producer id was kept");
    assert_eq!(
        state.arrivals,
        vec![(0, 0), (0, DUPLICATE_SEQUENCE_NUMBER)],
        "resent with its sequence, a duplicate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_outcome_is_unknown_fails_and_the_producer_id_is_renewed() {
    // Partition 0's first batch is appended but its answer lost, and it has no retry
    // left: it fails (it may or may not be stored), and the next batch goes under a new
    // producer id, from sequence 0.
    let broker = Broker::start_with(Script {
        cut_after_first_0: true,
        ..Script::default()
    })
    .await;
    let config = ProducerConfig {
        retries: 0,
        ..idempotent(5)
    };
    let producer = producer_for(&broker, config).await;
    let first = ProducerRecord::new("t", "first").with_partition(0);
    let e = producer.send(first).await.expect_err("unknown outcome");
    let lost_attempt = e.to_string().contains("I/O error");
    assert!(
        matches!(e, client::Error::DeliveryTimeout { .. }) && lost_attempt,
        "out of retries after a lost attempt: {e}"
    );
    let next = ProducerRecord::new("t", "next").with_partition(0);
    assert_eq!(producer.send(next).await.expect("sent").offset, Some(1));
    producer.close().await.expect("close");
    let state = broker.state.lock().unwrap();
    assert_eq!(state.inits, 2, "renewed once");
    assert_eq!(
        state.log[&0],
        vec![Bytes::from("first"), Bytes::from("next")]
    );
    assert_eq!(state.arrivals, vec![(0, 0), (0, 0)]);
    assert_eq!(state.arrival_ids, vec![7, 8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_broker_closed_while_idle_is_replaced_before_the_next_send() {
    // Each connection is closed by the broker after its first answer; the producer
    // sees it close (the broker sees the producer hang up), and the next send goes on
    // a new connection: nothing is written into the closed one.
    let broker = Broker::start_with(Script {
        close_after_produce: true,
        ..Script::default()
    })
    .await;
    let producer = producer_for(&broker, idempotent(5)).await;
    let mut hung_up = broker.hung_up.subscribe();
    for i in 0..3 {
        let record = ProducerRecord::new("t", format!("r{i}")).with_partition(0);
        let meta = producer.send(record).await.expect("acknowledged");
        assert_eq!(meta.offset, Some(i));
        let closed = i as usize + 1;
        // Bounded only so that a failing test fails instead of hanging.
        let seen = tokio::time::timeout(PARK_TIMEOUT, hung_up.wait_for(|n| *n >= closed)).await;
        seen.expect("the producer closed the connection")
            .expect("broker");
    }
    producer.close().await.expect("close");
    let state = broker.state.lock().unwrap();
    assert_eq!(state.produce_connections.len(), 3);
    assert!(
        state.produce_requests.values().all(|n| *n == 1),
        "one Produce per connection, none into a closed one: {:?}",
        state.produce_requests
    );
    assert!(state.arrivals.iter().all(|(_, code)| *code == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_expired_behind_one_in_flight_is_not_sent() {
    // One request at a time; the first is held past the second batch's delivery
    // timeout. When the first is answered, the second has expired: it fails, unsent.
    let broker = Broker::start(usize::MAX, 0).await;
    let delivery_timeout = Duration::from_millis(300);
    let config = ProducerConfig {
        delivery_timeout,
        ..config(1)
    };
    let producer = producer_for(&broker, config).await;
    let first = producer
        .enqueue(ProducerRecord::new("t", "first").with_partition(0))
        .await
        .expect("enqueue");
    let mut parked = broker.parked.subscribe();
    parked.wait_for(|n| *n >= 1).await.expect("broker");
    let second = producer
        .enqueue(ProducerRecord::new("t", "second").with_partition(0))
        .await
        .expect("enqueue");
    // What is waited for is the second batch's age itself.
    tokio::time::sleep(delivery_timeout + Duration::from_millis(50)).await;
    broker.released.send_replace(true);
    assert_eq!(first.await.expect("acknowledged").offset, Some(0));
    let e = second.await.expect_err("expired");
    assert!(matches!(e, client::Error::DeliveryTimeout { .. }), "{e}");
    producer.close().await.expect("close");
    assert_eq!(
        broker.state.lock().unwrap().log[&0],
        vec![Bytes::from("first")]
    );
}
