"""Cluster fault tests: three real `strata serve` processes (cluster_harness.Cluster),
real clients, real crashes and a real (proxied) network partition.

The first four tests share one run (the `failover_run` fixture, once per module): an
idempotent acks=all confluent-kafka producer writes keyed, numbered records to a topic of
6 partitions with replication factor 3 while the leader of partition 0 is SIGKILLed and
restarted STRATA_CLUSTER_KILLS times (default 10). Then:

1. every acknowledged record is in the log exactly once, at its acknowledged offset, in
   send order per partition (and so per key), read back with a fresh assign() consumer;
2. the client-visible failover time of each kill (SIGKILL -> first acknowledgement of a
   record sent after it) is printed, median included (sanity bound only);
3. all replicas converge (same leader, term, high watermark, last index), and after a
   SIGTERM of every broker their committed prefixes are byte-identical and
   `strata log verify` passes on every replica;
4. after a full cluster restart a fresh consumer reads the same log back.

The next test partitions the leader of a partition away from the other two brokers
through tcp_proxy and checks that it acknowledges nothing meanwhile, that the majority
elects a leader and acknowledges writes, and that after healing the replicas converge
with every acknowledged record. The next one checks that brokers whose --peers texts
differ (as behind the proxies) still report one ClusterId. The last one checks that
retention moves every replica's log start while a producer writes without pause.

Select them with `-m cluster` (the marker comes from cluster_plugin.py). Consumer groups
in a cluster are tested in test_cluster_groups.py, partition moves in
test_cluster_move.py.
"""

from __future__ import annotations

import collections
import os
import socket
import statistics
import time
from dataclasses import dataclass, field
from typing import Optional

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import kwire
from cluster_harness import Cluster, deliver, produce_values, started_cluster
from harness import wait_until
from kclients import read_partitions
from seqload import Numbering, SeqProducer, assert_log_holds, read_back

pytest_plugins = ["cluster_plugin"]

# A kill loop with a debug build can take minutes; the pytest.ini default is 240 s.
pytestmark = pytest.mark.timeout(600)

TOPIC = "failover"
PARTITIONS = 6
REPLICATION = 3
#: SIGKILLs of partition 0's leader in the failover run.
KILLS = max(1, int(os.environ.get("STRATA_CLUSTER_KILLS", "10")))
#: The failover producer's records: 24 keys, key k always in partition k % PARTITIONS.
NUMBERING = Numbering(PARTITIONS, keys=24)
#: Partition 0 acknowledgements to see between a restart and the next kill.
STEADY_ACKS = 50
#: Sanity bound on one failover (not a performance target).
FAILOVER_BOUND_S = 30.0


@dataclass
class FailoverRun:
    cluster: Cluster
    producer: SeqProducer
    killed: list[int] = field(default_factory=list)
    #: Per kill: SIGKILL -> first acknowledgement of a partition-0 record sent after it.
    failover_s: list[float] = field(default_factory=list)
    #: Per kill: SIGKILL -> a surviving broker's /cluster says it leads partition 0.
    election_s: list[float] = field(default_factory=list)
    #: The log as test 1 read it back (partition -> records), for test 4.
    consumed: Optional[dict] = None


def kill_partition0_leader(run: FailoverRun) -> None:
    """One round: SIGKILL partition 0's leader while the producer writes, time the
    failover, restart the killed broker and wait until it has caught up."""
    c, prod = run.cluster, run.producer
    leader = c.wait_leader(TOPIC, 0)
    survivors = [i for i in c.ids if i != leader]
    before = prod.acked_on(0)
    wait_until(lambda: c.check_alive() and prod.check() and prod.acked_on(0) >= before + STEADY_ACKS,
               FAILOVER_BOUND_S, f"{STEADY_ACKS} partition 0 acknowledgements before the kill")

    t_kill = time.monotonic()
    c.kill(leader)
    c.wait_leader(TOPIC, 0, among=survivors, timeout=FAILOVER_BOUND_S)
    t_elected = time.monotonic()
    acked_at = wait_until(
        lambda: c.check_alive() and prod.check() and prod.first_ack_sent_after(0, t_kill),
        FAILOVER_BOUND_S,
        f"an acknowledgement on partition 0 after SIGKILL of its leader, node {leader}",
        interval=0.01,
    )
    run.killed.append(leader)
    run.election_s.append(t_elected - t_kill)
    run.failover_s.append(acked_at - t_kill)

    c.restart(leader)
    c.wait_caught_up(leader, TOPIC, PARTITIONS)


