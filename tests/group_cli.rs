//! Consumer groups end to end against a real `strata serve`: `strata consume --group`
//! resumes where the last run stopped, `strata group describe | reset | delete | list`
//! do what they say (dry run by default, refused while the group has members), and two
//! library `GroupConsumer`s share a topic, every record read exactly once, one taking
//! over when the other leaves. Conditions are polled with deadlines.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client::group::RebalanceListener;
use client::{
    Acks, Cluster, GroupConfig, GroupConsumer, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use common::broker::{create_topic, iso8601, now_ms, runtime, Broker, DEADLINE};

/// Settings that make rebalances quick in tests: the broker's minimum session
/// timeout, frequent heartbeats and commits, a bounded rejoin wait.
fn test_config(group: &str) -> GroupConfig {
    let mut c = GroupConfig::new(group);
    c.session_timeout = Duration::from_secs(6);
    c.heartbeat_interval = Duration::from_millis(300);
    c.rebalance_timeout = Duration::from_secs(20);
    c.auto_commit_interval = Duration::from_millis(300);
    c.auto_offset_reset = OffsetReset::Earliest;
    c
}

/// `n` lines `p{partition}-{i}` produced to one partition.
fn produce_to(broker: &Broker, topic: &str, partition: i32, from: usize, n: usize) {
    let lines: String = (from..from + n)
        .map(|i| format!("p{partition}-{i}\n"))
        .collect();
    broker.ok(
        &["produce", topic, "--partition", &partition.to_string()],
        &lines,
    );
}

/// `strata consume TOPIC --group GROUP --count N` → (partition, offset, value) lines.
fn consume(broker: &Broker, topic: &str, group: &str, count: usize) -> Vec<(i32, i64, String)> {
    let out = broker.ok(
        &[
            "consume",
            topic,
            "--group",
            group,
            "--count",
            &count.to_string(),
            "--format",
            "{partition} {offset} {value}",
        ],
        "",
    );
    let records: Vec<(i32, i64, String)> = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(3, ' ').collect();
            assert_eq!(f.len(), 3, "{l}");
            (
                f[0].parse().expect("partition"),
                f[1].parse().expect("offset"),
                f[2].to_string(),
            )
        })
        .collect();
    assert_eq!(records.len(), count, "{out}");
    records
}

/// The per-partition rows of `strata group describe`: partition → (current, end, lag).
fn describe_offsets(
    broker: &Broker,
    group: &str,
    topic: &str,
) -> BTreeMap<i32, (String, String, String)> {
    let out = broker.ok(&["group", "describe", group], "");
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 6 && f[0] == topic).then(|| {
                (
                    f[1].parse().expect("partition"),
                    (f[2].to_string(), f[3].to_string(), f[4].to_string()),
                )
            })
        })
        .collect()
}

#[test]
fn a_group_resumes_where_it_stopped_and_describe_shows_lag() {
    let broker = Broker::start();
    broker.ok(&["topic", "create", "events", "--partitions", "3"], "");
    for p in 0..3 {
        produce_to(&broker, "events", p, 0, 20);
    }
    let first = consume(&broker, "events", "readers", 25);
    let second = consume(&broker, "events", "readers", 35);
    let mut seen = BTreeSet::new();
    for (p, offset, value) in first.iter().chain(&second) {
        assert!(
            seen.insert((*p, *offset)),
            "read twice: {p}/{offset} {value}"
        );
        assert_eq!(value, &format!("p{p}-{offset}"));
    }
    assert_eq!(
        seen.len(),
        60,
        "the second run resumed where the first stopped"
    );

    let rows = describe_offsets(&broker, "readers", "events");
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (current, end, lag) in rows.values() {
        assert_eq!(
            (current.as_str(), end.as_str(), lag.as_str()),
            ("20", "20", "0")
        );
    }
    produce_to(&broker, "events", 0, 20, 6);
    let rows = describe_offsets(&broker, "readers", "events");
    assert_eq!(rows[&0], ("20".into(), "26".into(), "6".into()));
    assert_eq!(rows[&1].2, "0");
    let describe = broker.ok(&["group", "describe", "readers"], "");
    assert!(describe.contains("State: Empty"), "{describe}");
    assert!(describe.contains("No active members"), "{describe}");

    let list = broker.ok(&["group", "list"], "");
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["readers", "Empty", "consumer"]),
        "{list}"
    );
}

