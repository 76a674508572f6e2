"""Transactions with kafka-python, the second client family: its transactional
producer commits and aborts, its read_committed consumer sees only the committed
records. Then the operators' tools, through kafka-python's admin client (KIP-664,
as `kafka-transactions.sh` uses them): ListTransactions with its filters,
DescribeTransactions, DescribeProducers, and aborting a hanging transaction on one
partition with WriteTxnMarkers, which frees that partition's last stable offset. And
`strata transactions list | describe`, `strata consume --isolation` and what
`strata log dump` shows of markers and of `__transaction_state`."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.admin._transactions import AbortTransactionSpec, TransactionState
import kafka.errors as Errors

from harness import wait_until
from kclients import create_topic
from test_transactions import txn_producer
from txnkit import in_partition_order, read_to_end

PARTITIONS = 3


def kp_read_committed(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    """What kafka-python's read_committed consumer reads of `topic` from offset 0,
    once it has `expected` records (and a further poll brings no more)."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                      enable_auto_commit=False, consumer_timeout_ms=1000)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        seen: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        deadline = time.monotonic() + 30
        while sum(map(len, seen.values())) < expected:
            assert time.monotonic() < deadline, f"read {seen} of {expected}"
            for tp, records in c.poll(timeout_ms=500).items():
                seen[tp.partition] += [r.value for r in records]
        for tp, records in c.poll(timeout_ms=500).items():
            seen[tp.partition] += [r.value for r in records]
        # Every partition's position is past its records (and the markers after them).
        ends = c.end_offsets(tps)
        assert all(c.position(tp) == ends[tp] for tp in tps), (ends, [c.position(t) for t in tps])
    finally:
        c.close()
    return [v for p in sorted(seen) for v in seen[p]]


def test_kafka_python_commits_and_aborts(broker):
    topic = "kp-txn"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="kp-txn",
                      linger_ms=5)
    committed = []
    try:
        p.init_transactions()
        for n, outcome in enumerate(["commit", "abort", "commit", "abort"]):
            p.begin_transaction()
            values = [f"t{n}:{topic}:{part}:{i}".encode()
                      for part in range(PARTITIONS) for i in range(30)]
            futures = [p.send(topic, value=v, partition=int(v.split(b":")[2])) for v in values]
            p.flush()
            assert all(f.succeeded() for f in futures)
            if outcome == "commit":
                p.commit_transaction()
                committed += values
            else:
                p.abort_transaction()
    finally:
        p.close()
    want = in_partition_order(committed)
    assert kp_read_committed(broker.bootstrap, topic, len(want)) == want
    assert len(read_to_end(broker.bootstrap, (topic,), "read_uncommitted")) == 2 * len(want)
    assert read_to_end(broker.bootstrap, (topic,), "read_committed") == want


def listed(admin: KafkaAdminClient, **filters) -> dict[str, TransactionState]:
    by_broker = admin.list_transactions(**filters)
    return {t.transactional_id: t.state for ts in by_broker.values() for t in ts}


def test_operators_find_and_abort_a_hanging_transaction(broker):
    topic = "txn-tools"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    done = txn_producer(broker.bootstrap, "tools-done")
    done.begin_transaction()
    done.produce(topic, value=b"done", partition=2)
    done.commit_transaction(30)
    open_ = txn_producer(broker.bootstrap, "tools-open")
    open_.begin_transaction()
    for part in (0, 1):
        open_.produce(topic, value=f"open:{topic}:{part}:0".encode(), partition=part)
    open_.flush(30)

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    try:
        assert listed(admin) == {"tools-done": TransactionState.COMPLETE_COMMIT,
                                 "tools-open": TransactionState.ONGOING}
        assert listed(admin, state_filters=["Ongoing"]) == {"tools-open": TransactionState.ONGOING}
        # Only a running transaction has a duration.
        assert listed(admin, duration_filter_ms=0) == {"tools-open": TransactionState.ONGOING}
        assert listed(admin, duration_filter_ms=3_600_000) == {}

        desc = admin.describe_transactions(["tools-open"])["tools-open"]
        assert desc.state == TransactionState.ONGOING
        assert desc.topic_partitions == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
        assert 0 < desc.transaction_start_time_ms <= time.time() * 1000
        with pytest.raises(Errors.TransactionalIdNotFoundError):
            admin.describe_transactions(["no-such-id"])

        tp0 = TopicPartition(topic, 0)
        producers = admin.describe_producers([tp0])[tp0].active_producers
        mine = [s for s in producers if s.producer_id == desc.producer_id]
        assert len(mine) == 1 and mine[0].current_transaction_start_offset == 0, producers
        assert mine[0].producer_epoch == desc.producer_epoch and mine[0].last_sequence == 0
        assert broker.metric("strata_partition_lso_lag", topic=topic, partition="0") == 1

        # The operator aborts partition 0's share (what `kafka-transactions.sh abort`
        # does): its last stable offset moves on at once.
        spec = AbortTransactionSpec(tp0, desc.producer_id, desc.producer_epoch)
        admin.abort_transaction(spec)
        wait_until(lambda: broker.metric("strata_partition_lso_lag", topic=topic,
                                         partition="0") == 0, 10, "partition 0's LSO to move")
        after = admin.describe_producers([tp0])[tp0].active_producers
        assert [s.current_transaction_start_offset for s in after
                if s.producer_id == desc.producer_id] == [-1]
        with pytest.raises(Errors.InvalidTxnStateError):
            admin.abort_transaction(spec)
        stale = AbortTransactionSpec(TopicPartition(topic, 1), desc.producer_id,
                                     desc.producer_epoch - 1 if desc.producer_epoch else 5)
        with pytest.raises(Errors.InvalidProducerEpochError):
            admin.abort_transaction(stale)
    finally:
        admin.close()

    # The producer's commit still ends partition 1's share; partition 0's stays aborted.
    open_.commit_transaction(30)
    seen = read_to_end(broker.bootstrap, (topic,), "read_committed")
    assert seen == [f"open:{topic}:1:0".encode(), b"done"]


