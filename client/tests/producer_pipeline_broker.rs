//! The pipelined producer against a real broker: a `strata serve` (the binary of this
//! workspace), reached through a TCP proxy in the test that the broker advertises as
//! its address, so every connection passes it. The proxy sees the wire: it counts the
//! Produce requests outstanding on each connection and holds their answers until five
//! are outstanding at once (so five batches of one partition are in flight together,
//! on one connection), and can cut the connection at that moment (so the idempotent
//! producer resends five batches the broker already has, which it must recognise as
//! duplicates). The answer to the producer's first batch (sequence 0) is not held: the
//! producer sends nothing more to the partition until it has it. Each test then reads the partition back with the consumer: every
//! record is there exactly once, in send order, at the offset its delivery reported.
//!
//! The broker binary is `target/<profile>/strata` beside this test's executable (build
//! it with `cargo build -p strata`), or the path in `STRATA_BIN`.

mod common;

use std::collections::HashMap;
use std::net::{TcpListener as StdListener, TcpStream as StdStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use client::{
    Acks, ClientConfig, Cluster, FetchConfig, PartitionConsumer, Producer, ProducerConfig,
    ProducerRecord, StartOffset,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, ResponseHeader};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable};
use kafka_protocol::records::RecordBatchDecoder;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Bound on anything a test waits for (a broker starting, a consumer catching up):
/// only a failing test gets there.
const DEADLINE: Duration = Duration::from_secs(60);
/// How long the proxy holds answers waiting for the others before passing them on
/// anyway (only a failing test gets there: its assertion then says how many
/// overlapped).
const HOLD_TIMEOUT: Duration = Duration::from_secs(10);
/// Produce requests the proxy waits to see outstanding at once.
const IN_FLIGHT: usize = 5;

