"""A single broker's data directory, as the releases before the one replication path
wrote it and killed with SIGKILL while it served (the fixture
`tests/fixtures/single-broker.tar.gz`), starts with `strata serve` and no other flags
and is converted on the way: real clients then read every acknowledged record at its
offset, the consumer group finds its committed offsets, the cluster keeps its id, and
the logs verify clean. The topic id, the stored bytes and the producers' state are
checked in broker/tests/convert.rs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from harness import Broker, wait_until
from kclients import admin, digest, read_partitions, watermarks

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MANIFEST = json.loads((FIXTURES / "single-broker.json").read_text())
TOPIC = MANIFEST["topic"]
GROUP = MANIFEST["group"]
ENDS = {int(p): e for p, e in MANIFEST["end_offsets"].items()}
PARTITIONS = len(ENDS)


def produce(bootstrap: str, count: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5})
    failed = []
    for i in range(count):
        p.produce(TOPIC, key=f"k{i % 50}".encode(), value=f"after{i}".encode(),
                  on_delivery=lambda err, _m: err and failed.append(err))
    assert p.flush(60) == 0
    assert not failed, failed[:3]


def committed(bootstrap: str) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                  "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=20)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def digests(bootstrap: str) -> dict[str, str]:
    read = read_partitions(bootstrap, TOPIC, ENDS)
    return {str(p): digest(recs) for p, recs in read.items()}


def test_a_killed_single_brokers_directory_converts_at_start(request, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    subprocess.run(["tar", "-xzf", str(FIXTURES / "single-broker.tar.gz"), "-C", str(data)],
                   check=True)
    broker = Broker(data, tmp_path / "strata-serve.stderr")
    request.node.strata_broker = broker
    broker.start()
    assert not (data / "topics.toml").exists()
    assert (data / "topics.toml.converted").exists()
    assert "converted" in broker.stderr_text()
    assert admin(broker.bootstrap).list_topics(timeout=10).cluster_id == MANIFEST["cluster_id"]
    after = {p: hi for p, (_lo, hi) in watermarks(broker.bootstrap, TOPIC, PARTITIONS).items()}
    assert after == ENDS
    assert digests(broker.bootstrap) == MANIFEST["digests"]
    want = {int(p): o for p, o in MANIFEST["committed"].items()}
    wait_until(lambda: committed(broker.bootstrap) == want, 30,
               "the group's committed offsets after the conversion")

    # The converted broker takes writes, and keeps everything over a restart.
    produce(broker.bootstrap, 300)
    broker.restart()
    grown = watermarks(broker.bootstrap, TOPIC, PARTITIONS)
    assert sum(hi for _lo, hi in grown.values()) == sum(ENDS.values()) + 300
    assert digests(broker.bootstrap) == MANIFEST["digests"]
    broker.stop()
    broker.assert_all_verified(min_dirs=PARTITIONS)