@pytest.fixture(scope="module")
def failover_run(request, tmp_path_factory) -> FailoverRun:
    cluster = Cluster(tmp_path_factory.mktemp("cluster-failover"))
    request.module.strata_cluster = cluster  # cluster_plugin attaches its logs on failure
    request.addfinalizer(cluster.kill_all)
    cluster.start(3)
    cluster.create_topic(TOPIC, PARTITIONS, REPLICATION)
    prod = SeqProducer(cluster.bootstrap, TOPIC, NUMBERING)
    run = FailoverRun(cluster, prod)
    prod.start()
    try:
        for _ in range(KILLS):
            kill_partition0_leader(run)
        # Writes go on against the full cluster for a moment after the last restart.
        n = prod.acked_on(0)
        wait_until(lambda: prod.check() and prod.acked_on(0) >= n + STEADY_ACKS,
                   FAILOVER_BOUND_S, "acknowledgements after the last restart")
    finally:
        prod.stop()
    return run


def test_sigkilled_leaders_lose_no_acknowledged_record(failover_run):
    run = failover_run
    prod = run.producer
    assert len(run.killed) == KILLS, f"{len(run.killed)} of {KILLS} kills done"
    acked = prod.assert_finished_cleanly()
    positions = collections.Counter((p, o) for p, o, _ in acked)
    reused = [pos for pos, n in positions.items() if n > 1]
    assert not reused, f"offsets acknowledged for two records: {reused[:10]}"

    run.consumed = read_back(run.cluster.bootstrap, TOPIC, PARTITIONS, acked)
    assert_log_holds(TOPIC, run.consumed, {NUMBERING: acked})
    assert sum(len(r) for r in run.consumed.values()) == len(acked), (
        "the log holds records that were never acknowledged although every send was"
    )


def test_client_visible_failover_time(failover_run, capsys, record_property):
    run = failover_run
    assert len(run.failover_s) == KILLS
    median = statistics.median(run.failover_s)
    record_property("failover_median_s", round(median, 3))
    with capsys.disabled():
        print(
            f"\nfailover over {KILLS} SIGKILLs of partition 0's leader (nodes {run.killed}):"
            f"\n  to the next acks=all acknowledgement: median {median:.2f} s, "
            f"min {min(run.failover_s):.2f} s, max {max(run.failover_s):.2f} s; each "
            + " ".join(f"{t:.2f}" for t in run.failover_s)
            + f"\n  to a new leader in /cluster: median {statistics.median(run.election_s):.2f} s"
        )
    assert max(run.failover_s) < FAILOVER_BOUND_S


def test_replicas_converge_to_identical_committed_logs(failover_run):
    cluster = failover_run.cluster
    agreed = cluster.wait_converged([TOPIC])
    assert len(agreed) == PARTITIONS, f"partitions reported: {sorted(agreed)}"
    for key, a in agreed.items():
        assert len(a["replicas"]) == REPLICATION, f"{key}: replicas {a['replicas']}"
    if failover_run.consumed is not None:
        for p, recs in failover_run.consumed.items():
            assert agreed[(TOPIC, p)]["high_watermark"] == len(recs), (
                f"partition {p}: high watermark {agreed[(TOPIC, p)]['high_watermark']}, "
                f"{len(recs)} records were read"
            )
    cluster.stop_all()
    cluster.assert_identical_committed_logs(agreed)


def test_acknowledged_records_survive_full_cluster_restart(failover_run):
    cluster = failover_run.cluster
    if cluster.running_ids():
        cluster.stop_all()
    cluster.start_all()
    cluster.wait_converged([TOPIC])
    acked = failover_run.producer.snapshot()
    log = read_back(cluster.bootstrap, TOPIC, PARTITIONS, acked)
    assert_log_holds(TOPIC, log, {NUMBERING: acked})
    if failover_run.consumed is not None:
        for p in range(PARTITIONS):
            assert [(r.offset, r.key, r.value) for r in log[p]] == [
                (r.offset, r.key, r.value) for r in failover_run.consumed[p]
            ], f"partition {p} reads differently after the full restart"
    cluster.stop_all()


# --- network partition ----------------------------------------------------------------

SPLIT_TOPIC = "split"
#: Only partition 0 is written; with 6 partitions over 3 brokers the cut-off leader
#: most likely also leads an idle one, which must reconcile after healing too.
SPLIT_PARTITIONS = 6
#: How long the cut-off leader is given to answer a raw acks=all Produce.
RAW_PRODUCE_TIMEOUT_MS = 3000