#[test]
fn reset_is_a_dry_run_until_execute_then_the_group_rereads() {
    let broker = Broker::start();
    broker.ok(&["topic", "create", "ledger", "--partitions", "3"], "");
    for p in 0..3 {
        produce_to(&broker, "ledger", p, 0, 20);
    }
    consume(&broker, "ledger", "audit", 60);

    // Dry run: a table of the move, nothing committed.
    let dry = broker.run(
        &[
            "group",
            "reset",
            "audit",
            "--topic",
            "ledger",
            "--to-earliest",
        ],
        "",
    );
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);
    assert!(dry.stderr.contains("Dry run"), "{}", dry.stderr);
    let rows: Vec<Vec<&str>> = dry
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["ledger", "0", "20", "0"],
            vec!["ledger", "1", "20", "0"],
            vec!["ledger", "2", "20", "0"]
        ]
    );
    assert!(describe_offsets(&broker, "audit", "ledger")
        .values()
        .all(|(c, _, _)| c == "20"));

    // Execute: the next consume reads everything again.
    let out = broker.ok(
        &[
            "group",
            "reset",
            "audit",
            "--topic",
            "ledger",
            "--to-earliest",
            "--execute",
        ],
        "",
    );
    assert!(
        out.contains("Committed new offsets for 3 partition(s)"),
        "{out}"
    );
    assert!(describe_offsets(&broker, "audit", "ledger")
        .values()
        .all(|(c, _, _)| c == "0"));
    let again: BTreeSet<(i32, i64)> = consume(&broker, "ledger", "audit", 60)
        .into_iter()
        .map(|(p, o, _)| (p, o))
        .collect();
    assert_eq!(again.len(), 60);

    // Shift back ten: exactly the last ten of each partition again.
    broker.ok(
        &[
            "group",
            "reset",
            "audit",
            "--topic",
            "ledger",
            "--shift-by",
            "-10",
            "--execute",
        ],
        "",
    );
    let shifted: BTreeSet<(i32, i64)> = consume(&broker, "ledger", "audit", 30)
        .into_iter()
        .map(|(p, o, _)| (p, o))
        .collect();
    let expected: BTreeSet<(i32, i64)> =
        (0..3).flat_map(|p| (10..20).map(move |o| (p, o))).collect();
    assert_eq!(shifted, expected);

    // Offsets are clamped to the log, and --partitions limits the move.
    let out = broker.ok(
        &[
            "group",
            "reset",
            "audit",
            "--topic",
            "ledger",
            "--partitions",
            "1",
            "--to-offset",
            "999",
            "--execute",
        ],
        "",
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["ledger", "1", "20", "20"]),
        "{out}"
    );
    let bad = broker.run(
        &[
            "group",
            "reset",
            "audit",
            "--topic",
            "ledger",
            "--partitions",
            "7",
            "--to-latest",
        ],
        "",
    );
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("no partition 7"), "{}", bad.stderr);
    let two = broker.run(
        &[
            "group",
            "reset",
            "audit",
            "--topic",
            "ledger",
            "--to-latest",
            "--to-earliest",
        ],
        "",
    );
    assert_eq!(two.code, Some(2));
}

