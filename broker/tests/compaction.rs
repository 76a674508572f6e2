//! `cleanup.policy=compact` through the broker: produced updates over TCP, the broker's
//! cleaner task compacts closed segments, Fetch then serves only the latest value per
//! key, and tombstoned keys disappear once `delete.retention.ms` has passed.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{roundtrip, start_broker_with, topic};
use kafka_protocol::messages::*;
use kafka_protocol::records::RecordBatchDecoder;
use strata_testkit::{encode_batch, Compression, RecordSpec, NO_PRODUCER};
use tokio::net::TcpStream;

const KEYS: usize = 100;
const ROUNDS: usize = 40;

fn update_batch(round: usize, keys: std::ops::Range<usize>, tombstone: bool) -> Bytes {
    let specs = keys.map(|k| RecordSpec {
        key: Some(Bytes::from(format!("key-{k}"))),
        value: (!tombstone).then(|| Bytes::from(format!("round-{round}-key-{k}"))),
        timestamp_ms: 1_700_000_000_000 + round as i64,
    });
    // Alternate codecs: the cleaner must rewrite compressed batches too.
    let codec = if round.is_multiple_of(2) {
        Compression::None
    } else {
        Compression::Gzip
    };
    encode_batch(specs, NO_PRODUCER, codec).freeze()
}

async fn produce(conn: &mut TcpStream, id: i32, batch: Bytes) {
    let req: RequestKind = common::produce_one("c", 0, batch, -1).into();
    match roundtrip(conn, ApiKey::Produce, 9, id, &req).await {
        ResponseKind::Produce(r) => assert_eq!(r.responses[0].partition_responses[0].error_code, 0),
        other => panic!("{other:?}"),
    }
}

/// Every record of partition c-0 as (offset, key, value), read with Fetch.
async fn read_all(conn: &mut TcpStream, id: &mut i32) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        *id += 1;
        let req: RequestKind = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(0)
            .with_max_bytes(8 << 20)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(topic("c"))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(8 << 20)])])
            .into();
        let ResponseKind::Fetch(r) = roundtrip(conn, ApiKey::Fetch, 11, *id, &req).await else {
            panic!("not a fetch answer")
        };
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let mut records = p.records.clone().unwrap_or_default();
        if records.is_empty() {
            return out;
        }
        let before = offset;
        for item in log_store::Batches::new(std::mem::take(&mut records)) {
            // A whole batch (a trailing partial one is cut by Batches).
            let Ok((header, mut bytes)) = item else { break };
            // Batches the cleaner emptied still carry their offsets.
            offset = offset.max(header.last_offset() + 1);
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            for rec in set.records {
                let text = |b: Bytes| String::from_utf8(b.to_vec()).unwrap();
                out.push((rec.offset, text(rec.key.unwrap()), rec.value.map(text)));
            }
        }
        if offset == before {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topic_keeps_the_latest_value_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_broker_with(dir.path(), |c| {
        c.cleaner.backoff = Duration::from_millis(50);
    })
    .await;
    let overrides = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("segment.bytes".to_string(), "16384".to_string()),
        ("min.cleanable.dirty.ratio".to_string(), "0.01".to_string()),
        ("delete.retention.ms".to_string(), "0".to_string()),
    ]);
    running
        .broker
        .cluster
        .create_topic(&running.broker.topics, "c", 1, 1, overrides)
        .await
        .unwrap();
    let mut conn = TcpStream::connect(running.kafka_addr).await.unwrap();
    let mut model: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut id = 0;
    for round in 0..ROUNDS {
        id += 1;
        produce(&mut conn, id, update_batch(round, 0..KEYS, false)).await;
        for k in 0..KEYS {
            model.insert(format!("key-{k}"), Some(format!("round-{round}-key-{k}")));
        }
    }
    // Tombstones for the first ten keys, then more updates of the others so the
    // tombstones end up in closed (cleanable) segments.
    id += 1;
    produce(&mut conn, id, update_batch(ROUNDS, 0..10, true)).await;
    for k in 0..10 {
        model.insert(format!("key-{k}"), None);
    }
    for round in ROUNDS + 1..ROUNDS + 10 {
        id += 1;
        produce(&mut conn, id, update_batch(round, 10..KEYS, false)).await;
        for k in 10..KEYS {
            model.insert(format!("key-{k}"), Some(format!("round-{round}-key-{k}")));
        }
    }
    let produced = ROUNDS * KEYS + 10 + 9 * (KEYS - 10);

    // Poll until the cleaner has removed the superseded values and the tombstones.
    let deadline = Instant::now() + Duration::from_secs(60);
    let records = loop {
        let records = read_all(&mut conn, &mut id).await;
        let tombstoned_gone = records.iter().all(|(_, k, _)| {
            let n: usize = k.trim_start_matches("key-").parse().unwrap();
            n >= 10
        });
        if tombstoned_gone && records.len() >= KEYS - 10 && records.len() < produced / 4 {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted in time: {} records left",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Offsets strictly increase; the last value read per key is the model's.
    assert!(records.windows(2).all(|w| w[0].0 < w[1].0));
    let mut latest: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (_, k, v) in records {
        latest.insert(k, v);
    }
    let live: BTreeMap<String, Option<String>> =
        model.into_iter().filter(|(_, v)| v.is_some()).collect();
    assert_eq!(latest, live);
    assert!(running.broker.metrics.cleanings.get() >= 1);
    running.shutdown();
    running.wait().await.unwrap();
}