def strata(broker, *args: str) -> list[dict]:
    """`strata ARGS --format json` against `broker`: one dict per output line."""
    r = subprocess.run([str(broker.bin), *args, "--brokers", broker.bootstrap, "--format", "json"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"strata {args} exited {r.returncode}:\n{r.stderr}"
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def consume(broker, topic: str, isolation: str, count: int) -> list[str]:
    r = subprocess.run([str(broker.bin), "consume", topic, "--brokers", broker.bootstrap,
                        "--isolation", isolation, "--count", str(count)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"strata consume exited {r.returncode}:\n{r.stderr}"
    return r.stdout.splitlines()


def test_the_cli_lists_describes_consumes_and_dumps_transactions(broker):
    topic, hold = "cli-txn", "cli-txn-open"
    create_topic(broker.bootstrap, topic, 1)
    create_topic(broker.bootstrap, hold, 2)
    p = txn_producer(broker.bootstrap, "cli-done")
    for outcome in ("commit", "abort", "commit"):
        p.begin_transaction()
        for i in range(5):
            p.produce(topic, value=f"{outcome}-{i}".encode(), partition=0)
        p.flush(30)
        p.commit_transaction(30) if outcome == "commit" else p.abort_transaction(30)
    open_ = txn_producer(broker.bootstrap, "cli-open")
    open_.begin_transaction()
    for part in (0, 1):
        open_.produce(hold, value=b"held", partition=part)
    open_.flush(30)

    listed = {t["transactional_id"]: t for t in strata(broker, "transactions", "list")}
    assert {i: t["state"] for i, t in listed.items()} == {"cli-done": "CompleteCommit",
                                                           "cli-open": "Ongoing"}
    ongoing = strata(broker, "transactions", "list", "--state", "Ongoing", "--min-duration-ms", "0")
    assert [t["transactional_id"] for t in ongoing] == ["cli-open"]
    [desc] = strata(broker, "transactions", "describe", "cli-open")
    assert desc["state"] == "Ongoing" and desc["partitions"] == [f"{hold}-0", f"{hold}-1"]
    assert desc["producer_id"] == listed["cli-open"]["producer_id"] and desc["start_time_ms"] > 0

    # Our own consumer: read_committed skips the aborted transaction's records.
    assert consume(broker, topic, "read_committed", 10) == \
        [f"commit-{i}" for i in range(5)] * 2
    assert len(consume(broker, topic, "read_uncommitted", 15)) == 15

    # log dump names the markers, and the coordinator's records.
    markers = [b["marker"] for b in broker.dump_batches(broker.partition_dir(topic, 0))
               if b["control"]]
    assert markers == ["COMMIT", "ABORT", "COMMIT"]
    states = []
    for d in broker.data_dir.glob("__transaction_state-*"):
        r = subprocess.run([str(broker.bin), "log", "dump", str(d), "--json"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        states += [row for row in map(json.loads, r.stdout.splitlines())
                   if row.get("type") == "txn_state"]
    done = [s["state"] for s in states if s["transactional_id"] == "cli-done"]
    assert done[-1] == "CompleteCommit" and "PrepareAbort" in done, done
    open_.abort_transaction(30)