#[test]
fn reset_to_a_time_rereads_exactly_the_records_from_then() {
    let broker = Broker::start();
    broker.ok(&["topic", "create", "timeline", "--partitions", "2"], "");
    for p in 0..2 {
        produce_to(&broker, "timeline", p, 0, 5);
    }
    // A time after every old record's timestamp, and the clock past it before the new
    // records are stamped.
    let cut = now_ms() + 1;
    while now_ms() <= cut {
        std::thread::yield_now();
    }
    for p in 0..2 {
        produce_to(&broker, "timeline", p, 5, 3);
    }
    consume(&broker, "timeline", "replay", 16);
    broker.ok(
        &[
            "group",
            "reset",
            "replay",
            "--topic",
            "timeline",
            "--to-datetime",
            &iso8601(cut),
            "--execute",
        ],
        "",
    );
    let rows = describe_offsets(&broker, "replay", "timeline");
    assert_eq!(rows[&0], ("5".into(), "8".into(), "3".into()), "{rows:?}");
    assert_eq!(rows[&1], ("5".into(), "8".into(), "3".into()), "{rows:?}");
    let reread: BTreeSet<(i32, i64)> = consume(&broker, "timeline", "replay", 6)
        .into_iter()
        .map(|(p, o, _)| (p, o))
        .collect();
    let expected: BTreeSet<(i32, i64)> = (0..2).flat_map(|p| (5..8).map(move |o| (p, o))).collect();
    assert_eq!(reread, expected);

    // A time after the last record moves to the log end; so does a tiny duration.
    broker.ok(
        &[
            "group",
            "reset",
            "replay",
            "--topic",
            "timeline",
            "--to-earliest",
            "--execute",
        ],
        "",
    );
    broker.ok(
        &[
            "group",
            "reset",
            "replay",
            "--topic",
            "timeline",
            "--to-datetime",
            "2999-01-01T00:00:00Z",
            "--execute",
        ],
        "",
    );
    assert!(describe_offsets(&broker, "replay", "timeline")
        .values()
        .all(|(c, _, l)| c == "8" && l == "0"));
    broker.ok(
        &[
            "group",
            "reset",
            "replay",
            "--topic",
            "timeline",
            "--by-duration",
            "P1D",
            "--execute",
        ],
        "",
    );
    assert!(describe_offsets(&broker, "replay", "timeline")
        .values()
        .all(|(c, _, _)| c == "0"));
}

/// Polls `consumer` until it has an assignment (it joined), within [`DEADLINE`].
async fn join(consumer: &mut GroupConsumer) {
    let deadline = Instant::now() + DEADLINE;
    while consumer.generation() < 0 {
        assert!(Instant::now() < deadline, "did not join in time");
        consumer
            .poll(Duration::from_millis(100))
            .await
            .expect("poll");
    }
}

#[test]
fn reset_and_delete_are_refused_while_the_group_has_members() {
    let broker = Broker::start();
    broker.ok(&["topic", "create", "busy", "--partitions", "2"], "");
    produce_to(&broker, "busy", 0, 0, 3);
    let runtime = runtime();
    let mut consumer = runtime.block_on(async {
        let cluster = Cluster::connect(broker.cluster_config())
            .await
            .expect("connect");
        let mut consumer = GroupConsumer::new(cluster, test_config("workers")).expect("consumer");
        consumer.subscribe(["busy"]).expect("subscribe");
        join(&mut consumer).await;
        consumer
    });
    let describe = broker.ok(&["group", "describe", "workers"], "");
    assert!(
        describe.contains("State: Stable") && describe.contains("Members: 1"),
        "{describe}"
    );
    assert!(describe.contains(consumer.member_id()), "{describe}");
    assert!(describe.contains("busy-0,busy-1"), "{describe}");

    let refused = broker.run(
        &[
            "group",
            "reset",
            "workers",
            "--topic",
            "busy",
            "--to-earliest",
            "--execute",
        ],
        "",
    );
    assert_eq!(refused.code, Some(2), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("1 active member(s)"),
        "{}",
        refused.stderr
    );
    let dry = broker.run(
        &[
            "group",
            "reset",
            "workers",
            "--topic",
            "busy",
            "--to-earliest",
        ],
        "",
    );
    assert_eq!(dry.code, Some(0));
    assert!(
        dry.stderr.contains("must have no members"),
        "{}",
        dry.stderr
    );
    let refused = broker.run(&["group", "delete", "workers"], "");
    assert_eq!(refused.code, Some(2));
    assert!(
        refused.stderr.contains("NON_EMPTY_GROUP"),
        "{}",
        refused.stderr
    );

    runtime.block_on(async {
        // Keep the session alive while the CLI ran (heartbeats are on their own task);
        // then leave.
        consumer
            .poll(Duration::from_millis(10))
            .await
            .expect("still a member");
        consumer.close().await.expect("close");
    });
    let out = broker.ok(
        &[
            "group",
            "reset",
            "workers",
            "--topic",
            "busy",
            "--to-earliest",
            "--execute",
        ],
        "",
    );
    assert!(out.contains("Committed"), "{out}");
    let out = broker.ok(&["group", "delete", "workers"], "");
    assert!(out.contains("Deleted group workers"), "{out}");
    let gone = broker.run(&["group", "describe", "workers"], "");
    assert_eq!(gone.code, Some(2));
    assert!(gone.stderr.contains("does not exist"), "{}", gone.stderr);
    let again = broker.run(&["group", "delete", "workers"], "");
    assert_eq!(again.code, Some(2));
    assert!(
        again.stderr.contains("GROUP_ID_NOT_FOUND"),
        "{}",
        again.stderr
    );
    assert!(!broker.ok(&["group", "list"], "").contains("workers"));
}

