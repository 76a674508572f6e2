"""Offset retention (Strata's offsets.retention.ms = 10 s, the finer form of
offsets.retention.minutes, checked every 500 ms): the offsets of an empty group
disappear about 10 s after their commit, and the group with them; a group with an
active member keeps offsets older than that."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from groupkit import FAST_GROUPS, committed, end_offsets, gbroker, members, produce  # noqa: F401
from harness import wait_until
from kclients import admin, create_topic
from test_groups import consumed_all

PARTITIONS = 2
NO_OFFSET = -1001
RETENTION_S = 10
RETENTION = {**FAST_GROUPS, "offsets.retention.ms": RETENTION_S * 1000,
             "offsets.retention.check.interval.ms": 500}


def group_ids(bootstrap) -> set[str]:
    a = admin(bootstrap)  # held until the answer is in: a dropped client fails its calls
    res = a.list_consumer_groups(request_timeout=10).result(timeout=30)
    assert not res.errors, res.errors
    return {g.group_id for g in res.valid}


@pytest.mark.parametrize("gbroker", [RETENTION], indirect=True)
def test_empty_groups_offsets_expire_active_groups_keep_theirs(gbroker, members):
    topic = "retained"
    create_topic(gbroker.bootstrap, topic, PARTITIONS)
    records = produce(gbroker.bootstrap, topic, PARTITIONS, 40, "r")
    ends = end_offsets(records, PARTITIONS)

    # "active": one member that consumes, commits, and stays.
    active = members("active", gbroker.bootstrap, "active", topic)
    wait_until(lambda: consumed_all([active], records), 60, "the active member to consume")
    wait_until(lambda: committed(gbroker.bootstrap, "active", topic, PARTITIONS) == ends, 30,
               "the active member's commits")

    # "idle": offsets committed by a consumer outside any group membership (the group
    # exists only through its offsets, and is Empty).
    c = Consumer({"bootstrap.servers": gbroker.bootstrap, "group.id": "idle",
                  "enable.auto.commit": False})
    # The broker stamps the commit between these two instants.
    t_sent = time.monotonic()
    res = c.commit(offsets=[TopicPartition(topic, p, 5) for p in range(PARTITIONS)],
                   asynchronous=False)
    t_commit = time.monotonic()
    c.close()
    assert all(tp.error is None for tp in res), res
    assert committed(gbroker.bootstrap, "idle", topic, PARTITIONS) == {0: 5, 1: 5}
    assert {"active", "idle"} <= group_ids(gbroker.bootstrap)

    def expired():
        active.check_alive()
        return committed(gbroker.bootstrap, "idle", topic, PARTITIONS) == \
            {p: NO_OFFSET for p in range(PARTITIONS)}

    wait_until(expired, 100, "the idle group's offsets to expire", interval=0.5)
    t_expired = time.monotonic()
    after = t_expired - t_commit
    print(f"idle group's offsets expired {after:.1f} s after the commit")
    # Not before the retention (measured from before the commit was sent), and within
    # one expiry pass of it (measured from its answer).
    since_sent = t_expired - t_sent
    assert since_sent >= RETENTION_S - 1.0, \
        f"offsets expired {since_sent:.1f} s after the commit was sent"
    assert after <= RETENTION_S + 15.0, f"offsets expired {after:.1f} s after the commit"
    wait_until(lambda: "idle" not in group_ids(gbroker.bootstrap), 10,
               "the group left without offsets to be removed")

    # The active group's offsets are older than the retention, and still there.
    assert committed(gbroker.bootstrap, "active", topic, PARTITIONS) == ends
    assert "active" in group_ids(gbroker.bootstrap)
    active.close()
