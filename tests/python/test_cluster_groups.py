"""Cluster tests of consumer groups and operations: three real `strata serve` processes
(cluster_harness.Cluster) and real clients.

1. Committed offsets survive a SIGKILL of the group's coordinator (the leader of the
   group's `__consumer_offsets` partition, docs/cluster.md "Consumer groups"): a new
   confluent-kafka member reads the same committed offsets from the new coordinator and
   resumes exactly there, so the two members together read every record exactly once;
   kafka-python's `committed()` sees the same offsets.
2. `strata cluster rebalance-leaders` evens out leaderships made uneven by a crash and
   restart, and writes go on being acknowledged afterwards.
3. `strata cluster status` lists every broker up and every partition with its leader;
   `--json` parses.
4. DeleteRecords on a replicated partition moves the log start on every replica: after
   the leader's SIGKILL the new leader reports the same low watermark.

Select them with `-m cluster` (the marker and the log attachment come from
cluster_plugin.py, as for test_cluster.py).
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
import time
import warnings

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from cluster_harness import CLUSTER_DEADLINE_S, Cluster, started_cluster, wait_for

pytest_plugins = ["cluster_plugin"]

# cluster_plugin marks test_cluster.py by name; this module carries the marker itself.
# The plugin registers the marker only once loaded, after this module body ran.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

OFFSETS_TOPIC = "__consumer_offsets"
#: `__consumer_offsets` partitions (docs/cluster.md: abs(javaHash(group)) % 16).
OFFSETS_PARTITIONS = 16


def java_string_hashcode(s: str) -> int:
    """Java's String.hashCode (over UTF-16 code units), as a signed 32-bit int."""
    units = s.encode("utf-16-be")
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + (units[i] << 8 | units[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def offsets_partition_of(group: str) -> int:
    h = java_string_hashcode(group)
    return (0 if h == -(1 << 31) else abs(h)) % OFFSETS_PARTITIONS


@pytest.fixture
def cluster(request, tmp_path) -> Cluster:
    return started_cluster(request, tmp_path, 3)


def produce_keyed(bootstrap: str, topic: str, n: int, tag: str,
                  timeout: float = 60.0) -> dict[tuple[int, int], bytes]:
    """n keyed records (30 keys, the client's partitioner places them), idempotent
    acks=all; asserts every one is acknowledged; (partition, offset) -> value."""
    acked: dict[tuple[int, int], bytes] = {}
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append((msg.value(), str(err)))
        else:
            acked[(msg.partition(), msg.offset())] = msg.value()

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "batch.num.messages": 50,
                  "message.timeout.ms": int(timeout * 1000)})
    for i in range(n):
        p.produce(topic, key=b"key-%02d" % (i % 30), value=b"%s-%06d" % (tag.encode(), i),
                  on_delivery=report)
        p.poll(0)
    left = p.flush(timeout + 10)
    assert left == 0 and not errors, f"{left} undelivered, delivery errors: {errors[:5]}"
    assert len(acked) == n, f"{n} sent, {len(acked)} distinct positions acknowledged"
    return acked


def consume_n(c: Consumer, n: int, timeout: float, what: str) -> list[tuple[int, int, bytes]]:
    """Polls `c` until it returned n records (no more); fails on a consumer error or at
    the deadline. [(partition, offset, value)] in delivery order."""
    got: list[tuple[int, int, bytes]] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, (
            f"{what}: {len(got)} of {n} records after {timeout:.0f} s"
        )
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error() is not None:
            raise KafkaException(m.error())
        got.append((m.partition(), m.offset(), m.value()))
    return got


def group_consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # Small fetches, so the first member's share interleaves the partitions.
        "max.partition.fetch.bytes": 2048,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 500,
    })


# --- 1. committed offsets survive the coordinator's broker ----------------------------

GROUP_TOPIC = "orders"
GROUP_PARTITIONS = 3
GROUP = "billing"
RECORDS = 3000
FIRST_SHARE = 1500


