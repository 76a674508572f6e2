"""The broker's own audit trail (`audit.log.enabled`): security-relevant actions done
through confluent-kafka, `strata quota` and the admin port become OCSF-like JSON events
in `__strata_audit_log`, each naming its principal, client address, API, resources and
outcome: SCRAM logins (and a failed one), an authorization denial, topic, config, ACL,
user and quota changes, DeleteRecords, a group offset reset and a group deletion, and an
admin-port change. The trail is itself an audit topic (its tree head is served) that
clients may read but not write."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from confluent_kafka import (Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic, ResourcePatternType,
                                   ResourceType, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

from authkit import ADMIN_PRINCIPAL as ADMIN, start_authorized
from cluster_harness import wait_for
from harness import strata_bin

TRAIL = "__strata_audit_log"


@pytest.fixture
def audited(request, tmp_path):
    """A broker recording its audit trail: an mTLS administrator (a super user) on an SSL
    listener, SCRAM users on a SASL_PLAINTEXT one."""
    b, admin_conf, sasl_port = start_authorized(request, tmp_path, f"{ADMIN};User:root",
                                                {"audit.log.enabled": "true"})
    yield b, admin_conf, sasl_port
    if b.proc is not None and b.proc.poll() is None:
        b.stop()


def _user(port: int, name: str, password: str | None = None) -> dict:
    return {
        "bootstrap.servers": f"127.0.0.1:{port}",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": name,
        "sasl.password": password or f"{name}-secret",
    }


def _events(admin_conf: dict) -> list[dict]:
    """Every event in the trail so far."""
    c = Consumer({**admin_conf, "group.id": "trail-reader", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        low, high = c.get_watermark_offsets(TopicPartition(TRAIL, 0), timeout=10)
        c.assign([TopicPartition(TRAIL, 0, low)])
        out = []
        while sum(1 for _ in out) < high - low:
            m = c.poll(5)
            if m is None:
                break
            assert m.error() is None, m.error()
            out.append(json.loads(m.value()))
        return out
    finally:
        c.close()


def _find(events: list[dict], **want) -> dict | None:
    """The first event whose (dotted) fields have these values."""
    def field(e, dotted):
        for part in dotted.split("__"):
            e = e.get(part) if isinstance(e, dict) else None
        return e
    return next((e for e in events if all(field(e, k) == v for k, v in want.items())), None)


def test_security_actions_become_events(audited, tmp_path):
    b, admin_conf, sasl_port = audited
    admin = AdminClient(admin_conf)
    users = [UserScramCredentialUpsertion(u, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                          f"{u}-secret".encode()) for u in ("alice", "root")]
    for f in admin.alter_user_scram_credentials(users).values():
        f.result(30)
    admin.create_topics([NewTopic("orders", 1, 1)])["orders"].result(60)
    cfg = ConfigResource(ResourceType.TOPIC, "orders", incremental_configs=[
        ConfigEntry("retention.ms", "86400000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([cfg])[cfg].result(30)
    acl = AclBinding(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice", "*",
                     AclOperation.DESCRIBE, AclPermissionType.ALLOW)
    admin.create_acls([acl])[acl].result(30)

    # alice logs in, and may describe but not write the topic.
    p = Producer({**_user(sasl_port, "alice"), "message.timeout.ms": 5000, "retries": 0})
    p.produce("orders", b"forbidden")
    p.flush(10)

    # An operator's changes to the data and the groups.
    ok = Producer(admin_conf)
    for i in range(5):
        ok.produce("orders", f"v{i}".encode())
    assert ok.flush(30) == 0
    admin.delete_records([TopicPartition("orders", 0, 2)])[TopicPartition("orders", 0, 2)].result(30)
    reset = ConsumerGroupTopicPartitions("billing", [TopicPartition("orders", 0, 3)])
    admin.alter_consumer_group_offsets([reset])["billing"].result(30)
    admin.delete_consumer_groups(["billing"])["billing"].result(30)

    # `strata quota alter` as root over SASL, and an admin-port change.
    props = tmp_path / "root.properties"
    props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n"
                     "sasl.username=root\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env["STRATA_SASL_PASSWORD"] = "root-secret"
    r = subprocess.run([str(strata_bin()), "quota", "alter", "--user", "alice", "--add-config",
                        "producer_byte_rate=1048576", "--brokers", f"127.0.0.1:{sasl_port}",
                        "--command-config", str(props)], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r
    r = subprocess.run([str(strata_bin()), "cluster", "rebalance-leaders", "--admin", b.admin_addr],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r
    admin.delete_acls([AclBindingFilter(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL,
                                        "User:alice", "*", AclOperation.ANY,
                                        AclPermissionType.ANY)])
    admin.delete_topics(["orders"])["orders"].result(30)
    # A wrong password, last: failed logins slow down every later one from the address.
    bad = AdminClient({**_user(sasl_port, "alice", "wrong"), "reconnect.backoff.ms": 10000})
    with pytest.raises(KafkaException):
        bad.list_topics(timeout=3)
    del bad

    expected = {
        "alice's login": dict(class_uid=3002, actor__user__name="User:alice", status="Success",
                              auth_protocol="SCRAM-SHA-256"),
        "the wrong password": dict(class_uid=3002, status="Failure", auth_protocol="SCRAM-SHA-256"),
        "the denial": dict(unmapped__event_type="authorize", actor__user__name="User:alice",
                           status="Failure"),
        "the users": dict(api__operation="AlterUserScramCredentials", actor__user__name=ADMIN),
        "the topic": dict(api__operation="CreateTopics", activity_name="Create", status="Success"),
        "the config": dict(api__operation="IncrementalAlterConfigs", activity_name="Update"),
        "the ACL": dict(api__operation="CreateAcls"),
        "DeleteRecords": dict(api__operation="DeleteRecords", activity_name="Delete"),
        "the offset reset": dict(api__operation="OffsetCommit", activity_name="Update"),
        "the group deletion": dict(api__operation="DeleteGroups"),
        "the quota": dict(api__operation="AlterClientQuotas", actor__user__name="User:root"),
        "the admin change": dict(api__operation="POST /cluster/rebalance-leaders",
                                 api__service__name="admin", status="Success"),
        "the ACL deletion": dict(api__operation="DeleteAcls"),
        "the topic deletion": dict(api__operation="DeleteTopics", activity_name="Delete"),
    }

    def all_found():
        events = _events(admin_conf)
        missing = [k for k, want in expected.items() if _find(events, **want) is None]
        counts = {o: b.metric("strata_audit_log_events_total", outcome=o)
                  for o in ("written", "dropped", "failed")}
        return (events if not missing else None), (
            f"missing {missing} from {len(events)} events {[e.get('api') for e in events]}, {counts}")

    events = wait_for(all_found, 60, "every action in the audit trail")
    topic = _find(events, api__operation="CreateTopics")
    assert topic["resources"] == [{"type": "topic", "name": "orders"}]
    assert topic["src_endpoint"]["ip"] == "127.0.0.1" and topic["dst_endpoint"]["name"] == "SSL"
    assert topic["metadata"]["product"]["name"] == "strata" and topic["category_uid"] == 6
    denial = _find(events, unmapped__event_type="authorize", actor__user__name="User:alice")
    assert "orders" in json.dumps(denial["resources"]) and denial["class_uid"] == 6003, denial
    reset = _find(events, api__operation="OffsetCommit")
    assert {"type": "group", "name": "billing"} in reset["resources"], reset

    # The trail is an audit topic, readable but not writable by clients.
    assert b.metric("strata_audit_log_events_total", outcome="written") >= len(expected)
    assert b.metric("strata_audit_log_events_total", outcome="dropped") == 0
    conn = b.admin_connection(10.0)
    try:
        conn.request("GET", f"/audit/{TRAIL}/0/head")
        head = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    assert head["tree_size"] >= 1, head
    forger = Producer({**admin_conf, "message.timeout.ms": 5000, "retries": 0})
    errors = []
    forger.produce(TRAIL, b"{}", on_delivery=lambda err, _: errors.append(err))
    forger.flush(10)
    assert errors and errors[0] is not None, errors