fn strata_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("STRATA_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<this test> → target/<profile>/strata
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile_dir.join(format!("strata{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: build the broker first (cargo build -p strata) or set STRATA_BIN",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `strata serve` advertising `advertised` as its Kafka address; killed on drop.
struct Broker {
    child: Child,
    kafka: String,
    admin: String,
    _data: tempfile::TempDir,
}

impl Broker {
    fn start(advertised: &str) -> Broker {
        let data = tempfile::tempdir().expect("a temporary directory");
        let kafka = format!("127.0.0.1:{}", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        let child = Command::new(strata_binary())
            .arg("serve")
            .arg("--data-dir")
            .arg(data.path())
            .args(["--kafka-addr", &kafka, "--admin-addr", &admin])
            .args(["--advertised-kafka-addr", advertised])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start strata serve");
        let mut broker = Broker {
            child,
            kafka,
            admin,
            _data: data,
        };
        let deadline = Instant::now() + DEADLINE;
        while StdStream::connect(&broker.kafka).is_err() {
            if let Ok(Some(status)) = broker.child.try_wait() {
                panic!("strata serve exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not listen in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        broker
    }
}

impl Broker {
    /// Batches the broker recognised as resent and did not append again (its
    /// `strata_produced_batches_duplicate_total` metric). It answers them as Kafka
    /// does: success, with the original offsets.
    async fn duplicates(&self) -> u64 {
        let mut http = TcpStream::connect(&self.admin)
            .await
            .expect("the admin port");
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.admin
        );
        http.write_all(request.as_bytes()).await.expect("request");
        let mut page = String::new();
        http.read_to_string(&mut page).await.expect("metrics");
        page.lines()
            .filter(|l| l.starts_with("strata_produced_batches_duplicate_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the proxy saw.
#[derive(Default)]
struct Seen {
    /// The most Produce requests outstanding at once on one connection.
    max_outstanding: usize,
    /// Connections that carried a Produce request.
    produce_connections: usize,
    /// (base sequence, records) of every batch produced, in the order sent.
    batches: Vec<(i32, i32)>,
    /// Cut the next connection whose answers are held, once.
    cut: bool,
    cuts: usize,
    /// Batches the broker answered DUPLICATE_SEQUENCE_NUMBER (46) (a broker may also
    /// answer success with the original offsets, as Kafka and Strata do).
    duplicates: usize,
    /// Batches the broker counted as duplicates (its metric, read at the end).
    broker_duplicates: u64,
}

struct Proxy {
    addr: String,
    seen: Arc<Mutex<Seen>>,
    /// Held answers go once this is true (set when `IN_FLIGHT` are outstanding).
    released: watch::Sender<bool>,
}

impl Proxy {
    async fn start(cut: bool) -> (Arc<Proxy>, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxy = Arc::new(Proxy {
            addr: listener.local_addr().expect("addr").to_string(),
            seen: Arc::new(Mutex::new(Seen {
                cut,
                ..Seen::default()
            })),
            released: watch::channel(false).0,
        });
        (proxy, listener)
    }

    fn serve(self: &Arc<Self>, listener: TcpListener, upstream: String) {
        let proxy = Arc::clone(self);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let broker = TcpStream::connect(&upstream).await.expect("the broker");
                let _ = client.set_nodelay(true);
                let _ = broker.set_nodelay(true);
                tokio::spawn(Arc::clone(&proxy).relay(client, broker));
            }
        });
    }

    async fn relay(self: Arc<Self>, client: TcpStream, broker: TcpStream) {
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_broker, mut to_broker) = broker.into_split();
        // Produce requests outstanding: correlation id → version, and whether the answer
        // is held.
        let produce_ids: Arc<Mutex<HashMap<i32, (i16, bool)>>> = Arc::default();
        let ids = Arc::clone(&produce_ids);
        let proxy = Arc::clone(&self);
        tokio::spawn(async move {
            let mut produced = false;
            while let Some(frame) = read_frame(&mut from_client).await {
                proxy.request(&frame, &ids, &mut produced);
                if to_broker.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
        while let Some(frame) = read_frame(&mut from_broker).await {
            let correlation_id = (&frame[4..8]).get_i32();
            // Outstanding until its answer goes to the client: no longer counted before
            // the client can read it (and send another request in its place).
            let produce = produce_ids.lock().unwrap().get(&correlation_id).copied();
            if let Some((version, held)) = produce {
                if held && !self.answer().await {
                    return; // cut: the client's side closes as `to_client` drops
                }
                self.note_answer(&frame, version);
            }
            produce_ids.lock().unwrap().remove(&correlation_id);
            if to_client.write_all(&frame).await.is_err() {
                return;
            }
        }
    }

    /// Notes a request going to the broker on a connection that `produced` before, or
    /// not.
    fn request(&self, frame: &Bytes, ids: &Mutex<HashMap<i32, (i16, bool)>>, produced: &mut bool) {
        let mut body = frame.slice(4..);
        let header = decode_request_header_from_buffer(&mut body).expect("a request header");
        if header.request_api_key != ApiKey::Produce as i16 {
            return;
        }
        let request =
            ProduceRequest::decode(&mut body, header.request_api_version).expect("a Produce");
        let mut ids = ids.lock().unwrap();
        let mut seen = self.seen.lock().unwrap();
        if !*produced {
            *produced = true;
            seen.produce_connections += 1;
        }
        let mut first = false;
        for data in request.topic_data.iter().flat_map(|t| &t.partition_data) {
            let mut records = data.records.clone().expect("records");
            for info in RecordBatchDecoder::decode_batch_info(&mut records).expect("batches") {
                seen.batches.push((info.base_sequence, info.record_count));
                first |= info.base_sequence == 0;
            }
        }
        ids.insert(header.correlation_id, (header.request_api_version, !first));
        seen.max_outstanding = seen.max_outstanding.max(ids.len());
        if ids.len() >= IN_FLIGHT {
            self.released.send_replace(true);
        }
    }

    /// Counts the duplicates a Produce answer reports.
    fn note_answer(&self, frame: &Bytes, version: i16) {
        let mut body = frame.slice(4..);
        let header_version = ApiKey::Produce.response_header_version(version);
        ResponseHeader::decode(&mut body, header_version).expect("a response header");
        let response = ProduceResponse::decode(&mut body, version).expect("a Produce answer");
        let duplicates = response
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .filter(|p| p.error_code == 46)
            .count();
        self.seen.lock().unwrap().duplicates += duplicates;
    }

    /// Waits until a held Produce answer may go; false to cut the connection instead.
    async fn answer(&self) -> bool {
        let mut released = self.released.subscribe();
        let _ = tokio::time::timeout(HOLD_TIMEOUT, released.wait_for(|r| *r)).await;
        let mut seen = self.seen.lock().unwrap();
        if seen.cut {
            // This answer and those still outstanding on the connection are lost.
            seen.cut = false;
            seen.cuts += 1;
            return false;
        }
        true
    }
}

/// One whole frame (size prefix included); `None` once the peer closed.
async fn read_frame(stream: &mut (impl AsyncRead + Unpin)) -> Option<Bytes> {
    let size = stream.read_i32().await.ok()?;
    let mut frame = vec![0u8; 4 + usize::try_from(size).ok()?];
    frame[..4].copy_from_slice(&size.to_be_bytes());
    stream.read_exact(&mut frame[4..]).await.ok()?;
    Some(Bytes::from(frame))
}

/// Produces `count` records of about 100 bytes to `topic`-0 through a proxy in front of
/// a real broker, checks their deliveries and reads them back; returns what the proxy
/// saw.
async fn produce_through_proxy(topic: &str, count: usize, cut: bool) -> Arc<Mutex<Seen>> {
    let (proxy, listener) = Proxy::start(cut).await;
    let broker = Broker::start(&proxy.addr);
    proxy.serve(listener, broker.kafka.clone());
    let cluster = Cluster::connect(ClientConfig::new(&proxy.addr))
        .await
        .expect("connect");
    let config = ProducerConfig {
        acks: Acks::All,
        idempotent: true,
        max_in_flight_requests: IN_FLIGHT,
        batch_size_bytes: 4096,
        // A batch behind others grows up to what a request carries: keep that small
        // too, so one partition has many batches to put in flight.
        max_request_bytes: 8192,
        retry_backoff: Duration::from_millis(20),
        ..ProducerConfig::default()
    };
    let producer = Producer::new(Arc::clone(&cluster), config)
        .await
        .expect("producer");
    let value = |i: usize| format!("{i:08}-{}", "v".repeat(90));
    let mut deliveries = Vec::with_capacity(count);
    for i in 0..count {
        let record = ProducerRecord::new(topic, value(i)).with_partition(0);
        deliveries.push(producer.enqueue(record).await.expect("enqueue"));
    }
    let mut offsets = Vec::with_capacity(count);
    for d in deliveries {
        offsets.push(d.await.expect("acknowledged").offset.expect("an offset"));
    }
    producer.close().await.expect("close");
    let expected: Vec<i64> = (0..count as i64).collect();
    assert_eq!(offsets, expected, "each record at its place in send order");

    let mut consumer = PartitionConsumer::new(
        cluster,
        topic,
        0,
        StartOffset::Earliest,
        FetchConfig::default(),
    )
    .await
    .expect("consumer");
    let mut read = Vec::with_capacity(count);
    let deadline = Instant::now() + DEADLINE;
    while read.len() < count && Instant::now() < deadline {
        for r in consumer.poll().await.expect("poll") {
            read.push((r.offset, r.value.expect("a value")));
        }
    }
    let wanted: Vec<(i64, Bytes)> = (0..count)
        .map(|i| (i as i64, Bytes::from(value(i))))
        .collect();
    assert_eq!(read.len(), count, "every record, once");
    assert!(
        read == wanted,
        "the log holds the records in send order, once"
    );
    // Nothing after them either.
    assert_eq!(consumer.high_watermark(), Some(count as i64));
    let duplicates = broker.duplicates().await;
    proxy.seen.lock().unwrap().broker_duplicates = duplicates;
    drop(broker);
    Arc::clone(&proxy.seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_partition_has_five_batches_in_flight_on_one_connection_and_lands_once_in_order() {
    let seen = produce_through_proxy("pipelined", 20_000, false).await;
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.max_outstanding, IN_FLIGHT,
        "five Produce requests at once"
    );
    assert_eq!(seen.produce_connections, 1, "all on one connection");
    assert!(seen.batches.len() > IN_FLIGHT, "{}", seen.batches.len());
    assert_eq!(seen.duplicates + seen.broker_duplicates as usize, 0);
    // Sent in sequence order, each continuing the one before: nothing was resent.
    for pair in seen.batches.windows(2) {
        assert_eq!(pair[0].0 + pair[0].1, pair[1].0, "{:?}", seen.batches);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_with_five_batches_in_flight_resends_them_and_the_broker_dedups() {
    let seen = produce_through_proxy("cut", 20_000, true).await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.cuts, 1);
    assert_eq!(seen.max_outstanding, IN_FLIGHT);
    assert_eq!(seen.produce_connections, 2, "the producer reconnected once");
    // The first batch went alone and was answered; the five lost answers' batches
    // behind it went again, with their sequence numbers, in order.
    assert_eq!(seen.batches[0].0, 0);
    let lost: Vec<(i32, i32)> = seen.batches[1..=IN_FLIGHT].to_vec();
    assert_eq!(lost[0].0, seen.batches[0].1, "right after the first");
    let again = seen.batches[IN_FLIGHT + 1..]
        .iter()
        .position(|b| *b == lost[0])
        .map(|i| i + IN_FLIGHT + 1)
        .expect("the first lost batch was resent");
    assert_eq!(seen.batches[again..again + IN_FLIGHT], lost[..]);
    assert!(
        seen.duplicates + seen.broker_duplicates as usize > 0,
        "the broker had some of them already"
    );
}
