"""Transactions with confluent-kafka (librdkafka) on one broker: commit and abort across
three topics, what read_committed and read_uncommitted consumers see, an open
transaction holding back the last stable offset, zombie fencing, the coordinator
aborting a transaction past its timeout, SIGKILLs at each step of a transaction, and a
restarted leader loading its producer state from the segments' sidecars.
The consume-transform-produce app under SIGKILLs runs on a cluster
(test_cluster_transactions.py)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from harness import Broker, wait_until
from kclients import create_topic
from txnkit import in_partition_order, read_to_end

TOPICS = ("txn-a", "txn-b", "txn-c")
PARTITIONS = 3


def txn_producer(bootstrap: str, transactional_id: str, **extra) -> Producer:
    conf = {
        "bootstrap.servers": bootstrap,
        "transactional.id": transactional_id,
        "linger.ms": 5,
    }
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(30)
    return p


def send(p: Producer, label: str, count: int, topics=TOPICS) -> list[bytes]:
    """Produces `count` records to every partition of `topics`; their values."""
    values = []
    for t in topics:
        for part in range(PARTITIONS):
            for i in range(count):
                v = f"{label}:{t}:{part}:{i}".encode()
                p.produce(t, value=v, partition=part)
                values.append(v)
    return values


def test_commit_and_abort_across_topics(broker):
    for t in TOPICS:
        create_topic(broker.bootstrap, t, PARTITIONS)
    p = txn_producer(broker.bootstrap, "txn-commit-abort")
    committed = []
    for n, outcome in enumerate(["commit", "abort", "commit", "abort", "commit"]):
        p.begin_transaction()
        values = send(p, f"t{n}", 20)
        if outcome == "commit":
            p.commit_transaction(30)
            committed += values
        else:
            p.flush(30)  # the records are in the log before the abort
            p.abort_transaction(30)
    everything = read_to_end(broker.bootstrap, TOPICS, "read_uncommitted")
    assert len(everything) == 5 * 20 * len(TOPICS) * PARTITIONS
    assert read_to_end(broker.bootstrap, TOPICS, "read_committed") == in_partition_order(committed)
    ended = "strata_transactions_ended_total"
    assert broker.metric(ended, outcome="commit", reason="client") == 3
    assert broker.metric(ended, outcome="abort", reason="client") == 2


def test_an_open_transaction_holds_back_read_committed(broker):
    topic = "txn-open"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    p = txn_producer(broker.bootstrap, "txn-open")
    p.begin_transaction()
    values = send(p, "open", 10, topics=(topic,))
    p.flush(30)
    assert read_to_end(broker.bootstrap, (topic,), "read_committed") == []
    assert len(read_to_end(broker.bootstrap, (topic,), "read_uncommitted")) == len(values)
    assert broker.metric("strata_partition_lso_lag", topic=topic, partition="0") == 10
    assert broker.metric("strata_transactions", state="Ongoing") == 1
    p.commit_transaction(30)
    assert read_to_end(broker.bootstrap, (topic,), "read_committed") == in_partition_order(values)


def fenced(e: KafkaException) -> bool:
    err = e.args[0]
    return err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                         KafkaError.INVALID_PRODUCER_EPOCH)


def test_a_newer_producer_fences_the_older_one(broker):
    topic = "txn-zombie"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    old = txn_producer(broker.bootstrap, "txn-zombie")
    old.begin_transaction()
    send(old, "zombie", 5, topics=(topic,))
    old.flush(30)
    new = txn_producer(broker.bootstrap, "txn-zombie")  # aborts the zombie's transaction
    new.begin_transaction()
    kept = send(new, "new", 5, topics=(topic,))
    new.commit_transaction(30)
    with pytest.raises(KafkaException) as refused:
        send(old, "zombie-late", 1, topics=(topic,))
        old.commit_transaction(30)
    assert fenced(refused.value), refused.value
    assert read_to_end(broker.bootstrap, (topic,), "read_committed") == in_partition_order(kept)
    assert broker.metric("strata_transactions_ended_total", outcome="abort", reason="fenced") == 1


def test_a_transaction_past_its_timeout_is_aborted(tmp_path):
    b = Broker(tmp_path / "data", tmp_path / "strata-serve.stderr", config={
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": 200,
    })
    b.start()
    try:
        topic = "txn-timeout"
        create_topic(b.bootstrap, topic, PARTITIONS)
        abandoned = txn_producer(b.bootstrap, "txn-timeout", **{"transaction.timeout.ms": 1000})
        abandoned.begin_transaction()
        send(abandoned, "abandoned", 5, topics=(topic,))
        abandoned.flush(30)
        plain = Producer({"bootstrap.servers": b.bootstrap})
        later = [f"plain:{topic}:{part}:0".encode() for part in range(PARTITIONS)]
        for part, v in enumerate(later):
            plain.produce(topic, value=v, partition=part)
        assert plain.flush(30) == 0
        # The coordinator aborts the transaction: the last stable offset moves past it
        # and read_committed sees the later records, never the abandoned ones.
        wait_until(lambda: read_to_end(b.bootstrap, (topic,), "read_committed") == later,
                   30, "the abandoned transaction to be aborted")
        assert b.metric("strata_transactions_ended_total", outcome="abort", reason="timeout") == 1
        with pytest.raises(KafkaException) as refused:
            abandoned.commit_transaction(30)
        assert fenced(refused.value) or refused.value.args[0].txn_requires_abort(), refused.value
    finally:
        b.stop()


def test_a_decided_commit_survives_a_kill(broker):
    """SIGKILL right after EndTxn was answered (PrepareCommit durable; the markers may
    or may not be written): after the restart the coordinator finishes the commit."""
    topic = "txn-kill-commit"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    p = txn_producer(broker.bootstrap, "txn-kill-commit")
    p.begin_transaction()
    values = send(p, "decided", 10, topics=(topic,))
    p.commit_transaction(30)
    broker.kill()
    broker.start()
    wait_until(lambda: read_to_end(broker.bootstrap, (topic,), "read_committed")
               == in_partition_order(values), 30, "the committed records after the restart")


def test_an_open_transaction_is_aborted_after_a_kill(broker):
    """SIGKILL while a transaction is ongoing (its records in the log): after the
    restart a new producer instance fences the id, which aborts the old transaction."""
    topic = "txn-kill-open"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    old = txn_producer(broker.bootstrap, "txn-kill-open")
    old.begin_transaction()
    lost = send(old, "lost", 10, topics=(topic,))
    old.flush(30)
    broker.kill()
    broker.start()
    new = txn_producer(broker.bootstrap, "txn-kill-open")
    new.begin_transaction()
    kept = send(new, "kept", 10, topics=(topic,))
    new.commit_transaction(30)
    assert read_to_end(broker.bootstrap, (topic,), "read_committed") == in_partition_order(kept)
    everything = read_to_end(broker.bootstrap, (topic,), "read_uncommitted")
    assert sorted(everything) == sorted(lost + kept)


def test_a_restarted_leader_loads_its_state_from_segment_sidecars(tmp_path):
    """Each closed segment gets a transaction index and a producer snapshot; after a
    SIGKILL the new leader loads them and reads only the active segment's batches, and
    read_committed still drops every aborted transaction, those in closed segments
    included."""
    b = Broker(tmp_path / "data", tmp_path / "strata-serve.stderr", config={
        "log.retention.check.interval.ms": 100,
    })
    b.start()
    try:
        topic = "txn-sidecars"
        create_topic(b.bootstrap, topic, PARTITIONS, config={"segment.bytes": "8192"})
        p = txn_producer(b.bootstrap, "txn-sidecars")
        committed = []
        for n in range(24):
            p.begin_transaction()
            values = send(p, f"s{n}", 60, topics=(topic,))
            if n % 3 == 2:
                p.flush(30)
                p.abort_transaction(30)
            else:
                p.commit_transaction(30)
                committed += values
        dirs = [b.partition_dir(topic, part) for part in range(PARTITIONS)]

        def closed(d):
            return len(list(d.glob("*.log"))) - 1

        assert all(closed(d) >= 3 for d in dirs), [closed(d) for d in dirs]
        wait_until(lambda: all(len(list(d.glob("*.snapshot"))) == closed(d)
                               and len(list(d.glob("*.txnindex"))) == closed(d) for d in dirs),
                   30, "a snapshot and a transaction index for every closed segment")
        # Closed segments' files are cut to their data (an active one may be longer).
        in_closed = sum(f.stat().st_size for d in dirs for f in sorted(d.glob("*.log"))[:-1])
        b.kill()
        b.start()
        assert read_to_end(b.bootstrap, (topic,), "read_committed") == in_partition_order(committed)
        assert b.metric("strata_producer_state_rebuilds_total") >= PARTITIONS
        # What the rebuilds read: the active segments, and the transaction log's
        # partitions (one segment each), never the closed segments.
        read = b.metric("strata_producer_state_rebuild_read_bytes_total")
        assert read < in_closed / 2, (read, in_closed)
    finally:
        b.stop()