/// Records what a member was told by the rebalance callbacks.
struct Events(Arc<Mutex<Vec<String>>>);

impl RebalanceListener for Events {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .expect("events")
            .push(format!("revoked {}", partitions.len()));
    }
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .expect("events")
            .push(format!("assigned {}", partitions.len()));
    }
}

/// What the member tasks share with the test.
#[derive(Default)]
struct Shared {
    /// (partition, offset) → the members that read it.
    reads: Mutex<BTreeMap<(i32, i64), Vec<String>>>,
    /// member → its current assignment.
    assignments: Mutex<BTreeMap<String, Vec<TopicPartition>>>,
}

/// Polls until `stop`, recording reads and assignments; then closes.
async fn member(
    mut consumer: GroupConsumer,
    name: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        let records = consumer
            .poll(Duration::from_millis(100))
            .await
            .expect("poll");
        for r in records {
            shared
                .reads
                .lock()
                .expect("reads")
                .entry((r.partition, r.offset))
                .or_default()
                .push(name.clone());
        }
        shared
            .assignments
            .lock()
            .expect("assignments")
            .insert(name.clone(), consumer.assignment());
    }
    shared
        .assignments
        .lock()
        .expect("assignments")
        .remove(&name);
    consumer.close().await.expect("close");
}

async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn produce(cluster: &Arc<Cluster>, topic: &str, from: usize, n: usize) {
    let producer = Producer::new(
        cluster.clone(),
        ProducerConfig {
            acks: Acks::All,
            ..ProducerConfig::default()
        },
    )
    .await
    .expect("producer");
    for i in from..from + n {
        producer
            .enqueue(ProducerRecord::new(topic, format!("v{i}")).with_key(format!("k{i}")))
            .await
            .expect("enqueue");
    }
    producer.flush().await.expect("flush");
    producer.close().await.expect("close producer");
}

#[test]
fn two_members_split_a_topic_and_one_takes_over_when_the_other_leaves() {
    let broker = Broker::start();
    runtime().block_on(async {
        let cluster = Cluster::connect(broker.cluster_config())
            .await
            .expect("connect");
        create_topic(&cluster, "work", 4).await;
        let shared = Arc::new(Shared::default());
        let events: BTreeMap<&str, Arc<Mutex<Vec<String>>>> =
            [("a", Arc::default()), ("b", Arc::default())]
                .into_iter()
                .collect();
        let stops: BTreeMap<&str, Arc<AtomicBool>> = [("a", Arc::default()), ("b", Arc::default())]
            .into_iter()
            .collect();
        let mut tasks = BTreeMap::new();
        for name in ["a", "b"] {
            let mut consumer =
                GroupConsumer::new(cluster.clone(), test_config("crew")).expect("consumer");
            consumer.set_rebalance_listener(Box::new(Events(events[name].clone())));
            consumer.subscribe(["work"]).expect("subscribe");
            tasks.insert(
                name,
                tokio::spawn(member(
                    consumer,
                    name.to_string(),
                    shared.clone(),
                    stops[name].clone(),
                )),
            );
        }
        let split = || {
            let a = shared.assignments.lock().expect("assignments");
            let (Some(x), Some(y)) = (a.get("a"), a.get("b")) else {
                return false;
            };
            x.len() == 2 && y.len() == 2 && x.iter().all(|tp| !y.contains(tp))
        };
        wait_for("both members to hold two partitions each", split).await;

        produce(&cluster, "work", 0, 200).await;
        let read_count = || shared.reads.lock().expect("reads").len();
        wait_for("200 records read", || read_count() >= 200).await;
        {
            let reads = shared.reads.lock().expect("reads");
            let assignments = shared.assignments.lock().expect("assignments");
            for ((p, o), readers) in reads.iter() {
                assert_eq!(readers.len(), 1, "{p}/{o} read by {readers:?}");
                let owner = &assignments[&readers[0]];
                assert!(
                    owner.contains(&TopicPartition::new("work", *p)),
                    "{p}/{o} read by a non-owner"
                );
            }
            let readers: BTreeSet<&String> = reads.values().flatten().collect();
            assert_eq!(readers.len(), 2, "both members read");
        }

        // `a` leaves; `b` takes over all four partitions where `a` stopped.
        stops["a"].store(true, Ordering::SeqCst);
        tasks.remove("a").expect("task a").await.expect("member a");
        let all_to_b = || {
            let a = shared.assignments.lock().expect("assignments");
            a.len() == 1 && a.get("b").is_some_and(|x| x.len() == 4)
        };
        wait_for("b to take over every partition", all_to_b).await;
        produce(&cluster, "work", 200, 100).await;
        wait_for("300 records read", || read_count() >= 300).await;
        stops["b"].store(true, Ordering::SeqCst);
        tasks.remove("b").expect("task b").await.expect("member b");

        {
            let reads = shared.reads.lock().expect("reads");
            assert_eq!(reads.len(), 300);
            for ((p, o), readers) in reads.iter() {
                assert_eq!(readers.len(), 1, "{p}/{o} read by {readers:?}");
            }
        }
        let events_a = events["a"].lock().expect("events").clone();
        let events_b = events["b"].lock().expect("events").clone();
        assert_eq!(
            events_a.last().map(String::as_str),
            Some("revoked 2"),
            "{events_a:?}"
        );
        assert!(events_b.contains(&"assigned 2".to_string()), "{events_b:?}");
        assert!(events_b.contains(&"assigned 4".to_string()), "{events_b:?}");

        // Everything read is committed: the group's lag is zero.
        let committed = client::GroupAdmin::new(cluster.clone())
            .committed_offsets("crew", None)
            .await
            .expect("committed offsets");
        let total: i64 = committed.values().sum();
        assert_eq!(total, 300, "{committed:?}");
    });
}