def test_group_offsets_survive_the_coordinators_broker(cluster, capsys):
    c = cluster
    c.create_topic(GROUP_TOPIC, GROUP_PARTITIONS, 3)
    acked = produce_keyed(c.bootstrap, GROUP_TOPIC, RECORDS, "rec")
    ends = {p: 1 + max((o for q, o in acked if q == p), default=-1) for p in range(GROUP_PARTITIONS)}
    assert all(ends[p] == sum(1 for q, _ in acked if q == p) for p in ends), (
        f"acknowledged offsets are not 0..n-1 per partition: ends {ends}"
    )

    # The first member reads about half, commits synchronously what it read, and leaves.
    a = group_consumer(c.bootstrap, GROUP)
    try:
        a.subscribe([GROUP_TOPIC])
        first = consume_n(a, FIRST_SHARE, 60, "first member")
        commit = {p: 0 for p in range(GROUP_PARTITIONS)}
        for p, o, _ in first:
            commit[p] = max(commit[p], o + 1)
        res = a.commit(offsets=[TopicPartition(GROUP_TOPIC, p, o) for p, o in commit.items()],
                       asynchronous=False)
        assert all(tp.error is None for tp in res), f"commit answered {res}"
        before = {tp.partition: tp.offset for tp in
                  a.committed([TopicPartition(GROUP_TOPIC, p) for p in commit], timeout=10)}
        assert before == commit, f"committed {commit}, the coordinator answers {before}"
    finally:
        a.close()
    for p in range(GROUP_PARTITIONS):
        got = [o for q, o, _ in first if q == p]
        assert got == list(range(commit[p])), (
            f"first member: partition {p} offsets are not 0..{commit[p] - 1}: {got[:10]}…"
        )

    # The coordinator: the leader of the group's __consumer_offsets partition, as its own
    # /cluster view says, and as FindCoordinator (describe_consumer_groups) names it.
    part = offsets_partition_of(GROUP)
    coord = c.wait_leader(OFFSETS_TOPIC, part)
    admin = AdminClient({"bootstrap.servers": c.bootstrap})  # kept alive for the future
    desc = admin.describe_consumer_groups([GROUP], request_timeout=10)[GROUP].result(timeout=30)
    assert desc.coordinator.id == coord, (
        f"/cluster: node {coord} leads {OFFSETS_TOPIC}/{part}; FindCoordinator names "
        f"node {desc.coordinator.id}"
    )
    survivors = [i for i in c.ids if i != coord]

    t_kill = time.monotonic()
    c.kill(coord)
    new_coord = c.wait_leader(OFFSETS_TOPIC, part, among=survivors)
    t_elected = time.monotonic()

    b = group_consumer(c.bootstrap_of(survivors), GROUP)
    try:
        tps = [TopicPartition(GROUP_TOPIC, p) for p in range(GROUP_PARTITIONS)]
        errors = []

        def fetch_committed():
            # Retried only while the client reports an error (coordinator loading or
            # moving); the first answer without errors is the one asserted.
            c.check_alive()
            try:
                got = b.committed(tps, timeout=5)
            except KafkaException as e:
                errors.append(str(e))
                return None, f"committed() raised {e}"
            bad = [(tp.partition, str(tp.error)) for tp in got if tp.error is not None]
            if bad:
                errors.append(str(bad))
                return None, f"committed() partition errors {bad}"
            return {tp.partition: tp.offset for tp in got}, ""

        after = wait_for(fetch_committed, CLUSTER_DEADLINE_S,
                         f"OffsetFetch of {GROUP} after SIGKILL of node {coord}", interval=0.2)
        t_fetched = time.monotonic()
        c.mark(f"new member read committed offsets {after} from node {new_coord}")
        assert after == commit, (
            f"committed {commit} through node {coord}; after its SIGKILL the new coordinator "
            f"(node {new_coord}) answers {after}"
        )

        b.subscribe([GROUP_TOPIC])
        second = consume_n(b, RECORDS - FIRST_SHARE, 60, "second member")
    finally:
        b.close()

    for p in range(GROUP_PARTITIONS):
        got = [o for q, o, _ in second if q == p]
        assert got == list(range(commit[p], ends[p])), (
            f"second member: partition {p} read offsets {got[:5]}…{got[-3:]}, expected "
            f"{commit[p]}..{ends[p] - 1} (committed {commit[p]})"
        )
    read = collections.Counter((p, o, v) for p, o, v in first + second)
    assert [k for k, n in read.items() if n > 1] == [], "records read twice"
    assert set(read) == {(p, o, v) for (p, o), v in acked.items()}, (
        "the two members did not read every acknowledged record exactly once"
    )

    # kafka-python, in the same group (both confluent members closed), through the
    # surviving brokers: OffsetFetch via its own coordinator lookup.
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    kc = KafkaConsumer(bootstrap_servers=c.bootstrap_of(survivors).split(","),
                       group_id=GROUP, enable_auto_commit=False,
                       request_timeout_ms=15000, reconnect_backoff_ms=20)
    # Metadata still lists the killed broker (registered brokers are listed whether up
    # or not), and kafka-python raises, rather than retries, when the node it picked for
    # FindCoordinator refuses the connection: ask again until it picks a live one.
    from kafka.errors import KafkaConnectionError, NodeNotReadyError

    def kafka_python_committed():
        try:
            return {p: kc.committed(KTopicPartition(GROUP_TOPIC, p))
                    for p in range(GROUP_PARTITIONS)}, "answered"
        except (KafkaConnectionError, NodeNotReadyError) as e:
            return None, f"kafka-python: {e!r}"

    try:
        kp = wait_for(kafka_python_committed, 60, "kafka-python's committed() from a live broker")
    finally:
        kc.close()
    assert kp == commit, f"kafka-python committed(): {kp}; committed {commit}"

    with capsys.disabled():
        print(f"\ncoordinator failover: {GROUP} on {OFFSETS_TOPIC}/{part}, node {coord} "
              f"SIGKILLed, node {new_coord} leads after {t_elected - t_kill:.2f} s, committed "
              f"offsets {after} read {t_fetched - t_kill:.2f} s after the kill "
              f"({len(errors)} retried answers{': ' + errors[-1] if errors else ''})")


