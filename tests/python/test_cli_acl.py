"""`strata acl add|list|remove` against a broker with Kafka's ACL authorizer
(`authorizer.class.name`, `super.users`) and SCRAM users on a SASL_PLAINTEXT listener.

The super user `admin` is made the documented way: while the broker runs without
authorization (where the ACL APIs answer SECURITY_DISABLED), then the broker restarts with
the authorizer and `super.users = User:admin`. Then `admin` creates `alice`, who may do
nothing until ACLs allow it: produce once WRITE and DESCRIBE on the topic are added,
consume a topic under a PREFIXED ACL with a group she may READ, and produce no more once
WRITE is removed. `alice` may not change or list ACLs (CLUSTER_AUTHORIZATION_FAILED). Bad
flags fail with a clear message before any broker is contacted."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from harness import free_port, strata_bin
from test_cli_security import failed, ok, properties, start  # noqa: F401 (start: a fixture)

#: A debug-build command against a local broker finishes well within this.
COMMAND_DEADLINE_S = 60
#: `strata produce` has no flag for the producer's delivery timeout (120 s, Kafka's
#: default); a topic whose metadata the broker refuses fails only after it.
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
TABLE_HEADER = ["RESOURCE_TYPE", "RESOURCE_NAME", "PATTERN_TYPE", "PRINCIPAL", "HOST",
                "OPERATION", "PERMISSION"]


def strata(port: int, config, *args: str, stdin: str = "",
           deadline_s: float = COMMAND_DEADLINE_S) -> subprocess.CompletedProcess:
    """`strata ARGS --brokers 127.0.0.1:PORT [--command-config CONFIG]`, without the
    caller's STRATA_* settings."""
    cmd = [str(strata_bin()), *args, "--brokers", f"127.0.0.1:{port}"]
    if config is not None:
        cmd += ["--command-config", str(config)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_") or k == "STRATA_BIN"}
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True,
                          timeout=deadline_s, env=env)


def binding(resource_type: str, name: str, operation: str, pattern: str = "LITERAL") -> dict:
    """An ALLOW of User:alice from any host, as `acl list --format json` prints it."""
    return {"resource_type": resource_type, "resource_name": name, "pattern_type": pattern,
            "principal": "User:alice", "host": "*", "operation": operation,
            "permission": "ALLOW"}


