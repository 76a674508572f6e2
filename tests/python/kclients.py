"""Small helpers over confluent-kafka used by several tests (admin, reading a partition)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Optional

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int, config: Optional[dict] = None) -> None:
    """CreateTopics through confluent-kafka's AdminClient; waits for the answer and for
    Metadata to show every partition with a leader."""
    a = admin(bootstrap)
    futures = a.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=30,
        request_timeout=30,
    )
    futures[name].result(timeout=60)
    deadline = time.monotonic() + 30
    while True:
        md = a.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
            p.leader >= 0 for p in t.partitions.values()
        ):
            return
        assert time.monotonic() < deadline, f"topic {name} not ready in metadata: {t}"
        time.sleep(0.05)


def consumer(bootstrap: str, **extra) -> Consumer:
    """A confluent-kafka consumer for assign()+seek reading: no group membership and no
    commits, so reading a partition leaves the broker's group coordinator untouched
    (test_group*.py exercise the groups)."""
    conf = {
        "bootstrap.servers": bootstrap,
        # librdkafka needs a group.id string to build a consumer; with assign() it never
        # joins the group, and with auto commit off it never commits.
        "group.id": "strata-python-tests",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": True,
    }
    conf.update(extra)
    return Consumer(conf)


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: tuple
    timestamp: int


def digest(records: list[Rec]) -> str:
    """A SHA-256 over every field of `records`, in order: two reads of a partition
    saw the same records exactly when their digests are equal."""
    h = hashlib.sha256()
    for r in records:
        h.update(repr((r.partition, r.offset, r.key, r.value, r.headers, r.timestamp)).encode())
    return h.hexdigest()


def watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    c = consumer(bootstrap)
    try:
        return {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            for p in range(partitions)
        }
    finally:
        c.close()


def read_partitions(bootstrap: str, topic: str, ends: dict[int, int], timeout: float = 120.0,
                    start: Optional[dict[int, int]] = None) -> dict[int, list[Rec]]:
    """Reads each partition `p` from `start[p]` (default 0) with assign() up to offset
    `ends[p]` (exclusive). Fails on any consumer error or when the deadline passes."""
    start = start or {}
    out: dict[int, list[Rec]] = {p: [] for p in ends}
    pending = {p for p, end in ends.items() if end > start.get(p, 0)}
    c = consumer(bootstrap)
    try:
        c.assign([TopicPartition(topic, p, start.get(p, 0)) for p in ends])
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, (
                f"reading {topic}: partitions {sorted(pending)} did not reach their end offsets "
                f"{ends} in {timeout:.0f} s (got {({p: len(v) for p, v in out.items()})})"
            )
            for m in c.consume(num_messages=10000, timeout=1.0):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(err)
                p = m.partition()
                if p not in pending:
                    # A re-delivery past the end we asked for cannot happen with a fixed
                    # end; data past it (a later produce) is ignored.
                    continue
                headers = tuple(m.headers() or ())
                out[p].append(Rec(p, m.offset(), m.key(), m.value(), headers, m.timestamp()[1]))
                if m.offset() >= ends[p] - 1:
                    pending.discard(p)
    finally:
        c.close()
    return out


def produce_keyed(bootstrap: str, topic: str, updates: list[tuple[str, Optional[bytes]]],
                  compression: str = "none", flush_timeout: float = 90.0) -> None:
    """(key, value or None for a tombstone) pairs to partition 0 of `topic`: idempotent
    acks=all in small batches (16 KiB: the cleaner never touches the active segment, so
    compaction tests want few records there); asserts every one is acknowledged."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, "batch.size": 16384, "compression.type": compression,
                  "message.timeout.ms": int(flush_timeout * 1000)})
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    for key, value in updates:
        while True:
            try:
                p.produce(topic, key=key.encode(), value=value, partition=0, on_delivery=report)
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(flush_timeout) == 0, "producer did not drain"
    assert not failures, failures[:5]
