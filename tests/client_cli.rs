//! The client crate and the `strata topic | produce | consume` commands against a real
//! `strata serve` process: topic lifecycle, a keyed produce → consume round trip (keys
//! land where the Java client's partitioner puts them), `--from` a time, and the library's
//! idempotent producer read back by the partition consumer.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Instant;

use client::admin::NewTopic;
use client::consumer::{FetchConfig, Isolation, PartitionConsumer, StartOffset};
use client::offsets::LATEST_TIMESTAMP;
use client::partitioner::partition_for_key;
use client::{
    Acks, Admin, Cluster, GroupMetadata, Producer, ProducerConfig, ProducerRecord,
    TransactionConfig, TransactionalProducer,
};
use common::broker::{create_topic, free_port, iso8601, now_ms, runtime, Broker, DEADLINE};

#[test]
fn iso8601_helper_renders_known_instants() {
    assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso8601(1_700_000_000_004), "2023-11-14T22:13:20.004Z");
    assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
}

#[test]
fn topics_are_created_listed_described_altered_and_deleted() {
    let broker = Broker::start();
    let out = broker.ok(
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=3600000",
        ],
        "",
    );
    assert!(out.contains("Created topic orders"), "{out}");
    broker.ok(&["topic", "create", "audit", "--partitions", "1"], "");

    let list = broker.ok(&["topic", "list"], "");
    let names: Vec<&str> = list.lines().collect();
    assert!(
        names.contains(&"orders") && names.contains(&"audit"),
        "{list}"
    );

    let describe = broker.ok(&["topic", "describe", "orders"], "");
    assert!(describe.contains("PartitionCount: 3"), "{describe}");
    assert!(describe.contains("retention.ms=3600000"), "{describe}");
    assert_eq!(describe.matches("\tPartition: ").count(), 3, "{describe}");
    assert!(describe.contains("Leader: 1"), "{describe}");

    // A second create fails with Kafka's error name and exit status 2.
    let again = broker.run(&["topic", "create", "orders", "--partitions", "3"], "");
    assert_eq!(again.code, Some(2));
    assert!(
        again.stderr.contains("TOPIC_ALREADY_EXISTS"),
        "{}",
        again.stderr
    );

    broker.ok(
        &[
            "topic",
            "alter",
            "orders",
            "--config",
            "retention.ms=60000",
            "--partitions",
            "5",
        ],
        "",
    );
    let describe = broker.ok(&["topic", "describe", "orders"], "");
    assert!(describe.contains("PartitionCount: 5"), "{describe}");
    assert!(describe.contains("retention.ms=60000"), "{describe}");

    let out = broker.ok(&["topic", "delete", "orders"], "");
    assert!(out.contains("Deleted topic orders"), "{out}");
    let list = broker.ok(&["topic", "list"], "");
    assert!(!list.lines().any(|l| l == "orders"), "{list}");
    assert!(list.lines().any(|l| l == "audit"), "{list}");
    let gone = broker.run(&["topic", "describe", "orders"], "");
    assert_eq!(gone.code, Some(2), "{}", gone.stdout);
}

#[test]
fn keyed_records_round_trip_and_land_where_java_would_put_them() {
    let broker = Broker::start();
    broker.ok(&["topic", "create", "keyed", "--partitions", "3"], "");
    let lines: Vec<String> = (0..60)
        .map(|i| format!("user-{}|event {i}", i % 7))
        .collect();
    let input = lines.join("\n") + "\n";
    let run = broker.run(&["produce", "keyed", "--key-separator", "|"], &input);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("60 records acknowledged"),
        "{}",
        run.stderr
    );

    let out = broker.ok(
        &[
            "consume",
            "keyed",
            "--count",
            "60",
            "--format",
            "{partition}\\t{offset}\\t{key}\\t{value}",
        ],
        "",
    );
    let mut seen = BTreeSet::new();
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 4, "{line}");
        let partition: i32 = f[0].parse().expect("partition");
        let offset: i64 = f[1].parse().expect("offset");
        assert_eq!(
            partition,
            partition_for_key(f[2].as_bytes(), 3),
            "key {} is not where murmur2 puts it",
            f[2]
        );
        // Per partition, offsets increase.
        if let Some(prev) = last_offset.insert(partition, offset) {
            assert!(offset > prev, "{line}");
        }
        assert!(
            seen.insert(format!("{}|{}", f[2], f[3])),
            "duplicate {line}"
        );
    }
    let expected: BTreeSet<String> = lines.into_iter().collect();
    assert_eq!(seen, expected);

    // JSON output for one partition, and the explicit-partition producer path.
    broker.ok(
        &["produce", "keyed", "--partition", "2", "--acks", "1"],
        "plain\n",
    );
    let json = broker.ok(
        &[
            "consume",
            "keyed",
            "--partition",
            "2",
            "--from",
            "latest",
            "--count",
            "0",
        ],
        "",
    );
    assert_eq!(json, "");
    let total_in_2 = last_offset.get(&2).map_or(0, |o| o + 1);
    let from = total_in_2.to_string();
    let json = broker.ok(
        &[
            "consume",
            "keyed",
            "--partition",
            "2",
            "--from",
            &from,
            "--count",
            "1",
            "--format",
            "json",
        ],
        "",
    );
    assert!(json.contains("\"value\":\"plain\""), "{json}");
    assert!(json.contains("\"key\":null"), "{json}");
    assert!(json.contains(&format!("\"offset\":{total_in_2}")), "{json}");
}

