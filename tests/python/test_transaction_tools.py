"""Transactions with kafka-python, the second client family: its transactional
producer commits and aborts, its read_committed consumer sees only the committed
records. Then the operators' tools, through kafka-python's admin client (KIP-664,
as `kafka-transactions.sh` uses them): ListTransactions with its filters,
DescribeTransactions, DescribeProducers, and aborting a hanging transaction on one
partition with WriteTxnMarkers, which frees that partition's last stable offset."""

from __future__ import annotations

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
