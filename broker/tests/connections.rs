//! Connection limits over real sockets: `connections.max.idle.ms` closes a silent
//! connection but not one whose answer is still waiting, `max.connections.per.ip` closes
//! the connection over the limit at accept and admits again once a slot is free, and a
//! request larger than `queued.max.request.bytes` still gets through, alone.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{batch_of, roundtrip, start_broker_with, topic};
use kafka_protocol::messages::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How long a test waits for the broker to do what it must (a deadline, not a pace).
const PATIENCE: Duration = Duration::from_secs(30);

/// Whether the broker closed `conn` (read returns end of stream) within [`PATIENCE`].
async fn closed_by_broker(conn: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(PATIENCE, conn.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn api_versions() -> RequestKind {
    ApiVersionsRequest::default().into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_but_a_waiting_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let idle = Duration::from_millis(300);
    let running = start_broker_with(dir.path(), |c| c.connections_max_idle = idle).await;
    running
        .broker
        .cluster
        .create_topic(&running.broker.topics, "t", 1, 1, BTreeMap::new())
        .await
        .unwrap();

    // A long poll on an empty partition waits 3 s, ten idle periods: the connection
    // must stay open for its answer.
    let mut polling = TcpStream::connect(running.kafka_addr).await.unwrap();
    let fetch = common::fetch_one("t", 0, 0)
        .with_max_wait_ms(3000)
        .with_min_bytes(1);
    let started = Instant::now();
    match roundtrip(&mut polling, ApiKey::Fetch, 12, 1, &fetch.into()).await {
        ResponseKind::Fetch(r) => assert_eq!(r.responses[0].partitions[0].error_code, 0),
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "the poll waited"
    );
    // Still usable after the wait.
    roundtrip(&mut polling, ApiKey::ApiVersions, 3, 2, &api_versions()).await;

    // A connection that says nothing is closed.
    let mut silent = TcpStream::connect(running.kafka_addr).await.unwrap();
    assert!(
        closed_by_broker(&mut silent).await,
        "idle connection left open"
    );
    // So is one that sends half a frame and stops.
    let mut stalled = TcpStream::connect(running.kafka_addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stalled, &[0, 0, 1, 0, 7])
        .await
        .unwrap();
    assert!(
        closed_by_broker(&mut stalled).await,
        "stalled frame left open"
    );
    running.shutdown();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_more_than_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_broker_with(dir.path(), |c| c.max_connections_per_ip = 2).await;
    let mut first = TcpStream::connect(running.kafka_addr).await.unwrap();
    let mut second = TcpStream::connect(running.kafka_addr).await.unwrap();
    roundtrip(&mut first, ApiKey::ApiVersions, 3, 1, &api_versions()).await;
    roundtrip(&mut second, ApiKey::ApiVersions, 3, 1, &api_versions()).await;
    let mut third = TcpStream::connect(running.kafka_addr).await.unwrap();
    assert!(
        closed_by_broker(&mut third).await,
        "a third connection was kept"
    );
    // The first two are untouched; once one closes, a new one is admitted (the slot
    // frees when the broker sees the close, so try until it does).
    roundtrip(&mut first, ApiKey::ApiVersions, 3, 2, &api_versions()).await;
    drop(second);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut next = TcpStream::connect(running.kafka_addr).await.unwrap();
        common::send(&mut next, ApiKey::ApiVersions, 3, 3, &api_versions()).await;
        let mut len = [0u8; 4];
        match tokio::time::timeout(PATIENCE, next.read_exact(&mut len)).await {
            Ok(Ok(_)) => break,
            _ => assert!(Instant::now() < deadline, "no slot came free"),
        }
    }
    running.shutdown();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_larger_than_the_queued_budget_still_gets_through() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_broker_with(dir.path(), |c| c.queued_max_request_bytes = 1024).await;
    running
        .broker
        .cluster
        .create_topic(&running.broker.topics, "t", 1, 1, BTreeMap::new())
        .await
        .unwrap();
    let mut conn = TcpStream::connect(running.kafka_addr).await.unwrap();
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic("t"))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch_of(4000))),
            ])]);
    for id in 0..3 {
        match roundtrip(&mut conn, ApiKey::Produce, 9, id, &produce.clone().into()).await {
            ResponseKind::Produce(r) => {
                let p = &r.responses[0].partition_responses[0];
                assert_eq!((p.error_code, p.base_offset), (0, i64::from(id)));
            }
            other => panic!("{other:?}"),
        }
    }
    running.shutdown();
    running.wait().await.unwrap();
}