#[test]
fn consume_from_a_time_skips_earlier_records() {
    let broker = Broker::start();
    broker.ok(&["topic", "create", "timeline", "--partitions", "1"], "");
    broker.ok(&["produce", "timeline"], "old-1\nold-2\nold-3\n");
    // A time after every old record's timestamp, and the clock past it before the new
    // records are stamped.
    let cut = now_ms() + 1;
    while now_ms() <= cut {
        std::thread::yield_now();
    }
    broker.ok(
        &["produce", "timeline", "--compression", "lz4"],
        "new-1\nnew-2\n",
    );
    let out = broker.ok(
        &[
            "consume",
            "timeline",
            "--from",
            &iso8601(cut),
            "--count",
            "2",
            "--format",
            "{offset} {value}",
        ],
        "",
    );
    assert_eq!(out, "3 new-1\n4 new-2\n");
    let out = broker.ok(
        &[
            "consume", "timeline", "--from", "1", "--count", "2", "--format", "{value}",
        ],
        "",
    );
    assert_eq!(out, "old-2\nold-3\n");
    let bad = broker.run(&["consume", "timeline", "--from", "someday"], "");
    assert_eq!(bad.code, Some(2));
}

#[test]
fn idempotent_library_producer_writes_each_record_once() {
    let broker = Broker::start();
    runtime().block_on(async {
        let cluster = Cluster::connect(broker.cluster_config())
            .await
            .expect("connect");
        create_topic(&cluster, "ledger", 2).await;
        let producer = Producer::new(
            cluster.clone(),
            ProducerConfig {
                acks: Acks::All,
                idempotent: true,
                batch_size_bytes: 512,
                compression: client::Compression::Snappy,
                ..ProducerConfig::default()
            },
        )
        .await
        .expect("an idempotent producer");
        let mut deliveries = Vec::new();
        for i in 0..200 {
            let record = ProducerRecord::new("ledger", format!("entry-{i}"))
                .with_key(format!("account-{}", i % 11))
                .with_header("seq", i.to_string());
            deliveries.push(producer.enqueue(record).await.expect("enqueue"));
        }
        producer.flush().await.expect("flush");
        let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for (i, d) in deliveries.into_iter().enumerate() {
            let meta = d.await.expect("acknowledged");
            let key = format!("account-{}", i % 11);
            assert_eq!(meta.partition, partition_for_key(key.as_bytes(), 2));
            offsets
                .entry(meta.partition)
                .or_default()
                .push(meta.offset.expect("acks=all reports offsets"));
        }
        // Offsets per partition: 0, 1, 2, … in send order.
        for (p, o) in &offsets {
            let expected: Vec<i64> = (0..o.len() as i64).collect();
            assert_eq!(o, &expected, "partition {p}");
        }
        // `send` waits for its own acknowledgement.
        let meta = producer
            .send(ProducerRecord::new("ledger", "last").with_partition(0))
            .await
            .expect("send");
        assert_eq!(
            meta.offset,
            Some(offsets.get(&0).map_or(0, |o| o.len() as i64))
        );
        producer.close().await.expect("close");

        // Read everything back: each record exactly once, headers intact.
        let mut values = BTreeSet::new();
        for p in 0..2 {
            let mut consumer = PartitionConsumer::new(
                cluster.clone(),
                "ledger",
                p,
                StartOffset::Earliest,
                FetchConfig::default(),
            )
            .await
            .expect("consumer");
            let want = offsets.get(&p).map_or(0, Vec::len) + usize::from(p == 0);
            let mut got = 0;
            let deadline = Instant::now() + DEADLINE;
            while got < want {
                assert!(Instant::now() < deadline, "partition {p}: {got} of {want}");
                for r in consumer.poll().await.expect("poll") {
                    let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                        .into_owned();
                    if let Some(i) = value.strip_prefix("entry-") {
                        let seq = r.headers.iter().find(|h| h.key == "seq").expect("header");
                        assert_eq!(seq.value.as_deref(), Some(i.as_bytes()));
                    }
                    assert!(values.insert(value), "duplicate record at {p}/{}", r.offset);
                    got += 1;
                }
            }
            assert_eq!(consumer.position(), want as i64);
        }
        assert_eq!(values.len(), 201);
    });
}