#[test]
fn a_rebalance_commits_before_partitions_move() {
    let broker = Broker::start();
    runtime().block_on(async {
        let cluster = Cluster::connect(broker.cluster_config())
            .await
            .expect("connect");
        create_topic(&cluster, "moving", 2).await;
        produce(&cluster, "moving", 0, 100).await;
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        // No interval commits: only the commit before revoking can save `a`'s progress.
        let mut config = test_config("movers");
        config.auto_commit_interval = Duration::from_secs(600);
        let spawn = |name: &str| {
            let mut consumer =
                GroupConsumer::new(cluster.clone(), config.clone()).expect("consumer");
            consumer.subscribe(["moving"]).expect("subscribe");
            tokio::spawn(member(
                consumer,
                name.to_string(),
                shared.clone(),
                stop.clone(),
            ))
        };
        let a = spawn("a");
        let read_count = || shared.reads.lock().expect("reads").len();
        wait_for("a to read everything alone", || read_count() >= 100).await;
        let b = spawn("b");
        let split = || {
            let a = shared.assignments.lock().expect("assignments");
            a.len() == 2 && a.values().all(|x| x.len() == 1)
        };
        wait_for("a and b to hold one partition each", split).await;
        produce(&cluster, "moving", 100, 100).await;
        wait_for("200 records read", || read_count() >= 200).await;
        stop.store(true, Ordering::SeqCst);
        a.await.expect("member a");
        b.await.expect("member b");
        let reads = shared.reads.lock().expect("reads");
        assert_eq!(reads.len(), 200);
        for ((p, o), readers) in reads.iter() {
            assert_eq!(
                readers.len(),
                1,
                "{p}/{o} read by {readers:?}: the commit before the rebalance was lost"
            );
        }
    });
}