@pytest.fixture
def proxied_cluster(request, tmp_path) -> Cluster:
    return started_cluster(request, tmp_path, 3, proxied=True)


def produce_acked(bootstrap: str, values: list[bytes]) -> dict[bytes, int]:
    """Idempotent acks=all writes of `values` to SPLIT_TOPIC partition 0; asserts every
    one is acknowledged; value -> offset."""
    return produce_values(bootstrap, SPLIT_TOPIC, 0, values, timeout=30)


def produce_unsure(bootstrap: str, values: list[bytes]) -> tuple[dict[bytes, int], list]:
    """acks=all writes to partition 0 that may fail: (value -> offset of the acknowledged
    ones, [(value, error)] of the others). Waits until every record has a report."""
    acked, failed, left = deliver(
        {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
         "linger.ms": 5, "request.timeout.ms": 3000, "message.timeout.ms": 5000},
        SPLIT_TOPIC, 0, values, 30)
    assert left == 0, f"{left} records without a delivery report 30 s after a 5 s message timeout"
    return acked, failed


def raw_produce(addr: tuple[str, int], values: list[bytes]) -> tuple[str, bool]:
    """One acks=all ProduceRequest v3 to partition 0 straight to `addr` (no client-side
    rerouting): (what happened, whether it was acknowledged)."""
    batch = kwire.record_batch(values, int(time.time() * 1000))
    with kwire.connect(addr) as s:
        s.sendall(kwire.produce_v3(1, SPLIT_TOPIC, 0, batch, acks=-1,
                                   timeout_ms=RAW_PRODUCE_TIMEOUT_MS))
        try:
            payload = kwire.read_response(s, timeout=RAW_PRODUCE_TIMEOUT_MS / 1000 + 7)
        except socket.timeout:
            return "no answer within 10 s", False
    if payload is None:
        return "connection closed", False
    corr, parts = kwire.parse_produce_v3_response(payload)
    assert corr == 1 and len(parts) == 1 and parts[0][:2] == (SPLIT_TOPIC, 0), (corr, parts)
    err, base = parts[0][2], parts[0][3]
    return (f"acknowledged at offset {base}" if err == 0 else f"error code {err}"), err == 0


def test_cut_off_leader_acknowledges_nothing_and_majority_goes_on(proxied_cluster, capsys):
    c = proxied_cluster
    c.create_topic(SPLIT_TOPIC, SPLIT_PARTITIONS, 3)
    acked = produce_acked(c.bootstrap, [b"before-%04d" % i for i in range(300)])

    old = c.wait_leader(SPLIT_TOPIC, 0)
    majority = [i for i in c.ids if i != old]
    old_term = c.partition_view(old, SPLIT_TOPIC, 0)["term"]
    idle_led = [p for p in range(1, SPLIT_PARTITIONS) if c.leader_of(SPLIT_TOPIC, p) == old]
    c.cut(old)

    # Straight to the cut-off leader, at once (it most likely still believes it leads):
    # it cannot reach a majority, so it must not acknowledge.
    minority_raw = [b"minority-raw-%d" % i for i in range(20)]
    outcomes = [raw_produce(c.node(old).kafka_addr, minority_raw[:10])]
    c.mark(f"raw produce to node {old}: {outcomes[0][0]}")
    # A client that knows only the old leader: acknowledgements it gets must come from a
    # majority leader (librdkafka may learn of one), so they must survive.
    unsure_acked, unsure_failed = produce_unsure(
        c.node(old).bootstrap, [b"minority-client-%d" % i for i in range(20)]
    )
    c.mark(f"client of node {old}: {len(unsure_acked)} acked, {len(unsure_failed)} failed")

    new = c.wait_leader(SPLIT_TOPIC, 0, among=majority)
    new_term = c.partition_view(new, SPLIT_TOPIC, 0)["term"]
    assert new_term > old_term, f"node {new} leads at term {new_term}, the old leader had {old_term}"
    acked.update(produce_acked(c.bootstrap_of(majority), [b"majority-%04d" % i for i in range(300)]))
    c.mark("300 acked through the majority")
    # Again, now that the majority has moved on.
    outcomes.append(raw_produce(c.node(old).kafka_addr, minority_raw[10:]))
    old_view = c.partition_view(old, SPLIT_TOPIC, 0)
    with capsys.disabled():
        print(f"\nnetwork partition: node {old} (leader at term {old_term}; also of idle "
              f"partitions {idle_led}) cut off; node {new} "
              f"leads at term {new_term}; raw acks=all produce to node {old}: "
              f"{[o for o, _ in outcomes]}; its own view then: leader {old_view and old_view['leader']} "
              f"term {old_view and old_view['term']}; client that knew only node {old}: "
              f"{len(unsure_acked)} acknowledged, {len(unsure_failed)} failed")
    assert not any(ok for _, ok in outcomes), (
        f"node {old}, cut off from the majority, acknowledged acks=all writes: {outcomes}"
    )

    c.heal(old)
    # Partition 0 first: its data, read back through the majority.
    agreed0 = c.wait_converged([SPLIT_TOPIC], partitions=[0])
    hw = agreed0[(SPLIT_TOPIC, 0)]["high_watermark"]
    log = read_partitions(c.bootstrap_of(majority), SPLIT_TOPIC, {0: hw})[0]
    assert [r.offset for r in log] == list(range(len(log))), "offsets are not 0..n-1"
    at = {r.value: r.offset for r in log}
    dups = [v for v, n in collections.Counter(r.value for r in log).items() if n > 1]
    assert not dups, f"records stored twice: {dups[:10]}"
    for v, o in {**acked, **unsure_acked}.items():
        assert at.get(v) == o, f"acknowledged {v!r} at offset {o}; the log has it at {at.get(v)}"
    leaked = [v for v in minority_raw if v in at]
    assert not leaked, f"writes the cut-off leader never acknowledged became visible: {leaked}"

    # Then every partition of the topic, written or idle, on every replica.
    agreed = c.wait_converged([SPLIT_TOPIC])
    c.stop_all()
    c.assert_identical_committed_logs(agreed)