/// Reads `topic`-`partition` from its start to its end with `isolation`: the values.
async fn read_all(
    cluster: &std::sync::Arc<Cluster>,
    topic: &str,
    partition: i32,
    isolation: Isolation,
) -> Vec<String> {
    let config = FetchConfig {
        isolation,
        max_wait: std::time::Duration::from_millis(50),
        ..FetchConfig::default()
    };
    let mut consumer = PartitionConsumer::new(
        cluster.clone(),
        topic,
        partition,
        StartOffset::Earliest,
        config,
    )
    .await
    .expect("consumer");
    let end = client::offsets::list_offset(cluster, topic, partition, LATEST_TIMESTAMP)
        .await
        .expect("end offset")
        .offset;
    let mut values = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while consumer.position() < end {
        assert!(
            Instant::now() < deadline,
            "{topic}-{partition}: stuck at {}",
            consumer.position()
        );
        for r in consumer.poll().await.expect("poll") {
            values.push(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into());
        }
    }
    values
}

#[test]
fn transactional_library_producer_commits_aborts_and_is_fenced() {
    let broker = Broker::start();
    runtime().block_on(async {
        let cluster = Cluster::connect(broker.cluster_config())
            .await
            .expect("connect");
        create_topic(&cluster, "orders", 2).await;
        let config = ProducerConfig::default();
        let mut p = TransactionalProducer::new(
            cluster.clone(),
            config.clone(),
            TransactionConfig::new("orders-app"),
        )
        .await
        .expect("a transactional producer");
        assert!(
            p.send(ProducerRecord::new("orders", "early"))
                .await
                .is_err(),
            "no transaction"
        );
        let mut committed = BTreeSet::new();
        for (n, commit) in [true, false, true].into_iter().enumerate() {
            p.begin().expect("begin");
            let mut deliveries = Vec::new();
            for i in 0..40 {
                let value = format!("t{n}-{i}");
                let record = ProducerRecord::new("orders", value.clone()).with_key(format!("k{i}"));
                deliveries.push(p.send(record).await.expect("send"));
                if commit {
                    committed.insert(value);
                }
            }
            if commit {
                p.commit().await.expect("commit");
                // Every record of a committed transaction was acknowledged.
                for d in deliveries {
                    assert!(d.await.expect("acknowledged").offset.is_some());
                }
            } else {
                p.abort().await.expect("abort");
            }
        }
        // The group's offsets commit with a transaction.
        p.begin().expect("begin");
        // Left to the commit to check.
        drop(
            p.send(ProducerRecord::new("orders", "with-offsets").with_partition(0))
                .await
                .expect("send"),
        );
        committed.insert("with-offsets".to_string());
        let group = GroupMetadata {
            group_id: "orders-readers".into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        };
        let tp = client::TopicPartition::new("orders", 1);
        let offsets = BTreeMap::from([(tp.clone(), 17)]);
        p.send_offsets(&group, &offsets)
            .await
            .expect("send offsets");
        p.commit().await.expect("commit with offsets");
        // The commit is answered once decided; the offsets show once its markers
        // are written.
        let admin = client::group::GroupAdmin::new(cluster.clone());
        let deadline = Instant::now() + DEADLINE;
        loop {
            let read = admin
                .committed_offsets("orders-readers", None)
                .await
                .expect("offsets");
            if read.get(&tp) == Some(&17) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "offsets never committed: {read:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }

        let mut seen = BTreeSet::new();
        let mut everything = 0;
        for partition in 0..2 {
            let values = read_all(&cluster, "orders", partition, Isolation::ReadCommitted).await;
            everything += read_all(&cluster, "orders", partition, Isolation::ReadUncommitted)
                .await
                .len();
            for v in values {
                assert!(seen.insert(v.clone()), "{v} read twice");
            }
        }
        assert_eq!(
            seen, committed,
            "read_committed sees exactly the committed records"
        );
        assert_eq!(
            everything, 121,
            "read_uncommitted sees the aborted ones too"
        );

        // A second producer with the id fences the first.
        let mut newer = TransactionalProducer::new(
            cluster.clone(),
            config,
            TransactionConfig::new("orders-app"),
        )
        .await
        .expect("the newer producer");
        assert!(newer.identity().producer_epoch > p.identity().producer_epoch);
        p.begin().expect("begin");
        let fenced = p
            .send(ProducerRecord::new("orders", "zombie").with_partition(1))
            .await;
        let code = fenced
            .expect_err("the older producer is fenced")
            .kafka_code();
        assert!(matches!(code, Some(47 | 90)), "{code:?}");
        assert!(p.commit().await.is_err() && p.abort().await.is_err());
        newer.begin().expect("begin");
        // Left to the commit to check.
        drop(
            newer
                .send(ProducerRecord::new("orders", "newer").with_partition(1))
                .await
                .expect("send"),
        );
        newer.commit().await.expect("commit");
        let last = read_all(&cluster, "orders", 1, Isolation::ReadCommitted).await;
        assert_eq!(last.last().map(String::as_str), Some("newer"));
        newer.close().await.expect("close");
    });
}

#[test]
fn a_resent_idempotent_batch_is_stored_once() {
    use client::batch::{encode_batch, BatchRecord, ProducerIdentity};
    use client::offsets::list_offset;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;

    let broker = Broker::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let cluster = Cluster::connect(broker.cluster_config())
            .await
            .expect("connect");
        Admin::new(cluster.clone())
            .create_topic(&NewTopic {
                name: "once".into(),
                partitions: 1,
                replication_factor: 1,
                configs: vec![],
            })
            .await
            .expect("create topic");
        let init = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(-1);
        let id = cluster.send_any(&init).await.expect("InitProducerId");
        assert_eq!(id.error_code, 0);
        let identity = ProducerIdentity {
            producer_id: id.producer_id.0,
            producer_epoch: id.producer_epoch,
            transactional: false,
        };
        let records: Vec<BatchRecord> = (0..3)
            .map(|i| BatchRecord {
                key: None,
                value: Some(format!("v{i}").into()),
                headers: vec![],
                timestamp_ms: now_ms(),
            })
            .collect();
        let batch =
            encode_batch(&records, Some(identity), 0, client::Compression::None).expect("encode");
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("once")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch))])]);
        let (node, _) = cluster.metadata().leader("once", 0).expect("leader");
        let mut answers = Vec::new();
        for _ in 0..2 {
            let response = cluster.send_node(node, &request).await.expect("produce");
            let p = &response.responses[0].partition_responses[0];
            answers.push((p.error_code, p.base_offset));
        }
        assert_eq!(answers[0], (0, 0), "first send");
        assert!(
            answers[1] == (0, 0) || answers[1].0 == 46,
            "a resend is a duplicate, not a new write: {answers:?}"
        );
        let end = list_offset(&cluster, "once", 0, LATEST_TIMESTAMP)
            .await
            .expect("list offsets");
        assert_eq!(end.offset, 3, "the batch is in the log once");
    });
}

#[test]
fn unknown_topics_fail_fast_when_not_auto_created() {
    let broker = Broker::start_with(&["--auto-create-topics", "false"]);
    for args in [
        &["produce", "nosuch"][..],
        &["consume", "nosuch", "--count", "1"],
    ] {
        let run = broker.run(args, "x\n");
        assert_eq!(run.code, Some(2), "{args:?}");
        assert!(run.stderr.contains("unknown topic"), "{}", run.stderr);
    }
}

#[test]
fn commands_fail_cleanly_without_a_broker() {
    let port = free_port();
    let dead = format!("127.0.0.1:{port}");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["topic", "list", "--brokers", &dead])
        .env_remove("RUST_LOG")
        .env_remove("STRATA_BROKERS")
        .output()
        .expect("run strata");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
}
