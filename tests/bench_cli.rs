//! `strata bench produce | consume | e2e` against a real `strata serve`: the JSON report
//! and its figures, that what the report counts is what the topic holds, pacing by
//! `--rate`, `--cleanup`, and one-line errors for bad flags and unreachable brokers.

mod common;

use std::time::Instant;

use common::broker::Broker;
use serde_json::Value;

/// Runs `strata ARGS` against `broker`, asserts success, and parses stdout as exactly
/// one JSON object on one line.
fn bench_json(broker: &Broker, args: &[&str]) -> Value {
    let run = broker.run(args, "");
    assert_eq!(run.code, Some(0), "{args:?} failed: {}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "--json prints one line: {:?}", run.stdout);
    let value: Value = serde_json::from_str(lines[0]).expect("stdout is JSON");
    assert!(value.is_object(), "{value}");
    value
}

fn number(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// The latency percentiles of `v[key]`, checked for presence and order.
fn latencies(v: &Value, key: &str) -> [f64; 5] {
    let l = &v[key];
    let p = ["p50", "p90", "p99", "p999", "max"].map(|k| {
        l[k].as_f64()
            .unwrap_or_else(|| panic!("{key}.{k} is not a number in {v}"))
    });
    assert!(
        p.windows(2).all(|w| w[0] <= w[1]),
        "{key} percentiles out of order: {p:?}"
    );
    assert!(p[0] >= 0.0, "{p:?}");
    p
}

/// Sum of the partitions' LatestOffset in `strata topic describe`.
fn records_in(broker: &Broker, topic: &str) -> u64 {
    let describe = broker.ok(&["topic", "describe", topic], "");
    describe
        .split("LatestOffset: ")
        .skip(1)
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("unreadable describe output: {describe}"))
        })
        .sum()
}

#[test]
fn produce_reports_json_and_writes_every_record_then_consume_reads_them() {
    let broker = Broker::start();
    let report = bench_json(
        &broker,
        &[
            "bench",
            "produce",
            "--messages",
            "20000",
            "--partitions",
            "3",
            "--producers",
            "2",
            "--json",
        ],
    );
    assert_eq!(report["mode"], "produce");
    assert_eq!(report["messages"], 20000);
    assert_eq!(report["failed"], 0);
    assert_eq!(report["partitions"], 3);
    assert_eq!(report["size_bytes"], 100);
    assert_eq!(report["acks"], "all");
    assert!(number(&report, "messages_per_sec") > 0.0, "{report}");
    assert!(number(&report, "mb_per_sec") > 0.0, "{report}");
    latencies(&report, "latency_ms");
    assert_eq!(records_in(&broker, "strata-bench"), 20000);

    // Without --messages, consume reads what the topic holds.
    let read = bench_json(&broker, &["bench", "consume", "--json"]);
    assert_eq!(read["mode"], "consume");
    assert_eq!(read["messages"], 20000, "{read}");
    assert_eq!(
        read["consumers"], 3,
        "one consumer per partition by default"
    );
    assert!(number(&read, "messages_per_sec") > 0.0, "{read}");
    assert!(number(&read, "mb_per_sec") > 0.0, "{read}");
    assert!(
        read["latency_ms"].is_null(),
        "consume measures throughput only"
    );

    // With --messages, exactly that many are counted, by fewer consumers.
    let read = bench_json(
        &broker,
        &[
            "bench",
            "consume",
            "--messages",
            "5000",
            "--consumers",
            "2",
            "--json",
        ],
    );
    assert_eq!(read["messages"], 5000, "{read}");
    assert_eq!(read["consumers"], 2);
}

#[test]
fn e2e_reports_ordered_latencies_for_what_it_produced() {
    let broker = Broker::start();
    let report = bench_json(
        &broker,
        &[
            "bench",
            "e2e",
            "--messages",
            "5000",
            "--partitions",
            "2",
            "--acks",
            "1",
            "--json",
        ],
    );
    assert_eq!(report["mode"], "e2e");
    assert_eq!(report["messages"], 5000, "{report}");
    assert_eq!(report["latency_kind"], "end_to_end");
    let [p50, _, p99, _, max] = latencies(&report, "latency_ms");
    assert!(p50 <= p99 && p99 <= max, "{report}");
    latencies(&report, "produce_latency_ms");
    assert!(number(&report, "messages_per_sec") > 0.0, "{report}");
    assert_eq!(records_in(&broker, "strata-bench"), 5000);
}

