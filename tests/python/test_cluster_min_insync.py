"""`min.insync.replicas` on three real `strata serve` processes, real confluent-kafka
producers.

With every replica in sync, acks=all writes succeed on a topic that needs all three.
After a follower is SIGKILLed and drops out of the in-sync set (the leader's
`replica.lag.time.max.ms`, 2 s here), an acks=all write to that topic is refused with
NOT_ENOUGH_REPLICAS and nothing of it becomes readable, while acks=1 on the same topic
and acks=all on a topic that needs two still succeed. With the follower back and in sync
again, acks=all succeeds again.

Select it with `-m cluster` (marker and failure logs from cluster_plugin.py).
"""

from __future__ import annotations

import warnings

import pytest
from confluent_kafka import Consumer, TopicPartition

from cluster_harness import CLUSTER_DEADLINE_S, deliver, started_cluster, wait_for

pytest_plugins = ["cluster_plugin"]

with warnings.catch_warnings():
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

NEEDS_ALL = "needs-all"
NEEDS_TWO = "needs-two"


def producer_config(bootstrap: str, acks: str) -> dict:
    # No retries: NOT_ENOUGH_REPLICAS is retriable, and the test wants the first answer.
    return {"bootstrap.servers": bootstrap, "acks": acks, "enable.idempotence": False,
            "retries": 0, "linger.ms": 0, "message.timeout.ms": 20000}


def in_sync(c, topic: str, leader: int) -> list[int]:
    view = c.partition_view(leader, topic, 0) or {}
    return sorted(view.get("isr") or [])


def high_watermark(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hw-{topic}"})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return high
    finally:
        consumer.close()


def test_acks_all_needs_min_insync_replicas(request, tmp_path):
    c = started_cluster(request, tmp_path, 3, config={"replica.lag.time.max.ms": 2000})
    c.create_topic(NEEDS_ALL, 1, 3, config={"min.insync.replicas": "3"})
    c.create_topic(NEEDS_TWO, 1, 3, config={"min.insync.replicas": "2"})
    leader = c.wait_leader(NEEDS_ALL, 0)
    boot = c.bootstrap

    acked, failed, left = deliver(producer_config(boot, "all"), NEEDS_ALL, 0,
                                  [b"all-up-%d" % i for i in range(20)], 30)
    assert len(acked) == 20 and not failed and left == 0, (failed[:3], left)

    follower = next(i for i in c.ids if i != leader and i != c.leader_of(NEEDS_TWO, 0))
    c.kill(follower)
    wait_for(lambda: (follower not in in_sync(c, NEEDS_ALL, leader),
                      f"ISR {in_sync(c, NEEDS_ALL, leader)}"),
             CLUSTER_DEADLINE_S, f"node {follower} out of the ISR")

    before = high_watermark(boot, NEEDS_ALL)
    acked, failed, left = deliver(producer_config(boot, "all"), NEEDS_ALL, 0,
                                  [b"one-down-%d" % i for i in range(5)], 30)
    assert not acked and left == 0, (acked, left)
    assert len(failed) == 5 and all("NOT_ENOUGH_REPLICAS" in e for _, e in failed), failed
    assert high_watermark(boot, NEEDS_ALL) == before, "a refused write became readable"

    acked, failed, left = deliver(producer_config(boot, "1"), NEEDS_ALL, 0,
                                  [b"acks-one-%d" % i for i in range(5)], 30)
    assert len(acked) == 5 and not failed and left == 0, (failed[:3], left)
    acked, failed, left = deliver(producer_config(boot, "all"), NEEDS_TWO, 0,
                                  [b"needs-two-%d" % i for i in range(5)], 30)
    assert len(acked) == 5 and not failed and left == 0, (failed[:3], left)

    c.restart(follower)
    wait_for(lambda: (in_sync(c, NEEDS_ALL, leader) == sorted(c.ids),
                      f"ISR {in_sync(c, NEEDS_ALL, leader)}"),
             CLUSTER_DEADLINE_S, f"node {follower} back in the ISR")
    acked, failed, left = deliver(producer_config(boot, "all"), NEEDS_ALL, 0,
                                  [b"all-back-%d" % i for i in range(5)], 30)
    assert len(acked) == 5 and not failed and left == 0, (failed[:3], left)
