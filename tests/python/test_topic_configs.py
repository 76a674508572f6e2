"""Topic configs through confluent-kafka's AdminClient: CreateTopics with Kafka's topic
configs (honoured ones change what the broker does: the codec batches are stored in,
LogAppendTime stamps, the largest batch); IncrementalAlterConfigs APPEND and SUBTRACT on
the list setting `cleanup.policy`, seen by DescribeConfigs and by the partition (a
compacted topic refuses keyless records, as Kafka does)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from kclients import admin, create_topic


def _alter(a, topic: str, op: AlterConfigOpType, value: str) -> None:
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[ConfigEntry("cleanup.policy", value, incremental_operation=op)],
    )
    a.incremental_alter_configs([resource])[resource].result(timeout=30)


def _policy(a, topic: str) -> str:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return a.describe_configs([resource])[resource].result(timeout=30)["cleanup.policy"].value


def _produce_keyless(bootstrap: str, topic: str):
    """Produces one record without a key; the delivery error, or None."""
    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "retries": 0})
    p.produce(topic, b"no key", on_delivery=lambda err, _msg: errors.append(err))
    assert p.flush(30) == 0
    return errors[0]


def test_append_and_subtract_edit_cleanup_policy(broker):
    bootstrap = broker.bootstrap
    create_topic(bootstrap, "policies", 1)
    a = admin(bootstrap)
    assert _policy(a, "policies") == "delete"
    assert _produce_keyless(bootstrap, "policies") is None

    _alter(a, "policies", AlterConfigOpType.APPEND, "compact")
    assert sorted(_policy(a, "policies").split(",")) == ["compact", "delete"]
    _alter(a, "policies", AlterConfigOpType.SUBTRACT, "delete")
    assert _policy(a, "policies") == "compact"
    err = _produce_keyless(bootstrap, "policies")
    assert err is not None and err.name() == "INVALID_RECORD", err

    # Appending what is there changes nothing; subtracting the last value leaves an
    # invalid list, refused with the key named.
    _alter(a, "policies", AlterConfigOpType.APPEND, "compact")
    assert _policy(a, "policies") == "compact"
    with pytest.raises(KafkaException) as refused:
        _alter(a, "policies", AlterConfigOpType.SUBTRACT, "compact")
    assert refused.value.args[0].name() == "INVALID_CONFIG"
    assert "cleanup.policy" in refused.value.args[0].str()
    assert _policy(a, "policies") == "compact"

    # APPEND on a setting that is not a list is refused, as in Kafka.
    resource = ConfigResource(
        ResourceType.TOPIC,
        "policies",
        incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.APPEND)
        ],
    )
    with pytest.raises(KafkaException) as not_a_list:
        a.incremental_alter_configs([resource])[resource].result(timeout=30)
    assert not_a_list.value.args[0].name() == "INVALID_CONFIG"


# Every honoured key with a value other than its default, and a few keys Strata stores
# without effect (accepted as Kafka tooling sends them).
HONOURED = {
    "cleanup.policy": "compact,delete",
    "compression.type": "zstd",
    "delete.retention.ms": "1000",
    "file.delete.delay.ms": "0",
    "index.interval.bytes": "1024",
    "max.compaction.lag.ms": "600000",
    "max.message.bytes": "4000",
    "message.timestamp.after.max.ms": "7200000",
    "message.timestamp.before.max.ms": "86400000000",
    "message.timestamp.type": "LogAppendTime",
    "min.cleanable.dirty.ratio": "0.2",
    "min.compaction.lag.ms": "100",
    "min.insync.replicas": "1",
    "retention.bytes": "10485760",
    "retention.ms": "3600000",
    "segment.bytes": "1048576",
    "segment.index.bytes": "65536",
    "segment.ms": "600000",
    "flush.ms": "1000",
    "flush.bytes": "65536",
    "write.caching": "true",
}
STORED = {
    "flush.messages": "1000",
    "preallocate": "true",
    "unclean.leader.election.enable": "true",
    "compression.zstd.level": "9",
    "segment.jitter.ms": "5",
}


def _describe(a, topic: str) -> dict:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return a.describe_configs([resource])[resource].result(timeout=30)


def _create(a, topic: str, config: dict) -> None:
    from confluent_kafka.admin import NewTopic

    futures = a.create_topics([NewTopic(topic, 1, 1, config=config)], operation_timeout=30)
    futures[topic].result(timeout=30)


def test_create_topics_with_every_kafka_topic_config(broker):
    from confluent_kafka.admin import ConfigSource

    a = admin(broker.bootstrap)
    _create(a, "configured", {**HONOURED, **STORED})
    described = _describe(a, "configured")
    for key, value in {**HONOURED, **STORED}.items():
        entry = described[key]
        assert (entry.value, entry.source) == (value, ConfigSource.DYNAMIC_TOPIC_CONFIG.value), key
    # Keys left alone read Kafka's defaults, with the broker setting that would give them.
    assert described["message.downconversion.enable"].value == "true"
    assert described["message.downconversion.enable"].source == ConfigSource.DEFAULT_CONFIG.value
    assert described["remote.storage.enable"].value == "false"
    synonyms = described["retention.ms"].synonyms
    assert synonyms["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert synonyms["log.retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert synonyms["log.retention.ms"].value == "604800000"

    # Unknown keys and bad values are INVALID_CONFIG naming the key (and the rule).
    refused = {
        "no.such.config": "1",
        "compression.type": "brotli",
        "message.timestamp.type": "WallClock",
        "max.compaction.lag.ms": "0",
        "remote.storage.enable": "true",
        "compression.gzip.level": "12",
        "leader.replication.throttled.replicas": "everything",
    }
    for key, value in refused.items():
        with pytest.raises(KafkaException) as e:
            _create(a, f"refused-{len(key)}", {key: value})
        err = e.value.args[0]
        assert err.name() == "INVALID_CONFIG" and key in err.str(), (key, err)
    with pytest.raises(KafkaException) as e:
        _create(a, "lags", {"min.compaction.lag.ms": "5000", "max.compaction.lag.ms": "1000"})
    assert "max.compaction.lag.ms" in e.value.args[0].str()


def _produce(bootstrap: str, topic: str, values: list[bytes], **extra) -> list:
    """Produces `values` (CreateTime 1000 ms past the epoch); the delivery errors."""
    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, **extra})
    for v in values:
        p.produce(topic, v, key=v[:8], timestamp=1_000,
                  on_delivery=lambda err, _msg: errors.append(err))
    assert p.flush(30) == 0
    return [e for e in errors if e is not None]


def _consume(bootstrap: str, topic: str, n: int) -> list:
    from kclients import consumer

    c = consumer(bootstrap, **{"group.id": f"read-{topic}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    try:
        while len(got) < n:
            m = c.poll(30)
            assert m is not None, f"{topic}: {len(got)} of {n} records before the poll timed out"
            assert m.error() is None, m.error()
            got.append(m)
    finally:
        c.close()
    return got


@pytest.mark.parametrize("codec", ["zstd", "producer"])
def test_compression_type_is_what_the_topic_stores(broker, codec):
    bootstrap = broker.bootstrap
    topic = f"stored-{codec}"
    a = admin(bootstrap)
    _create(a, topic, {"compression.type": codec})
    values = [(f"record-{i:04d} " * 20).encode() for i in range(500)]
    sent_with = "none" if codec == "zstd" else "lz4"
    assert _produce(bootstrap, topic, values, **{"compression.type": sent_with}) == []
    got = _consume(bootstrap, topic, len(values))
    assert [m.value() for m in got] == values
    batches = broker.dump_batches(broker.partition_dir(topic, 0))
    assert batches and sum(b["records"] for b in batches) == len(values)
    stored_as = "zstd" if codec == "zstd" else "lz4"
    assert {b["compression"] for b in batches} == {stored_as}, batches[:5]


def test_log_append_time_and_max_message_bytes(broker):
    from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME

    bootstrap = broker.bootstrap
    a = admin(bootstrap)
    _create(a, "appended", {"message.timestamp.type": "LogAppendTime", "max.message.bytes": "2000"})
    _create(a, "created", {})
    before_ms = int(time.time() * 1000)
    assert _produce(bootstrap, "appended", [b"a" * 100, b"b" * 100]) == []
    assert _produce(bootstrap, "created", [b"c" * 100]) == []
    after_ms = int(time.time() * 1000)
    for m in _consume(bootstrap, "appended", 2):
        kind, ts = m.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME and before_ms <= ts <= after_ms, (kind, ts)
    (m,) = _consume(bootstrap, "created", 1)
    assert m.timestamp() == (TIMESTAMP_CREATE_TIME, 1_000)
    errors = _produce(bootstrap, "appended", [b"x" * 5000], **{"compression.type": "none"})
    assert [e.name() for e in errors] == ["MSG_SIZE_TOO_LARGE"], errors