#[test]
fn rate_paces_the_producers() {
    let broker = Broker::start();
    let started = Instant::now();
    let report = bench_json(
        &broker,
        &[
            "bench",
            "produce",
            "--rate",
            "2000",
            "--messages",
            "2000",
            "--acks",
            "1",
            "--json",
        ],
    );
    // 2000 records at 2000/s take about a second; only a lower bound is safe.
    assert!(started.elapsed().as_secs_f64() >= 0.5, "{report}");
    assert!(number(&report, "elapsed_s") >= 0.5, "{report}");
    assert_eq!(report["rate_msgs_per_sec"], 2000);
    assert_eq!(report["messages"], 2000);

    // --duration bounds the run by the clock; at a rate, records follow the schedule.
    let report = bench_json(
        &broker,
        &[
            "bench",
            "produce",
            "--duration",
            "1s",
            "--rate",
            "1000",
            "--acks",
            "1",
            "--json",
        ],
    );
    let messages = number(&report, "messages");
    assert!(messages > 0.0 && messages <= 1000.0, "{report}");
    assert!(report["messages_requested"].is_null(), "{report}");
    assert_eq!(report["duration_s"], 1.0);
}

#[test]
fn cleanup_deletes_the_topic_and_the_table_is_printed_without_json() {
    let broker = Broker::start();
    let out = broker.ok(
        &[
            "bench",
            "produce",
            "--topic",
            "scratch",
            "--messages",
            "500",
            "--acks",
            "0",
            "--cleanup",
        ],
        "",
    );
    assert!(
        out.contains("MSGS/S") && out.contains("send_to_ack"),
        "{out}"
    );
    let topics = broker.ok(&["topic", "list"], "");
    assert!(!topics.lines().any(|t| t == "scratch"), "{topics}");
}

#[test]
fn bad_flags_and_unreachable_brokers_fail_with_one_line() {
    let broker = Broker::start();
    let refused = [
        vec!["bench", "produce", "--messages", "10", "--duration", "1s"],
        vec!["bench", "produce", "--consumers", "2"],
        vec!["bench", "consume", "--rate", "100"],
        vec!["bench", "produce", "--producers", "0"],
        vec!["bench", "produce", "--size", "10000000"],
        vec!["bench", "produce", "--acks", "2"],
        vec!["bench", "produce", "--duration", "soon"],
        vec!["bench", "consume", "--topic", "absent"],
    ];
    for args in &refused {
        let run = broker.run(args, "");
        assert_ne!(run.code, Some(0), "{args:?} should fail");
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        assert!(!run.stderr.trim().is_empty(), "{args:?}: no message");
    }
    let e2e = broker.run(
        &["bench", "e2e", "--partitions", "1", "--consumers", "2"],
        "",
    );
    assert_eq!(e2e.code, Some(2));
    assert!(e2e.stderr.contains("exceeds"), "{}", e2e.stderr);

    let port = common::broker::free_port().to_string();
    let unreachable = broker.run(
        &[
            "bench",
            "produce",
            "--brokers",
            &format!("127.0.0.1:{port}"),
            "--messages",
            "10",
        ],
        "",
    );
    assert_eq!(unreachable.code, Some(2));
    assert_eq!(
        unreachable.stderr.trim().lines().count(),
        1,
        "{}",
        unreachable.stderr
    );
    assert!(
        unreachable.stderr.contains("connecting to"),
        "{}",
        unreachable.stderr
    );
}

#[test]
fn transactional_produce_commits_what_read_committed_consumers_read() {
    let broker = Broker::start();
    let base = [
        "--topic",
        "txn-bench",
        "--partitions",
        "3",
        "--messages",
        "3000",
        "--json",
    ];
    let produce = ["bench", "produce", "--transaction-ms", "20"];
    let args: Vec<&str> = produce.iter().chain(&base).copied().collect();
    let report = bench_json(&broker, &args);
    assert_eq!(report["messages"], 3000, "{report}");
    assert_eq!(report["transaction_ms"], 20);
    // Every record committed: a read_committed consumer reads all of them.
    let consume = ["bench", "consume", "--isolation", "read_committed"];
    let args: Vec<&str> = consume.iter().chain(&base).copied().collect();
    let report = bench_json(&broker, &args);
    assert_eq!(report["messages"], 3000, "{report}");
    assert_eq!(report["isolation"], "read_committed");
}