#[test]
fn a_static_member_gets_its_partitions_back_without_waiting_for_its_session() {
    let broker = Broker::start();
    runtime().block_on(async {
        let cluster = Cluster::connect(broker.cluster_config())
            .await
            .expect("connect");
        create_topic(&cluster, "static", 2).await;
        let mut config = test_config("statics");
        config.group_instance_id = Some("host-1".into());
        // A session longer than `join`'s deadline: a broker that made the restarted
        // instance wait for the old session fails the join, while a slow machine has
        // the whole deadline to rejoin.
        config.session_timeout = DEADLINE * 2;
        let mut first = GroupConsumer::new(cluster.clone(), config.clone()).expect("consumer");
        first.subscribe(["static"]).expect("subscribe");
        join(&mut first).await;
        let before = first.assignment();
        assert_eq!(before.len(), 2);
        // A static member does not leave on close: the group keeps its place.
        first.close().await.expect("close");
        let described = client::GroupAdmin::new(cluster.clone())
            .describe_group("statics")
            .await
            .expect("describe");
        assert_eq!(described.members.len(), 1, "{described:?}");
        assert_eq!(
            described.members[0].group_instance_id.as_deref(),
            Some("host-1")
        );

        // The restarted instance rejoins within `join`'s deadline, half its session.
        let mut second = GroupConsumer::new(cluster.clone(), config).expect("consumer");
        second.subscribe(["static"]).expect("subscribe");
        join(&mut second).await;
        assert_eq!(second.assignment(), before);
        second.close().await.expect("close");
    });
}

#[test]
fn ctrl_c_commits_what_was_printed_and_leaves_the_group() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let broker = Broker::start();
    broker.ok(&["topic", "create", "tail", "--partitions", "1"], "");
    produce_to(&broker, "tail", 0, 0, 5);
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "consume",
            "tail",
            "--group",
            "followers",
            "--format",
            "{offset}",
        ])
        .env("STRATA_BROKERS", &broker.kafka)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start strata consume");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + DEADLINE;
    let mut printed = Vec::new();
    while printed.len() < 5 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => printed.push(line.expect("read stdout")),
            Err(e) => {
                let _ = child.kill();
                panic!("only {printed:?} printed: {e}");
            }
        }
    }
    assert_eq!(printed, ["0", "1", "2", "3", "4"]);
    let describe = broker.ok(&["group", "describe", "followers"], "");
    assert!(describe.contains("Members: 1"), "{describe}");

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("send SIGINT");
    assert!(status.success());
    let out = common::broker::wait_with_deadline(child, &["consume", "--group"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Left at once (no session timeout to wait for), with everything printed committed.
    let describe = broker.ok(&["group", "describe", "followers"], "");
    assert!(describe.contains("State: Empty"), "{describe}");
    assert_eq!(
        describe_offsets(&broker, "followers", "tail")[&0],
        ("5".into(), "5".into(), "0".into())
    );
}

#[test]
fn a_newer_member_with_the_same_instance_id_fences_the_older() {
    let broker = Broker::start();
    runtime().block_on(async {
        let cluster = Cluster::connect(broker.cluster_config())
            .await
            .expect("connect");
        create_topic(&cluster, "fenced", 1).await;
        let mut config = test_config("fencing");
        config.group_instance_id = Some("host-1".into());
        let mut older = GroupConsumer::new(cluster.clone(), config.clone()).expect("consumer");
        older.subscribe(["fenced"]).expect("subscribe");
        join(&mut older).await;
        let mut newer = GroupConsumer::new(cluster.clone(), config).expect("consumer");
        newer.subscribe(["fenced"]).expect("subscribe");
        join(&mut newer).await;
        assert_eq!(newer.assignment(), vec![TopicPartition::new("fenced", 0)]);
        let deadline = Instant::now() + DEADLINE;
        let error = loop {
            assert!(
                Instant::now() < deadline,
                "the older member was never fenced"
            );
            match older.poll(Duration::from_millis(100)).await {
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert!(matches!(error, client::Error::Fenced { .. }), "{error}");
        newer.close().await.expect("close");
    });
}

#[test]
fn a_session_timeout_below_the_brokers_minimum_is_an_error() {
    let broker = Broker::start();
    runtime().block_on(async {
        let cluster = Cluster::connect(broker.cluster_config())
            .await
            .expect("connect");
        create_topic(&cluster, "short", 1).await;
        let mut config = test_config("impatient");
        config.session_timeout = Duration::from_millis(1000);
        config.heartbeat_interval = Duration::from_millis(300);
        let mut consumer = GroupConsumer::new(cluster, config).expect("consumer");
        consumer.subscribe(["short"]).expect("subscribe");
        let error = tokio::time::timeout(DEADLINE, consumer.poll(Duration::from_millis(100)))
            .await
            .expect("an answer, not a hang")
            .expect_err("the broker refuses a 1 s session");
        assert!(
            error.to_string().contains("INVALID_SESSION_TIMEOUT"),
            "{error}"
        );
    });
}