def test_brokers_report_one_cluster_id(proxied_cluster):
    """Behind the per-pair proxies each node is given its own --peers text (as nodes that
    reach each other through NAT or by different names would be): they are still one
    cluster, and Metadata must say so, or librdkafka warns that it is connected to
    several clusters at once."""
    ids = proxied_cluster.metadata_cluster_ids()
    assert len(set(ids.values())) == 1, f"one cluster, several ClusterIds in Metadata: {ids}"


RETAINED_TOPIC = "retained"
RETAINED_SEGMENT_BYTES = 16384


def log_start_of(c: Cluster, node_id: int, topic: str) -> Optional[float]:
    """`strata_partition_log_start_offset` of topic/0 on one node (None before it hosts it)."""
    for line in c.node(node_id).metrics().splitlines():
        if line.startswith("strata_partition_log_start_offset{") and \
                f'topic="{topic}"' in line and 'partition="0"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_retention_moves_every_replicas_log_start_under_steady_produce(request, tmp_path):
    """Retention on a replicated partition under steady produce: with a producer that
    keeps far more queued than a round trip carries, each replica's log end is usually
    ahead of its high watermark, and retention still deletes closed segments below it,
    on every replica, while the writes go on (log.retention.check.interval.ms is 100 ms
    here). The log-store tests pin the bound itself: nothing at or past the high
    watermark is deleted."""
    c = started_cluster(request, tmp_path, 3, config={"log.retention.check.interval.ms": 100})
    c.create_topic(RETAINED_TOPIC, 1, 3, {"segment.bytes": str(RETAINED_SEGMENT_BYTES),
                                          "retention.bytes": str(4 * RETAINED_SEGMENT_BYTES)})
    errors, acked = [], [0]

    def report(err, _msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked[0] += 1

    # Batches well under segment.bytes (a larger one is RECORD_LIST_TOO_LARGE).
    producer = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "linger.ms": 2,
                         "enable.idempotence": True, "batch.size": RETAINED_SEGMENT_BYTES // 4})
    value = b"r" * 200
    started = time.monotonic()
    moved: dict[int, float] = {}
    while len(moved) < len(c.ids):
        assert time.monotonic() - started < 120, f"log start moved on {moved} only"
        # Keep far more queued than one round trip carries, so the pipeline never drains.
        while len(producer) < 5000:
            producer.produce(RETAINED_TOPIC, value, partition=0, on_delivery=report)
        producer.poll(0.01)
        assert not errors, errors[:5]
        for i in c.ids:
            start = log_start_of(c, i, RETAINED_TOPIC)
            if start:
                moved[i] = start
    assert producer.flush(30) == 0, "records without a delivery report"
    assert not errors, errors[:5]
    # The reads start where retention left the log, on whichever broker leads.
    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "retained"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(RETAINED_TOPIC, 0), timeout=10)
    finally:
        consumer.close()
    assert 0 < low < high == acked[0], (low, high, acked[0], moved)
