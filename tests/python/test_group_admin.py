"""Consumer groups through admin clients: confluent-kafka's AdminClient lists and
describes groups (state, members, assignments), lists and alters their offsets (refused
while members are active) and deletes them (NON_EMPTY_GROUP while active); kafka-python's
OffsetDelete (confluent-kafka has no delete_consumer_group_offsets). And
`__consumer_offsets`: internal in Metadata, and Produce to it is refused."""

from __future__ import annotations

import time

import kwire
import pytest
from confluent_kafka import (ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError,
                             KafkaException, Producer, TopicPartition)
from kafka import TopicPartition as KTopicPartition
from kafka.admin import KafkaAdminClient

from groupkit import commit_start, committed, end_offsets, gbroker, members, produce  # noqa: F401
from groupkit import wait_assignments
from harness import wait_until
from kclients import admin, create_topic
from test_groups import consumed_all

PARTITIONS = 4
NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: nothing committed


def describe(a, group):
    return a.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=30)


def listed(a) -> dict:
    res = a.list_consumer_groups(request_timeout=10).result(timeout=30)
    assert not res.errors, res.errors
    return {g.group_id: g for g in res.valid}


def group_offsets(a, group, topic) -> dict[int, int]:
    req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])]
    res = a.list_consumer_group_offsets(req, request_timeout=10)[group].result(timeout=30)
    assert res.group_id == group
    for tp in res.topic_partitions:
        assert tp.error is None, tp
    return {tp.partition: tp.offset for tp in res.topic_partitions}


def alter(a, group, topic, offsets: dict[int, int]):
    req = [ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p, o) for p, o in offsets.items()])]
    return a.alter_consumer_group_offsets(req, request_timeout=10)[group].result(timeout=30)


def kafka_error(excinfo) -> KafkaError:
    return excinfo.value.args[0]


def test_admin_client_lists_describes_alters_and_deletes_groups(gbroker, members):
    topic, group = "admin", "admin-g"
    create_topic(gbroker.bootstrap, topic, PARTITIONS)
    records = produce(gbroker.bootstrap, topic, PARTITIONS, 200, "a")
    ends = end_offsets(records, PARTITIONS)
    commit_start(gbroker.bootstrap, group, topic, PARTITIONS)
    ms = [members(n, gbroker.bootstrap, group, topic) for n in ("m1", "m2")]
    wait_assignments(ms, None, PARTITIONS, 60, "two members with 2 partitions each")
    wait_until(lambda: consumed_all(ms, records), 60, "the members to consume everything")
    wait_until(lambda: committed(gbroker.bootstrap, group, topic, PARTITIONS) == ends, 30,
               "the members' commits to reach the end")
    a = admin(gbroker.bootstrap)

    # list_consumer_groups: the group, Stable, a consumer group (not a "simple" one).
    g = listed(a).get(group)
    assert g is not None, f"{group} missing from {sorted(listed(a))}"
    assert g.state == ConsumerGroupState.STABLE and not g.is_simple_consumer_group, g

    # describe_consumer_groups: state, protocol, members and their assignments.
    d = describe(a, group)
    assert d.group_id == group and d.state == ConsumerGroupState.STABLE
    assert d.partition_assignor == "range" and not d.is_simple_consumer_group
    assert len(d.members) == 2, d.members
    by_client = {m.client_id: m for m in d.members}
    for m in ms:
        desc = by_client.get(f"member-{m.proc.pid}")
        assert desc is not None, f"{m.name} (pid {m.proc.pid}) not among {list(by_client)}"
        assert desc.member_id and desc.host
        got = sorted(tp.partition for tp in desc.assignment.topic_partitions
                     if tp.topic == topic)
        assert got == m.assignment(), f"{m.name}: described {got}, the member has {m.assignment()}"

    # list_consumer_group_offsets: what the members committed.
    assert group_offsets(a, group, topic) == ends

    # While members are active: altering offsets and deleting the group are refused,
    # and so is OffsetDelete on the topic they subscribe to.
    # (librdkafka reports the broker's answer per partition.)
    res = alter(a, group, topic, {p: 10 for p in range(PARTITIONS)})
    codes = [tp.error.code() if tp.error else None for tp in res.topic_partitions]
    assert codes == [KafkaError.UNKNOWN_MEMBER_ID] * PARTITIONS, res.topic_partitions
    assert group_offsets(a, group, topic) == ends
    with pytest.raises(KafkaException) as e:
        a.delete_consumer_groups([group], request_timeout=10)[group].result(timeout=30)
    assert kafka_error(e).code() == KafkaError.NON_EMPTY_GROUP, kafka_error(e)
    ka = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap, request_timeout_ms=30000)
    try:
        res = ka.delete_group_offsets(group, [KTopicPartition(topic, 3)])
        assert [err.errno for err in res.values()] == [86], res  # GROUP_SUBSCRIBED_TO_TOPIC
        assert group_offsets(a, group, topic) == ends

        # Once the members are gone the group is Empty, and the same calls work.
        for m in ms:
            m.close()
        wait_until(lambda: describe(a, group).state == ConsumerGroupState.EMPTY, 30,
                   "the group to become Empty")
        assert describe(a, group).members == []
        assert listed(a)[group].state == ConsumerGroupState.EMPTY
        res = alter(a, group, topic, {p: 10 + p for p in range(PARTITIONS)})
        assert all(tp.error is None for tp in res.topic_partitions), res
        assert group_offsets(a, group, topic) == {p: 10 + p for p in range(PARTITIONS)}
        res = ka.delete_group_offsets(group, [KTopicPartition(topic, 3)])
        assert [err.errno for err in res.values()] == [0], res
        assert group_offsets(a, group, topic) == {0: 10, 1: 11, 2: 12, 3: NO_OFFSET}
    finally:
        ka.close()

    # A new member starts at the altered offsets (and at the earliest where deleted).
    m3 = members("m3", gbroker.bootstrap, group, topic)
    rest = {k: v for k, v in records.items() if k[1] >= {0: 10, 1: 11, 2: 12, 3: 0}[k[0]]}
    wait_until(lambda: consumed_all([m3], rest), 60, "m3 to consume from the altered offsets")
    assert sorted((p, o) for p, o, _, _ in m3.consumed()) == sorted(rest)
    m3.close()

    a.delete_consumer_groups([group], request_timeout=10)[group].result(timeout=30)
    assert group not in listed(a)
    assert group_offsets(a, group, topic) == {p: NO_OFFSET for p in range(PARTITIONS)}
    with pytest.raises(KafkaException) as e:
        a.delete_consumer_groups([group], request_timeout=10)[group].result(timeout=30)
    assert kafka_error(e).code() == KafkaError.GROUP_ID_NOT_FOUND, kafka_error(e)