# --- 2. rebalance-leaders --------------------------------------------------------------

BALANCE_TOPIC = "balance"
BALANCE_PARTITIONS = 6
#: Transfers take well under a second each; this is generous.
REBALANCE_DEADLINE_S = 30.0


def leader_counts(c: Cluster, topic: str, partitions: int) -> tuple[dict[int, int], dict[int, object]]:
    """(node -> partitions of `topic` it leads, partition -> leader (None: none))."""
    leaders = {p: c.leader_of(topic, p) for p in range(partitions)}
    counts = {i: 0 for i in c.ids}
    for lead in leaders.values():
        if lead is not None:
            counts[lead] += 1
    return counts, leaders


def test_rebalance_leaders_evens_out_leadership(cluster, capsys):
    c = cluster
    c.create_topic(BALANCE_TOPIC, BALANCE_PARTITIONS, 3)
    produce_keyed(c.bootstrap, BALANCE_TOPIC, 300, "before")
    c.wait_converged([BALANCE_TOPIC])
    initial, _ = leader_counts(c, BALANCE_TOPIC, BALANCE_PARTITIONS)

    # Make leadership uneven: crash a leader, let its partitions move, bring it back.
    victim = c.wait_leader(BALANCE_TOPIC, 0)
    survivors = [i for i in c.ids if i != victim]
    c.kill(victim)
    for p in range(BALANCE_PARTITIONS):
        c.wait_leader(BALANCE_TOPIC, p, among=survivors)
    produce_keyed(c.bootstrap_of(survivors), BALANCE_TOPIC, 300, "degraded")
    c.restart(victim)
    c.wait_caught_up(victim, BALANCE_TOPIC, BALANCE_PARTITIONS)
    c.wait_converged([BALANCE_TOPIC])
    uneven, _ = leader_counts(c, BALANCE_TOPIC, BALANCE_PARTITIONS)
    assert uneven[victim] < BALANCE_PARTITIONS // 3, (
        f"precondition: node {victim} took leaderships back by itself after its restart: {uneven}"
    )

    admin = c.node(survivors[0]).admin_addr
    c.mark(f"cluster rebalance-leaders --admin {admin}")
    t0 = time.monotonic()
    r = subprocess.run([str(c.node(1).bin), "cluster", "rebalance-leaders", "--admin", admin],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"rebalance-leaders exit {r.returncode}\n{r.stdout}\n{r.stderr}"

    def even():
        c.check_alive()
        counts, leaders = leader_counts(c, BALANCE_TOPIC, BALANCE_PARTITIONS)
        return (all(n == BALANCE_PARTITIONS // 3 for n in counts.values()),
                f"leads {counts}, leaders {leaders}")

    try:
        wait_for(even, REBALANCE_DEADLINE_S, f"every broker to lead "
                 f"{BALANCE_PARTITIONS // 3} of {BALANCE_TOPIC}'s {BALANCE_PARTITIONS} partitions",
                 interval=0.2)
    except AssertionError as e:
        all_counts = collections.Counter(
            e2["leader"] for i in c.ids for (t, _), e2 in c.node(i).partition_views().items()
            if e2["leader"] == i)
        raise AssertionError(
            f"{e}; before the command (node {victim} SIGKILLed and restarted) {uneven}; "
            f"leaderships per node over all topics: {dict(sorted(all_counts.items()))}; "
            f"rebalance-leaders printed:\n{r.stdout}{r.stderr}") from None
    t_even = time.monotonic() - t0
    c.wait_converged([BALANCE_TOPIC])
    produce_keyed(c.bootstrap, BALANCE_TOPIC, 600, "after", timeout=30)

    with capsys.disabled():
        print(f"\nrebalance-leaders: initially {initial}, after SIGKILL+restart of node "
              f"{victim}: {uneven}, even {t_even:.2f} s after the command; it printed:\n"
              f"{r.stdout.strip()}")


# --- 3. cluster status -------------------------------------------------------------------

STATUS_TOPIC = "status"
STATUS_PARTITIONS = 4


def test_cluster_status_shows_every_partition(cluster):
    c = cluster
    c.create_topic(STATUS_TOPIC, STATUS_PARTITIONS, 3)
    agreed = c.wait_converged([STATUS_TOPIC])
    admin = c.node(2).admin_addr
    r = subprocess.run([str(c.node(1).bin), "cluster", "status", "--admin", admin],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"cluster status exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    text = r.stdout

    brokers = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[0].isdigit() and re.fullmatch(r"127\.0\.0\.1:\d+", cols[1]):
            brokers[int(cols[0])] = cols
    for i in c.ids:
        assert i in brokers, f"broker {i} missing from the status:\n{text}"
        cols = brokers[i]
        assert cols[1] == c.node(i).bootstrap and cols[2] == c.node(i).admin_addr, (
            f"broker {i}: addresses {cols[1:3]}, expected {c.node(i).bootstrap} "
            f"{c.node(i).admin_addr}:\n{text}"
        )
        assert cols[3] == "up", f"broker {i} is not up in the status:\n{text}"

    rows = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 3 and cols[0] == STATUS_TOPIC and cols[1].isdigit():
            rows[int(cols[1])] = cols
    assert sorted(rows) == list(range(STATUS_PARTITIONS)), (
        f"partitions of {STATUS_TOPIC} listed: {sorted(rows)}:\n{text}"
    )
    for p, cols in rows.items():
        want = agreed[(STATUS_TOPIC, p)]
        assert cols[2] == str(want["leader"]), (
            f"{STATUS_TOPIC}/{p}: status says leader {cols[2]}, the replicas agree on "
            f"{want['leader']}:\n{text}"
        )
        assert sorted(int(x) for x in cols[4].split(",")) == sorted(want["replicas"]), (
            f"{STATUS_TOPIC}/{p}: replicas {cols[4]}, expected {want['replicas']}:\n{text}"
        )

    r = subprocess.run([str(c.node(1).bin), "cluster", "status", "--json", "--admin", admin],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"cluster status --json exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    doc = json.loads(r.stdout)
    # node id -> that broker's GET /cluster.
    assert isinstance(doc, dict) and sorted(doc) == [str(i) for i in c.ids], (
        f"status --json: top-level keys {list(doc) if isinstance(doc, dict) else type(doc)}"
    )
    for key, view in doc.items():
        assert view["node_id"] == int(key), f"status --json[{key}] is node {view['node_id']}'s view"
        assert sorted(b["id"] for b in view["brokers"]) == c.ids, f"node {key}: {view['brokers']}"
    for (topic, p), want in agreed.items():
        for r_id in want["replicas"]:
            e = [e for e in doc[str(r_id)]["partitions"]
                 if (e["topic"], e["partition"]) == (topic, p) and e.get("local", True)]
            assert len(e) == 1 and e[0]["leader"] == want["leader"], (
                f"status --json: node {r_id}'s view of {topic}/{p}: {e}, expected leader "
                f"{want['leader']}"
            )


# --- 4. DeleteRecords is replicated ---------------------------------------------------

def test_delete_records_moves_the_log_start_on_every_replica(cluster):
    """DeleteRecords (confluent-kafka AdminClient) on a replicated partition answers the
    new low watermark once the move committed; after the leader is SIGKILLed, the new
    leader (another replica) reports the same log start, and a consumer from earliest
    starts there."""
    from kclients import read_partitions, watermarks

    topic = "purge"
    cluster.create_topic(topic, 1, 3)
    acked = produce_keyed(cluster.bootstrap, topic, 100, "purge")
    assert sorted(o for _, o in acked) == list(range(100))
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    futures = a.delete_records([TopicPartition(topic, 0, 40)], operation_timeout=30)
    for tp, fut in futures.items():
        res = fut.result(timeout=60)
        assert res.low_watermark == 40, f"{tp}: low watermark {res.low_watermark}"
    assert watermarks(cluster.bootstrap, topic, 1) == {0: (40, 100)}

    old = cluster.wait_leader(topic, 0)
    cluster.kill(old)
    new = cluster.wait_leader(topic, 0, among=[i for i in cluster.ids if i != old])
    assert new != old

    def moved_everywhere():
        try:
            marks = watermarks(cluster.bootstrap_of(cluster.running_ids()), topic, 1)
        except Exception as e:  # the client may still be finding the new leader
            return False, f"ListOffsets: {e}"
        return marks == {0: (40, 100)}, f"watermarks {marks}"

    wait_for(moved_everywhere, CLUSTER_DEADLINE_S, "the new leader's log to start at 40")
    log = read_partitions(cluster.bootstrap_of(cluster.running_ids()), topic, {0: 100},
                          start={0: 40})
    assert [r.offset for r in log[0]] == list(range(40, 100))
