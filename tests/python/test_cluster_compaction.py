"""Compaction on replicated partitions: three real `strata serve` processes, real clients.

1. A compacted topic (RF 3) under keyed updates from an idempotent confluent-kafka
   producer; the leader is SIGKILLed while a cleaning is writing its copy (its staging
   directory exists), more updates go to the new leader, the old one comes back and
   catches up. Then every replica's segments, read from disk, hold exactly the latest
   value of each key at the offset it was written at, the same records at the same
   offsets on all three, and a consumer reads the same through the leader.
2. `__consumer_offsets` under a commit storm (thousands of commits, each rewriting the
   same keys) stays bounded on every replica instead of growing with every commit; after
   a SIGKILL of its leader, the new coordinator loads the compacted partition (a few
   hundred records, not every commit) and serves the last committed offsets.
3. A tombstone past its delete horizon stays on the leader while a replica that holds
   an older value of its key is down, so that replica, back, gets the tombstone.

Select them with `-m cluster` (marker and failure logs from cluster_plugin.py).
"""

from __future__ import annotations

import re
import time
import warnings

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from cluster_harness import CLUSTER_DEADLINE_S, committed_records, started_cluster, wait_for
from harness import wait_until
from kclients import produce_keyed

pytest_plugins = ["cluster_plugin"]

with warnings.catch_warnings():
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

TOPIC = "compacted"
KEYS = 100
SEGMENT_BYTES = 16384
OFFSETS_TOPIC = "__consumer_offsets"
OFFSETS_SEGMENT_BYTES = 1 << 20
STORM_COMMITS = 1500
STORM_PARTITIONS = 8
#: Metadata per committed offset, so each commit record weighs about 3 KiB.
STORM_METADATA = "m" * 3000


def produce(bootstrap: str, updates: list[tuple[str, bytes]]) -> None:
    """Uncompressed: the test reads the segment files itself."""
    produce_keyed(bootstrap, TOPIC, updates)


