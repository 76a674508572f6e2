"""A single broker's data directory, killed with SIGKILL while it served, starts again
as a one-node cluster (`--peers` naming only itself) and is converted on the way: real
clients then read every acknowledged record at its offset, a consumer group finds its
committed offsets, the cluster keeps its id, and the logs verify clean (the topic id
and the producers' state are checked in broker/tests/convert.rs)."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition

from harness import free_port, wait_until
from kclients import admin, create_topic, read_partitions, watermarks

TOPIC = "convert"
PARTITIONS = 3
RECORDS = 3000
GROUP = "convert-group"


def produce(bootstrap: str, first: int, count: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, "batch.size": 8192})
    failed = []
    for i in range(first, first + count):
        p.produce(TOPIC, key=f"k{i % 50}".encode(), value=f"v{i}".encode(),
                  on_delivery=lambda err, _m: err and failed.append(err))
    assert p.flush(60) == 0
    assert not failed, failed[:3]


def cluster_id(bootstrap: str) -> str:
    return admin(bootstrap).list_topics(timeout=10).cluster_id


def commit_half(bootstrap: str, ends: dict[int, int]) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                  "enable.auto.commit": False})
    try:
        half = {p: end // 2 for p, end in ends.items()}
        c.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in half.items()],
                 asynchronous=False)
        return half
    finally:
        c.close()


def committed(bootstrap: str) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                  "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=20)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def test_a_killed_single_broker_converts_to_a_one_node_cluster(broker):
    create_topic(broker.bootstrap, TOPIC, PARTITIONS, {"segment.bytes": "32768"})
    produce(broker.bootstrap, 0, RECORDS)
    ends = {p: hi for p, (_lo, hi) in watermarks(broker.bootstrap, TOPIC, PARTITIONS).items()}
    before = read_partitions(broker.bootstrap, TOPIC, ends)
    half = commit_half(broker.bootstrap, ends)
    before_id = cluster_id(broker.bootstrap)
    broker.kill()

    raft = f"127.0.0.1:{free_port()}"
    broker.extra_args += ("--node-id", "1", "--raft-addr", raft, "--peers", f"1={raft}")
    broker.start()
    assert not (broker.data_dir / "topics.toml").exists()
    assert (broker.data_dir / "topics.toml.converted").exists()
    assert "converted" in broker.stderr_text()
    assert cluster_id(broker.bootstrap) == before_id
    after = {p: hi for p, (_lo, hi) in watermarks(broker.bootstrap, TOPIC, PARTITIONS).items()}
    assert after == ends
    assert read_partitions(broker.bootstrap, TOPIC, ends) == before
    wait_until(lambda: committed(broker.bootstrap) == half, 30,
               "the group's committed offsets after the conversion")

    # The one-node cluster takes writes, and keeps everything over a restart.
    produce(broker.bootstrap, RECORDS, 300)
    broker.restart()
    grown = watermarks(broker.bootstrap, TOPIC, PARTITIONS)
    assert sum(hi for _lo, hi in grown.values()) == sum(ends.values()) + 300
    again = read_partitions(broker.bootstrap, TOPIC, ends)
    assert again == before
    broker.stop()
    broker.assert_all_verified(min_dirs=PARTITIONS)
