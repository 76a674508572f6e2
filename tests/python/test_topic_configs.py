"""Topic configs through confluent-kafka's AdminClient: IncrementalAlterConfigs APPEND
and SUBTRACT on the list setting `cleanup.policy`, seen by DescribeConfigs and by the
partition (a compacted topic refuses keyless records, as Kafka does)."""

from __future__ import annotations

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