def listed(port: int, config, *flags: str) -> list[dict]:
    out = ok(strata(port, config, "acl", "list", "--format", "json", *flags))
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def secured(start, tmp_path):  # noqa: F811 (the imported fixture)
    """A broker with the authorizer, `admin` its super user and `alice` a SCRAM user
    without ACLs, on a SASL_PLAINTEXT listener; `admin` created topics `t` and `logs-1`
    (3 records). Yields (port, admin's config, alice's config)."""
    b = start("PLAINTEXT://127.0.0.1:{port}", {})
    ok(strata(b.kafka_port, None, "user", "create", "admin", "--mechanism", "SCRAM-SHA-256",
              "--password-stdin", stdin="admin-secret\n"))
    b.stop()
    # The same port, now SASL only: nothing can reach the broker unauthenticated.
    port = b.kafka_port
    b = start("SASL_PLAINTEXT://127.0.0.1:{port}", {
        "sasl.enabled.mechanisms": "SCRAM-SHA-256",
        "authorizer.class.name": AUTHORIZER,
        "super.users": "User:admin",
    }, kafka_port=port)
    admin, alice = (properties(tmp_path, f"{user}.properties", {
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": user, "sasl.password": f"{user}-secret"}) for user in ("admin", "alice"))
    ok(strata(port, admin, "user", "create", "alice", "--mechanism", "SCRAM-SHA-256",
              "--password-stdin", stdin="alice-secret\n"))
    for topic in ("t", "logs-1"):
        ok(strata(port, admin, "topic", "create", topic, "--partitions", "1"))
    ok(strata(port, admin, "produce", "logs-1", stdin="l1\nl2\nl3\n"))
    yield port, admin, alice
    b.assert_alive()


def test_acls_need_an_authorizer(start):  # noqa: F811 (the imported fixture)
    b = start("PLAINTEXT://127.0.0.1:{port}", {})
    failed(strata(b.kafka_port, None, "acl", "list"), "SECURITY_DISABLED")
    failed(strata(b.kafka_port, None, "acl", "add", "--allow-principal", "User:alice",
                  "--operation", "read", "--topic", "t"), "SECURITY_DISABLED")
    b.assert_alive()


def test_acls_grant_and_revoke_what_alice_may_do(secured):
    port, admin, alice = secured
    assert ok(strata(port, admin, "acl", "list")).splitlines() == ["  ".join(TABLE_HEADER)]
    assert listed(port, admin) == []

    out = ok(strata(port, admin, "acl", "add", "--allow-principal", "User:alice",
                    "--operation", "Write", "--operation", "Describe", "--topic", "t"))
    assert out == ('Added ALLOW User:alice WRITE on TOPIC "t" (LITERAL) from host *\n'
                   'Added ALLOW User:alice DESCRIBE on TOPIC "t" (LITERAL) from host *\n')
    # acks=all: idempotent, allowed by WRITE on a topic (KIP-679), no IDEMPOTENT_WRITE.
    ok(strata(port, alice, "produce", "t", stdin="a1\na2\n"))
    out = ok(strata(port, admin, "consume", "t", "--from", "earliest", "--count", "2"))
    assert out.split() == ["a1", "a2"]
    assert listed(port, admin) == [binding("TOPIC", "t", "WRITE"),
                                   binding("TOPIC", "t", "DESCRIBE")]
    table = ok(strata(port, admin, "acl", "list", "--topic", "t",
                      "--principal", "User:alice")).splitlines()
    assert [row.split() for row in table] == [
        TABLE_HEADER,
        ["TOPIC", "t", "LITERAL", "User:alice", "*", "WRITE", "ALLOW"],
        ["TOPIC", "t", "LITERAL", "User:alice", "*", "DESCRIBE", "ALLOW"],
    ]

    # A PREFIXED ACL on topics and a group to READ: enough to consume as a group member.
    ok(strata(port, admin, "acl", "add", "--allow-principal", "User:alice", "--topic", "logs-",
              "--resource-pattern-type", "prefixed", "--operation", "Read"))
    ok(strata(port, admin, "acl", "add", "--allow-principal", "User:alice", "--group", "g",
              "--operation", "read"))
    out = ok(strata(port, alice, "consume", "logs-1", "--group", "g", "--from", "earliest",
                    "--count", "3"))
    assert out.split() == ["l1", "l2", "l3"]
    prefixed = binding("TOPIC", "logs-", "READ", pattern="PREFIXED")
    assert listed(port, admin, "--topic", "logs-1", "--resource-pattern-type", "match") == [prefixed]
    assert listed(port, admin, "--topic", "logs-1") == []

    out = ok(strata(port, admin, "acl", "remove", "--allow-principal", "User:alice",
                    "--topic", "t", "--operation", "Write"))
    assert out == 'Removed ALLOW User:alice WRITE on TOPIC "t" (LITERAL) from host *\n'
    # acks=1: no producer id to ask for, so the Produce request itself is refused.
    failed(strata(port, alice, "produce", "t", "--acks", "1", stdin="a3\n"),
           "TOPIC_AUTHORIZATION_FAILED")
    # Sorted by resource type (TOPIC before GROUP), then name.
    assert listed(port, admin) == [prefixed, binding("TOPIC", "t", "DESCRIBE"),
                                   binding("GROUP", "g", "READ")]
    out = ok(strata(port, admin, "acl", "remove", "--topic", "no-such-topic"))
    assert out == "No ACL matched; nothing was removed.\n"

    # Only a principal with ALTER (DESCRIBE to list) on the cluster manages ACLs.
    failed(strata(port, alice, "acl", "add", "--allow-principal", "User:alice",
                  "--operation", "All", "--topic", "t"), "CLUSTER_AUTHORIZATION_FAILED")
    failed(strata(port, alice, "acl", "remove", "--topic", "t"), "CLUSTER_AUTHORIZATION_FAILED")
    failed(strata(port, alice, "acl", "list"), "CLUSTER_AUTHORIZATION_FAILED")
    assert len(listed(port, admin)) == 3


def test_without_acls_alice_cannot_produce(secured):
    port, _, alice = secured
    # The topic's metadata is refused: the command fails at once, not at the delivery
    # timeout.
    failed(strata(port, alice, "produce", "t", stdin="x\n"), "TOPIC_AUTHORIZATION_FAILED")


def test_bad_flags_fail_before_contacting_a_broker():
    # Nothing listens on the port: a command that connected would fail differently.
    port = free_port()
    bad = [
        (["add", "--allow-principal", "alice", "--operation", "Read", "--topic", "t"],
         '"alice" is not a principal: expected User:<name>'),
        (["add", "--allow-principal", "User:alice", "--operation", "Fly", "--topic", "t"],
         'unknown operation "Fly"'),
        (["add", "--allow-principal", "User:alice", "--operation", "Read", "--cluster"],
         "CLUSTER has no operation READ"),
        (["add", "--allow-principal", "User:alice", "--topic", "t"], "give --operation"),
        (["add", "--allow-principal", "User:alice", "--consumer", "--topic", "t"],
         "--consumer needs --topic and --group"),
        (["list", "--principal", "bob"], '"bob" is not a principal'),
        (["remove", "--deny-principal", "User:bob"], "name a resource"),
    ]
    for args, needle in bad:
        stderr = failed(strata(port, None, "acl", *args), needle)
        assert "connecting" not in stderr, stderr
