"""Committed offsets across broker restarts (SIGTERM and kill -9), with confluent-kafka
and kafka-python group consumers: members resume at the committed offsets — nothing
committed is read again, nothing is skipped — and a commit that returned survives a
kill -9 that follows it at once."""

from __future__ import annotations

import collections

import pytest
from confluent_kafka import Consumer, TopicPartition

from groupkit import commit_start, committed, end_offsets, gbroker, members, produce  # noqa: F401
from harness import wait_until
from kclients import create_topic
from test_groups import assert_no_committed_record_reconsumed, consumed_all

PARTITIONS = 4


def bounce(broker, how: str) -> None:
    if how == "sigterm":
        broker.stop()
    else:
        broker.kill()
    broker.start()


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_members_resume_at_committed_offsets_after_broker_restart(gbroker, members, client, how):
    topic, group = "payments", f"resume-{client}-{how}"
    create_topic(gbroker.bootstrap, topic, PARTITIONS)
    commit_start(gbroker.bootstrap, group, topic, PARTITIONS)
    first = produce(gbroker.bootstrap, topic, PARTITIONS, 1200, "one")

    # (a) A member commits part of the log and dies; the broker restarts; two new members
    # start exactly at what was committed.
    # (x comes back from the group's replay as a member until its session expires: a
    # short session lets y and z in sooner.)
    x = members("x", gbroker.bootstrap, group, topic, client=client, delay_ms=2,
                fetch_bytes=1024, batch=7, session_ms=2000)
    wait_until(lambda: x.check_alive() and len(x.consumed()) >= 300, 60,
               "x to consume 300 records")
    x.kill()
    logged = x.last_committed()
    x_next = {p: max((o + 1 for q, o, _, _ in x.consumed() if q == p), default=0)
              for p in range(PARTITIONS)}
    bounce(gbroker, how)
    at_restart = committed(gbroker.bootstrap, group, topic, PARTITIONS)
    for p in range(PARTITIONS):
        floor = logged.get(p, 0)
        got = at_restart[p]
        assert floor <= got <= x_next[p], (
            f"{how}: partition {p}: x's commit of {floor} returned, x consumed up to "
            f"{x_next[p]}, after the restart OffsetFetch says {at_restart[p]}")
    assert sum(at_restart.values()) < len(first), "x consumed everything before dying"
    assert sum(1 for p in range(PARTITIONS) if 0 < at_restart[p] < 300) >= 2, (
        f"x's commits should have stopped mid-partition: {at_restart}")

    ys = [members(n, gbroker.bootstrap, group, topic, client=client, delay_ms=2)
          for n in ("y", "z")]
    rest = {(p, o): v for (p, o), v in first.items() if o >= at_restart[p]}
    wait_until(lambda: consumed_all(ys, rest), 60, "y and z to consume the rest")
    ends = end_offsets(first, PARTITIONS)
    for p in range(PARTITIONS):
        start = at_restart[p]
        got = sorted(o for m in ys for q, o, _, _ in m.consumed() if q == p)
        assert got == list(range(start, ends[p])), (
            f"partition {p}: committed {start} before the restart; y and z consumed "
            f"{got[:3]}…{got[-3:]} ({len(got)} records), expected {start}..{ends[p]}")

    # (b) Members stay up while the broker restarts under them mid-way through a batch.
    second = produce(gbroker.bootstrap, topic, PARTITIONS, 1200, "two", start=1200)
    wait_until(lambda: sum(1 for m in ys for _, _, v, _ in m.consumed() if v.startswith("two"))
               >= 200, 60, "y and z to consume 200 of the second batch")
    bounce(gbroker, how)
    third = produce(gbroker.bootstrap, topic, PARTITIONS, 400, "three", start=2400)
    records = {**first, **second, **third}
    later = {k: v for k, v in records.items() if not v.startswith("one")}
    wait_until(lambda: consumed_all(ys, later), 90, "y and z to consume everything after the restart")
    for m in ys:
        for p, o, v, _ in m.consumed():
            assert records[(p, o)] == v
    assert_no_committed_record_reconsumed(ys)
    # Whatever was consumed twice was consumed without a successful commit covering it.
    counts = collections.Counter((p, o) for m in ys for p, o, _, _ in m.consumed())
    dups = sorted(k for k, c in counts.items() if c > 1)
    if how == "sigterm":
        # A clean stop answers the requests it holds: no commit is lost, so no member
        # has to re-read anything.
        assert not dups, f"records consumed twice across a clean restart: {dups[:10]}"
    print(f"{client}/{how}: at restart {at_restart}; {len(dups)} records re-read in (b)")
    for m in ys:
        m.close()
    assert committed(gbroker.bootstrap, group, topic, PARTITIONS) == end_offsets(records, PARTITIONS)


def test_commit_survives_kill9_right_after_it_returned(gbroker):
    """Twenty synchronous commits, kill -9 as soon as the last returned: it is there after
    the restart — for a group member (generation and member id) and for a standalone
    assign() consumer (generation -1)."""
    topic = "durable"
    create_topic(gbroker.bootstrap, topic, PARTITIONS)
    produce(gbroker.bootstrap, topic, PARTITIONS, 400, "d")

    member = Consumer({"bootstrap.servers": gbroker.bootstrap, "group.id": "durable-member",
                       "enable.auto.commit": False, "session.timeout.ms": 6000,
                       "heartbeat.interval.ms": 500})
    member.subscribe([topic])

    def assigned():
        member.poll(0.1)
        return len(member.assignment()) == PARTITIONS

    wait_until(assigned, 30, "the member's assignment")
    standalone = Consumer({"bootstrap.servers": gbroker.bootstrap, "group.id": "durable-assign",
                           "enable.auto.commit": False})
    standalone.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])

    try:
        for c, group in ((member, "durable-member"), (standalone, "durable-assign")):
            for i in range(1, 21):
                offsets = [TopicPartition(topic, p, 3 * i + p) for p in range(PARTITIONS)]
                res = c.commit(offsets=offsets, asynchronous=False)
                assert all(tp.error is None for tp in res), res
            gbroker.kill()  # right after the last commit returned
            gbroker.start()
            got = committed(gbroker.bootstrap, group, topic, PARTITIONS)
            want = {p: 60 + p for p in range(PARTITIONS)}
            assert got == want, f"{group}: committed {want} before the kill -9, after: {got}"
    finally:
        standalone.close()
        member.close()
