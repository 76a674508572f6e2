"""`write.caching`: a topic config (off by default) under which acks=all is answered once
the batch is written, not synced; the sync follows within `flush.ms`.

Checked with confluent-kafka and kafka-python against a real broker: the settings are
described and altered like any topic config and refused when malformed; records acked
under write caching survive a kill -9 (the page cache outlives the process); the
background sync catches up (`strata_partition_flushed_offset` reaches the log end
without another write); and turning caching off at run time keeps every record. What a
power loss takes is tested in replication/tests/write_caching.rs (a process cannot
drop its own page cache).
"""

from __future__ import annotations

import re

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource)
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType

from harness import wait_until
from kclients import admin, create_topic, read_partitions, watermarks

TOPIC = "cached"
PARTITIONS = 2
COUNT = 4000


def describe(bootstrap: str, topic: str) -> dict:
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    a = admin(bootstrap)  # held until the answer: a destroyed client fails its futures
    return a.describe_configs([res])[res].result(timeout=30)


def alter(bootstrap: str, topic: str, key: str, value: str) -> None:
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
    a = admin(bootstrap)
    a.incremental_alter_configs([res])[res].result(timeout=30)


def produce(bootstrap: str, first: int, count: int) -> list[tuple[int, int, bytes]]:
    """Idempotent acks=all records v<first>..; every delivery report (partition,
    offset, value); asserts none failed."""
    acked, failed = [], []

    def report(err, msg):
        if err is not None:
            failed.append(str(err))
        else:
            acked.append((msg.partition(), msg.offset(), msg.value()))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                  "enable.idempotence": True, "linger.ms": 2})
    for i in range(first, first + count):
        p.produce(TOPIC, value=b"v%08d" % i, partition=i % PARTITIONS, on_delivery=report)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(60) == 0, "records not delivered in 60 s"
    assert not failed, failed[:5]
    assert len(acked) == count
    return acked


def gauge(metrics: str, name: str, partition: int) -> int:
    m = re.search(
        rf'^strata_{name}\{{[^}}]*partition="{partition}"[^}}]*topic="{TOPIC}"[^}}]*\}} (\d+)',
        metrics, re.M) or re.search(
        rf'^strata_{name}\{{[^}}]*topic="{TOPIC}"[^}}]*partition="{partition}"[^}}]*\}} (\d+)',
        metrics, re.M)
    assert m, f"no strata_{name} for {TOPIC}/{partition}"
    return int(m.group(1))


def test_settings_are_described_altered_and_checked(broker):
    create_topic(broker.bootstrap, TOPIC, 1, {"write.caching": "true", "flush.ms": "50"})
    d = describe(broker.bootstrap, TOPIC)
    assert d["write.caching"].value == "true"
    assert d["write.caching"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert d["flush.ms"].value == "50"
    assert d["flush.bytes"].value == "262144"
    assert d["flush.bytes"].source == ConfigSource.DEFAULT_CONFIG.value

    alter(broker.bootstrap, TOPIC, "write.caching", "false")
    assert describe(broker.bootstrap, TOPIC)["write.caching"].value == "false"
    for key, value in [("write.caching", "sometimes"), ("flush.ms", "-1"),
                       ("flush.bytes", "0")]:
        with pytest.raises(KafkaException) as e:
            alter(broker.bootstrap, TOPIC, key, value)
        assert "INVALID_CONFIG" in str(e.value) or "Invalid" in str(e.value), e.value

    # A second client family reads the same settings.
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        got = kp.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, TOPIC)],
                                  config_filter="all")
    finally:
        kp.close()
    (by_name,) = got.values()
    entries = by_name[TOPIC]
    assert entries["write.caching"]["value"] == "false"
    assert entries["flush.ms"]["value"] == "50"
    assert entries["flush.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"

def test_acked_records_survive_kill_and_the_sync_follows(broker):
    create_topic(broker.bootstrap, TOPIC, PARTITIONS,
                 {"write.caching": "true", "flush.ms": "200"})
    acked = produce(broker.bootstrap, 0, COUNT)

    # The background sync catches up with no further write.
    def synced() -> bool:
        text = broker.metrics()
        return all(gauge(text, "partition_flushed_offset", p)
                   >= gauge(text, "partition_log_end_offset", p) for p in range(PARTITIONS))
    wait_until(synced, 30, "the background sync to reach the log end")

    acked += produce(broker.bootstrap, COUNT, COUNT)
    broker.kill()
    broker.start()

    # Caching off at run time; the records written under it stay.
    alter(broker.bootstrap, TOPIC, "write.caching", "false")
    acked += produce(broker.bootstrap, 2 * COUNT, COUNT)

    marks = watermarks(broker.bootstrap, TOPIC, PARTITIONS)
    log = read_partitions(broker.bootstrap, TOPIC, {p: marks[p][1] for p in range(PARTITIONS)})
    at = {(r.partition, r.offset): r.value for recs in log.values() for r in recs}
    for p, o, v in acked:
        assert at.get((p, o)) == v, f"acked {v!r} at {p}/{o}; the log holds {at.get((p, o))!r}"
    assert len(at) == len(acked), f"{len(at)} records in the log, {len(acked)} acked"
    broker.stop()
    broker.assert_all_verified(min_dirs=PARTITIONS)
