"""Kafka's ACL authorization with confluent-kafka: a broker with
`authorizer.class.name`, an mTLS administrator in `super.users` and SCRAM users on a
SASL_PLAINTEXT listener. ACLs are made, listed and removed with the admin API
(CreateAcls, DescribeAcls, DeleteAcls) and outlive a restart. Without an ACL each API
family is refused with its Kafka error (TOPIC_, GROUP_ and CLUSTER_AUTHORIZATION_FAILED);
LITERAL and PREFIXED ALLOWs open exactly what they name, a DENY wins over them, WRITE on
a topic lets an idempotent producer start (KIP-679), and Metadata hides the topics a
principal may not describe. Denials are counted in /metrics."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, ConfigResource, NewTopic,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo,
                                   ScramMechanism, UserScramCredentialUpsertion)

from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                         KafkaAdminClient, ResourcePatternFilter)
from kafka.admin import ResourceType as KResourceType
from kafka.errors import ClusterAuthorizationFailedError

from authkit import ADMIN_PRINCIPAL, start_authorized
from harness import wait_until

TOPICS = ["orders", "logs-1", "secret"]


@pytest.fixture
def authorized(request, tmp_path):
    """The broker, the administrator's client config (mTLS, a super user) and a config
    maker for SCRAM users on the SASL_PLAINTEXT listener."""
    b, admin_conf, sasl_port = start_authorized(request, tmp_path)
    admin = AdminClient(admin_conf)
    users = [UserScramCredentialUpsertion(u, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                          f"{u}-secret".encode()) for u in ("alice", "bob")]
    for f in admin.alter_user_scram_credentials(users).values():
        f.result(30)
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in TOPICS]).values():
        f.result(60)

    def user(name: str) -> dict:
        return {
            "bootstrap.servers": f"127.0.0.1:{sasl_port}",
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.username": name,
            "sasl.password": f"{name}-secret",
        }

    yield b, admin_conf, user
    if b.proc is not None and b.proc.poll() is None:
        b.stop()


def allow(resource: ResourceType, name: str, op: AclOperation,
          pattern=ResourcePatternType.LITERAL, principal="User:alice",
          permission=AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(resource, name, pattern, principal, "*", op, permission)


def create(admin: AdminClient, *bindings: AclBinding) -> None:
    for f in admin.create_acls(list(bindings)).values():
        f.result(30)


def everything() -> AclBindingFilter:
    return AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                            AclOperation.ANY, AclPermissionType.ANY)


def produce_error(conf: dict, topic: str, idempotent: bool = False):
    """The delivery error of one record (None when it was written)."""
    outcome = []
    p = Producer({**conf, "acks": "all", "enable.idempotence": idempotent,
                  "message.timeout.ms": 20000})
    p.produce(topic, b"v", on_delivery=lambda err, _m: outcome.append(err))
    p.flush(30)
    assert outcome, "no delivery report"
    return outcome[0]


def consume_error(conf: dict, topic: str, group: str) -> tuple[list[bytes], KafkaError | None]:
    """Reads `topic` as `group` until a record or an error arrives."""
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got, error, deadline = [], None, time.monotonic() + 30
    try:
        while not got and error is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                error = m.error()
            else:
                got.append(m.value())
    finally:
        c.close()
    return got, error


def kafka_python_admin(conf: dict) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=conf["bootstrap.servers"],
                            security_protocol=conf["security.protocol"],
                            sasl_mechanism=conf["sasl.mechanism"],
                            sasl_plain_username=conf["sasl.username"],
                            sasl_plain_password=conf["sasl.password"])


def visible_topics(conf: dict) -> set[str]:
    return set(AdminClient(conf).list_topics(timeout=30).topics)


def code_of(future) -> int:
    with pytest.raises(KafkaException) as raised:
        future.result(30)
    return raised.value.args[0].code()


def test_each_api_family_is_refused_without_an_acl(authorized):
    b, admin_conf, user = authorized
    bob = user("bob")
    assert visible_topics(bob) == set(), "Metadata must hide undescribable topics"
    assert produce_error(bob, "orders").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    _, err = consume_error(bob, "orders", "bobs")
    assert err is not None and err.code() in (KafkaError.GROUP_AUTHORIZATION_FAILED,
                                              KafkaError.TOPIC_AUTHORIZATION_FAILED), err
    a = AdminClient(bob)
    assert code_of(a.create_topics([NewTopic("bobs-topic", 1, 1)])["bobs-topic"]) == \
        KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert code_of(a.delete_topics(["orders"])["orders"]) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    res = ConfigResource(ConfigResource.Type.TOPIC, "orders")
    assert code_of(a.describe_configs([res])[res]) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    wanted = allow(ResourceType.TOPIC, "orders", AclOperation.ALL, principal="User:bob")
    assert code_of(a.create_acls([wanted])[wanted]) == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # librdkafka drops DescribeAcls' top-level error; kafka-python raises it.
    k = kafka_python_admin(bob)
    try:
        with pytest.raises(ClusterAuthorizationFailedError):
            k.describe_acls(ACLFilter(
                principal=None, host=None, operation=ACLOperation.ANY,
                permission_type=ACLPermissionType.ANY,
                resource_pattern=ResourcePatternFilter(KResourceType.ANY, None,
                                                       ACLResourcePatternType.ANY)))
    finally:
        k.close()
    assert a.list_consumer_groups().result(30).valid == []
    assert b.metric("strata_authorization_denials_total",
                  resource_type="TOPIC", operation="DESCRIBE") >= 1
    # The administrator is a super user: it sees everything.
    assert visible_topics(admin_conf) >= set(TOPICS)


def test_literal_prefixed_deny_and_kip_679(authorized):
    b, admin_conf, user = authorized
    admin = AdminClient(admin_conf)
    alice = user("alice")
    assert produce_error(alice, "orders").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    create(admin,
           allow(ResourceType.TOPIC, "orders", AclOperation.WRITE),
           allow(ResourceType.TOPIC, "logs-", AclOperation.READ, ResourcePatternType.PREFIXED),
           allow(ResourceType.GROUP, "readers", AclOperation.READ))
    listed = admin.describe_acls(everything()).result(30)
    assert sorted((a.restype, a.name, a.resource_pattern_type, a.operation) for a in listed) == sorted([
        (ResourceType.GROUP, "readers", ResourcePatternType.LITERAL, AclOperation.READ),
        (ResourceType.TOPIC, "logs-", ResourcePatternType.PREFIXED, AclOperation.READ),
        (ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, AclOperation.WRITE),
    ])
    # WRITE implies DESCRIBE, READ on the prefix covers logs-1; secret stays hidden.
    assert visible_topics(alice) == {"orders", "logs-1"}
    # WRITE on a topic is enough for an idempotent producer (no IDEMPOTENT_WRITE).
    assert produce_error(alice, "orders", idempotent=True) is None
    # alice sees logs-1 (READ implies DESCRIBE), so the Produce itself is refused.
    assert produce_error(alice, "logs-1").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert b.metric("strata_authorization_denials_total",
                  resource_type="TOPIC", operation="WRITE") >= 1
    # Read logs-1 as group readers: the admin writes a record first.
    assert produce_error(admin_conf, "logs-1") is None
    got, err = consume_error(alice, "logs-1", "readers")
    assert err is None and got == [b"v"]
    _, err = consume_error(alice, "logs-1", "others")
    assert err is not None and err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, err

    # A DENY wins over the prefixed ALLOW.
    create(admin, allow(ResourceType.TOPIC, "logs-1", AclOperation.READ,
                        permission=AclPermissionType.DENY))
    _, err = consume_error(alice, "logs-1", "readers")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err

    # ACLs are controller records: they outlive a restart.
    b.stop()
    b.start()
    assert len(admin.describe_acls(everything()).result(30)) == 4
    deny_filter = AclBindingFilter(ResourceType.TOPIC, "logs-1", ResourcePatternType.LITERAL,
                                   "User:alice", None, AclOperation.ANY, AclPermissionType.DENY)
    write_filter = AclBindingFilter(ResourceType.TOPIC, "orders", ResourcePatternType.ANY,
                                    None, None, AclOperation.WRITE, AclPermissionType.ANY)
    deleted = admin.delete_acls([deny_filter, write_filter])
    assert [len(f.result(30)) for f in deleted.values()] == [1, 1]
    assert produce_error(alice, "orders").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert len(admin.describe_acls(everything()).result(30)) == 2
    assert produce_error(admin_conf, "logs-1") is None
    got, err = consume_error(alice, "logs-1", "readers")
    assert err is None and got == [b"v"], "the DENY was deleted: the prefixed ALLOW is back"