def served(bootstrap: str) -> list[tuple[int, bytes, bytes]]:
    """(offset, key, value) of every record the leader serves, start to high watermark."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False,
                  "enable.partition.eof": True, "fetch.wait.max.ms": 50})
    out = []
    try:
        c.assign([TopicPartition(TOPIC, 0, 0)])
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "reading the compacted topic timed out"
            for m in c.consume(num_messages=10000, timeout=1.0):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return out
                    raise KafkaException(err)
                out.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()


def latest_per_key(records: list[tuple[int, bytes, bytes]]) -> dict[bytes, tuple[int, bytes]]:
    out = {}
    for offset, key, value in records:
        out[key] = (offset, value)
    return out


def test_replicas_compact_alike_through_a_leader_kill_mid_cleaning(request, tmp_path):
    c = started_cluster(request, tmp_path, 3, config={"log.cleaner.backoff.ms": 20})
    c.create_topic(TOPIC, 1, 3, {"cleanup.policy": "compact", "segment.bytes": str(SEGMENT_BYTES),
                                 "min.cleanable.dirty.ratio": "0.01"})
    # (key, value) in the order acknowledged; offsets come from the leader's log.
    updates = [(f"key-{i % KEYS}", f"update-{i}".encode()) for i in range(20_000)]
    produce(c.bootstrap, updates)

    # More dirty data, then SIGKILL the leader the moment a cleaning writes its copy.
    leader = c.wait_leader(TOPIC, 0)
    staging = c.node(leader).partition_dir(TOPIC, 0) / ".cleaner"
    more = [(f"key-{i % KEYS}", f"before-kill-{i}".encode()) for i in range(20_000)]
    produce(c.bootstrap, more)
    updates += more
    wait_until(staging.exists, 60, "a cleaning in progress on the leader", interval=0.001)
    c.kill(leader)
    others = [i for i in c.ids if i != leader]
    new_leader = c.wait_leader(TOPIC, 0, among=others)
    after = [(f"key-{i % KEYS}", f"after-kill-{i}".encode()) for i in range(10_000)]
    after_start = len(updates)
    produce(c.bootstrap_of(others), after)
    updates += after

    # The new leader compacts what the old one missed, so the old one catches up from
    # cleaned entries.
    def missed_entries_cleaned():
        recs = committed_records(c.node(new_leader).partition_dir(TOPIC, 0), len(updates))
        left = sum(1 for o, _, _ in recs if o >= after_start)
        return (left < len(after) // 2 or None), f"{left} of the missed records left"

    wait_for(missed_entries_cleaned, CLUSTER_DEADLINE_S, "the new leader to clean")
    c.restart(leader)
    c.wait_caught_up(leader, TOPIC, 1)
    # Unique keys after the updates, so every update lies in a closed segment (the
    # active one is never cleaned) and "exactly one record per key" can hold.
    fillers = [(f"filler-{i}", b"f" * 100) for i in range(600)]
    produce(c.bootstrap, fillers)
    want = {k.encode(): v for k, v in updates}
    filler_keys = {k.encode() for k, _ in fillers}

    agreed = c.wait_converged([TOPIC])[(TOPIC, 0)]
    hw = agreed["high_watermark"]
    assert hw == len(updates) + len(fillers), "one offset per record acknowledged"

    def replicas_compacted():
        by_node = {}
        for i in agreed["replicas"]:
            recs = committed_records(c.node(i).partition_dir(TOPIC, 0), hw)
            updated = [(o, k, v) for o, k, v in recs if k not in filler_keys]
            if len(updated) != KEYS:
                return None, f"node {i}: {len(updated)} update records left, want {KEYS}"
            by_node[i] = recs
        return by_node, ""

    by_node = wait_for(replicas_compacted, CLUSTER_DEADLINE_S, "every replica to compact")
    first = by_node[agreed["replicas"][0]]
    for i, recs in by_node.items():
        assert recs == first, f"node {i} holds other records or offsets than node {agreed['replicas'][0]}"
    latest = latest_per_key(first)
    assert {k: v for k, (_, v) in latest.items() if k not in filler_keys} == want
    assert all(o < hw for o, _, _ in first)
    # What a consumer reads through the leader: the same records at the same offsets
    # (fillers in the active segment are all there is beyond the cleaned prefix).
    assert served(c.bootstrap) == first
    assert new_leader in agreed["replicas"]


def test_a_tombstone_outlives_its_horizon_until_every_replica_holds_it(request, tmp_path):
    """A follower that holds a key's value is down while the key is deleted and the
    tombstone's delete horizon passes on the leader: the leader keeps the tombstone, so
    the follower, back, receives it and never holds the old value as the key's latest."""
    c = started_cluster(request, tmp_path, 3, config={"log.cleaner.backoff.ms": 20})
    c.create_topic(TOPIC, 1, 3, {"cleanup.policy": "compact", "segment.bytes": str(SEGMENT_BYTES),
                                 "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "100"})
    produce(c.bootstrap, [("doomed", b"old value")] + [(f"key-{i % KEYS}", b"v") for i in range(500)])
    leader = c.wait_leader(TOPIC, 0)
    follower = next(i for i in c.ids if i != leader)
    c.wait_caught_up(follower, TOPIC, 1)
    c.kill(follower)
    up = [i for i in c.ids if i != follower]
    # The tombstone, then enough updates of other keys to close its segment.
    produce_keyed(c.bootstrap_of(up), TOPIC, [("doomed", None)])
    lead_now = c.wait_leader(TOPIC, 0, among=up)

    def doomed_on_leader(from_offset: int):
        hw = c.partition_view(lead_now, TOPIC, 0)["high_watermark"]
        recs = committed_records(c.node(lead_now).partition_dir(TOPIC, 0), hw)
        newer = sum(1 for o, _, _ in recs if o >= from_offset)
        return [v for _, k, v in recs if k == b"doomed"], newer

    produce(c.bootstrap_of(up), [(f"key-{i % KEYS}", f"r0-{i}".encode()) for i in range(3000)])
    # A cleaning saw the tombstone: the old value is gone, the horizon is set.
    wait_for(lambda: (doomed_on_leader(0)[0] == [b""] or None, f"{doomed_on_leader(0)}"),
             CLUSTER_DEADLINE_S, "the leader to clean the deleted key's old value")
    # delete.retention.ms is wall-clock time from that cleaning: let it pass.
    time.sleep(0.3)
    round_start = c.partition_view(lead_now, TOPIC, 0)["high_watermark"]
    produce(c.bootstrap_of(up), [(f"key-{i % KEYS}", f"r1-{i}".encode()) for i in range(3000)])

    def cleaned_after_the_horizon():
        doomed, newer = doomed_on_leader(round_start)
        return ({"doomed": doomed} if newer < 1500 else None), f"{newer} records of the last round left"

    # A cleaning after the horizon rewrote the log, tombstone's batch in its clean
    # section: alone it would remove the tombstone; a replica lacks it, so it stays.
    doomed = wait_for(cleaned_after_the_horizon, CLUSTER_DEADLINE_S, "a cleaning past the horizon")["doomed"]
    assert doomed == [b""], f"the leader holds {doomed} for the deleted key"
    c.restart(follower)
    c.wait_caught_up(follower, TOPIC, 1)
    hw = c.partition_view(follower, TOPIC, 0)["high_watermark"]
    recs = committed_records(c.node(follower).partition_dir(TOPIC, 0), hw)
    doomed = [v for _, k, v in recs if k == b"doomed"]
    assert doomed and doomed[-1] == b"", (
        f"the follower holds {doomed} for the deleted key: the old value came back")


def metric(text: str, name: str, labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(l in line for l in labels.split(",")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{labels}}} not in metrics")


def test_consumer_offsets_stay_bounded_and_a_new_coordinator_loads_fast(request, tmp_path):
    c = started_cluster(request, tmp_path, 3, config={
        "log.cleaner.backoff.ms": 50,
        "offsets.topic.num.partitions": 1,
        "offsets.topic.segment.bytes": OFFSETS_SEGMENT_BYTES,
    })
    c.create_topic("storm", STORM_PARTITIONS, 3)
    wait_for(lambda: (c.leader_of(OFFSETS_TOPIC, 0), "no leader"), CLUSTER_DEADLINE_S,
             f"{OFFSETS_TOPIC} to exist")
    errors = []

    def on_commit(err, _partitions):
        if err is not None:
            errors.append(str(err))

    committer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "storm",
                          "enable.auto.commit": False, "on_commit": on_commit})
    largest = 0.0
    for n in range(1, STORM_COMMITS + 1):
        offsets = [TopicPartition("storm", p, n, metadata=STORM_METADATA)
                   for p in range(STORM_PARTITIONS)]
        committer.commit(offsets=offsets, asynchronous=n % 50 != 0)
        committer.poll(0)
        if n % 100 == 0:
            leader = c.leader_of(OFFSETS_TOPIC, 0)
            if leader is not None:
                size = metric(c.node(leader).metrics(), "strata_partition_size_bytes",
                              f'topic="{OFFSETS_TOPIC}",partition="0"')
                largest = max(largest, size)
    committer.close()
    assert not errors, errors[:5]
    written = STORM_COMMITS * STORM_PARTITIONS * len(STORM_METADATA)

    def bounded():
        sizes = {}
        for i in c.ids:
            sizes[i] = metric(c.node(i).metrics(), "strata_partition_size_bytes",
                              f'topic="{OFFSETS_TOPIC}",partition="0"')
        return (sizes if max(sizes.values()) <= 4 * OFFSETS_SEGMENT_BYTES else None), f"sizes {sizes}"

    sizes = wait_for(bounded, CLUSTER_DEADLINE_S, f"{OFFSETS_TOPIC} to be compacted on every replica")
    print(f"{written} bytes of commit metadata; partition sizes after: {sizes}; "
          f"largest seen on the leader during the storm: {largest:.0f}")

    old = c.wait_leader(OFFSETS_TOPIC, 0)
    c.kill(old)
    others = [i for i in c.ids if i != old]
    new = c.wait_leader(OFFSETS_TOPIC, 0, among=others)
    pattern = re.compile(r"now coordinating the groups.*?records=(\d+).*?elapsed_ms=(\d+)")

    def loaded():
        hits = pattern.findall(c.node(new).stderr_text(max_lines=100_000))
        return (hits[-1] if hits else None), "no load logged yet"

    records, elapsed_ms = wait_for(loaded, CLUSTER_DEADLINE_S, "the new coordinator to load")
    print(f"new coordinator on node {new} loaded {records} records in {elapsed_ms} ms "
          f"({STORM_COMMITS * STORM_PARTITIONS} commits written)")
    assert int(records) < STORM_COMMITS * STORM_PARTITIONS // 4, (
        f"the new coordinator replayed {records} records: the partition was not compacted")
    reader = Consumer({"bootstrap.servers": c.bootstrap_of(others), "group.id": "storm",
                       "enable.auto.commit": False})
    try:
        got = reader.committed([TopicPartition("storm", p) for p in range(STORM_PARTITIONS)],
                               timeout=30)
    finally:
        reader.close()
    assert [tp.offset for tp in got] == [STORM_COMMITS] * STORM_PARTITIONS
