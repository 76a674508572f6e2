"""`strata quota alter|describe` against a broker without an authorizer (the harness's
plain PLAINTEXT broker), with Kafka's client-quota semantics: quotas are set and removed
key by key, an entity with no quota left is no longer described, a default entity is
named `<default>` (null in JSON and on the wire), and `describe --user X` shows the
entities with that user part. kafka-python's KafkaAdminClient has no client-quota
methods, so its protocol codec (DescribeClientQuotas v0; strata negotiates v1) reads the
quotas back over a raw socket as a second opinion. Bad keys and values fail with a clear
message before any broker is contacted."""

from __future__ import annotations

import json
from typing import Optional

from kafka.protocol.admin.client_quotas import (DescribeClientQuotasRequest,
                                                DescribeClientQuotasResponse)

import kwire
from harness import free_port
from test_cli_security import failed, ok, strata

TABLE_HEADER = ["USER", "CLIENT_ID", "KEY", "VALUE"]
ALICE = {"entity": {"user": "alice"}, "quotas": {"producer_byte_rate": 1048576}}
DEFAULTS = {"entity": {"user": None, "client-id": None},
            "quotas": {"consumer_byte_rate": 2000000}}


def quota(port: int, *args: str):
    return strata(port, None, "quota", *args)


def described(port: int, *flags: str) -> list[dict]:
    """`quota describe --format json FLAGS`: one object per entity, sorted by entity."""
    out = ok(quota(port, "describe", "--format", "json", *flags))
    return [json.loads(line) for line in out.splitlines()]


def kafka_python_quotas(addr: tuple[str, int]) -> dict[frozenset, dict[str, float]]:
    """Every quota, as kafka-python's codec decodes a DescribeClientQuotas v0 response
    to an empty, non-strict filter: {frozenset of (entity type, name or None): values}."""
    request = DescribeClientQuotasRequest[0](components=[], strict=False)
    request.with_header(correlation_id=1, client_id="kafka-python-check")
    with kwire.connect(addr) as s:
        s.sendall(request.encode(header=True, framed=True))
        payload: Optional[bytes] = kwire.read_response(s)
    assert payload is not None, "the broker closed the connection"
    response = DescribeClientQuotasResponse.decode(payload, version=0, header=True)
    assert response.error_code == 0, response
    return {
        frozenset((e.entity_type, e.entity_name) for e in entry.entity):
            {v.key: v.value for v in entry.values}
        for entry in response.entries or []
    }


def test_quotas_are_set_described_and_removed(broker):
    port = broker.kafka_port
    assert ok(quota(port, "describe")).splitlines() == ["  ".join(TABLE_HEADER)]
    assert described(port) == []

    out = ok(quota(port, "alter", "--user", "alice",
                   "--add-config", "producer_byte_rate=1048576"))
    assert out == "Set producer_byte_rate=1048576 for user=alice\n"
    out = ok(quota(port, "alter", "--user-defaults", "--client-defaults",
                   "--add-config", "consumer_byte_rate=2000000"))
    assert out == ("Set consumer_byte_rate=2000000 for "
                   "user=<default>, client-id=<default>\n")
    # Sorted by entity: the default user before any named one.
    assert described(port) == [DEFAULTS, ALICE]
    rows = [line.split() for line in ok(quota(port, "describe")).splitlines()]
    assert rows == [TABLE_HEADER,
                    ["<default>", "<default>", "consumer_byte_rate", "2000000"],
                    ["alice", "producer_byte_rate", "1048576"]]  # no client-id part

    # A filter matches entities with the parts named, and more unless --strict.
    assert described(port, "--user", "alice") == [ALICE]
    assert described(port, "--user-defaults") == [DEFAULTS]
    assert described(port, "--client-defaults") == [DEFAULTS]
    assert described(port, "--user-defaults", "--strict") == []
    assert described(port, "--user-defaults", "--client-defaults", "--strict") == [DEFAULTS]
    assert described(port, "--user", "bob") == []

    assert kafka_python_quotas(broker.kafka_addr) == {
        frozenset({("user", "alice")}): {"producer_byte_rate": 1048576.0},
        frozenset({("user", None), ("client-id", None)}): {"consumer_byte_rate": 2000000.0},
    }

    # Alter changes only the keys it names.
    ok(quota(port, "alter", "--user", "alice", "--add-config", "request_percentage=50"))
    assert described(port, "--user", "alice") == [
        {"entity": {"user": "alice"},
         "quotas": {"producer_byte_rate": 1048576, "request_percentage": 50}}]
    out = ok(quota(port, "alter", "--user", "alice", "--delete-config", "producer_byte_rate"))
    assert out == "Removed producer_byte_rate from user=alice\n"
    assert described(port, "--user", "alice") == [
        {"entity": {"user": "alice"}, "quotas": {"request_percentage": 50}}]
    # With its last quota removed, the entity is gone.
    ok(quota(port, "alter", "--user", "alice", "--delete-config", "request_percentage"))
    assert described(port) == [DEFAULTS]
    broker.assert_alive()


def test_bad_keys_and_values_fail_before_contacting_a_broker():
    # Nothing listens on the port: a command that connected would fail differently.
    port = free_port()
    bad = [
        (["--user", "alice", "--add-config", "foo=1"], 'unknown quota key "foo"'),
        (["--user", "alice", "--add-config", "producer_byte_rate=-5"],
         "producer_byte_rate must be a positive number"),
        (["--user", "alice", "--add-config", "producer_byte_rate=abc"],
         'producer_byte_rate must be a number, got "abc"'),
        (["--user", "alice", "--add-config", "consumer_byte_rate=1.5"],
         "consumer_byte_rate must be a whole number of bytes per second"),
        (["--user", "alice", "--delete-config", "bar"], 'unknown quota key "bar"'),
        (["--user", "alice", "--add-config", "request_percentage=5",
          "--delete-config", "request_percentage"],
         "request_percentage is both in --add-config and in --delete-config"),
        (["--add-config", "producer_byte_rate=1"], "--user"),
        (["--user", "alice"], "--add-config"),
    ]
    for args, needle in bad:
        stderr = failed(quota(port, "alter", *args), needle)
        assert "connecting" not in stderr, stderr