def test_consumer_offsets_is_internal_and_refuses_produce(gbroker):
    a = admin(gbroker.bootstrap)
    md = a.list_topics(timeout=10)
    assert "__consumer_offsets" in md.topics, sorted(md.topics)
    assert len(md.topics["__consumer_offsets"].partitions) == 16  # offsets.topic.num.partitions
    ka = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap, request_timeout_ms=30000)
    try:
        [t] = ka.describe_topics(["__consumer_offsets"])
        assert t["is_internal"] is True and t["error_code"] == 0, t
        create_topic(gbroker.bootstrap, "plain", 1)
        [t] = ka.describe_topics(["plain"])
        assert t["is_internal"] is False, t
    finally:
        ka.close()

    # confluent-kafka: the delivery report carries the broker's INVALID_TOPIC_EXCEPTION.
    reports = []
    p = Producer({"bootstrap.servers": gbroker.bootstrap, "message.timeout.ms": 10000,
                  "retries": 0})
    p.produce("__consumer_offsets", value=b"x", partition=0,
              on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(30) == 0
    assert len(reports) == 1 and reports[0] is not None, reports
    assert reports[0].code() == KafkaError.TOPIC_EXCEPTION, reports[0]  # = 17

    # On the wire: Produce v3 to __consumer_offsets answers INVALID_TOPIC_EXCEPTION (17)
    # for the partition and appends nothing.
    with kwire.connect(gbroker.kafka_addr) as s:
        s.sendall(kwire.produce_v3(7, "__consumer_offsets", 0,
                                   kwire.record_batch([b"not an offset"], int(time.time() * 1000))))
        resp = kwire.read_response(s)
    assert resp is not None, "no answer to Produce on __consumer_offsets"
    assert kwire.parse_produce_v3_response(resp) == (7, [("__consumer_offsets", 0, 17, -1)])
