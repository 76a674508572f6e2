"""Cluster tests of `strata partition move TOPIC/P --to IDS`: four real `strata serve`
processes (cluster_harness.Cluster), real clients, the real CLI.

1. A partition moves off its current leader onto the fourth broker while an idempotent
   acks=all producer writes to every partition: the CLI reports the move done, no
   acknowledged record is lost, duplicated or moved, the placement is the new one, the
   new broker's committed log is byte-identical to the others', and the dropped broker's
   replica directory is gone.
2. While a move waits for a broker that is down (SIGKILLed before the move, so its
   learner cannot catch up), a second move of the partition is refused with 409, Kafka
   Metadata lists the old replicas and the target, and the move completes once that
   broker is started again.
3. A move that drops the partition's leader, which is SIGKILLed mid-move (the move
   parked as in 2), is finished by the next leader; the old leader, started again
   after the move, removes its replica.
4. Bad requests (unknown topic or partition, unregistered or repeated broker ids, an
   empty list, a malformed TOPIC/P) exit 2 with a clear message and change nothing.
5. With tiny controller checkpoints (`Cluster(config=…)`), a broker SIGKILLed and moved
   off a partition while down, started again once every live controller log was
   trimmed past `move_done`, catches up from a checkpoint and removes its stale replica.

About 55 s with a debug build on two cores. Select them with `-m cluster` (the marker and the log attachment come from
cluster_plugin.py, as for test_cluster.py).
"""

from __future__ import annotations

import collections
import http.client
import json
import subprocess
import time
import warnings
from typing import Optional

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

import test_cluster
from cluster_harness import (BATCH_HEADER, CLUSTER_DEADLINE_S, MIN_BATCH_LENGTH, Cluster,
                             produce_values, segment_files, started_cluster, wait_for)
from kclients import read_partitions, watermarks
from seqload import SeqProducer, assert_log_holds

pytest_plugins = ["cluster_plugin"]

# cluster_plugin marks test_cluster.py by name; this module carries the marker itself.
# The plugin registers the marker only once loaded, after this module body ran.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

BROKERS = 4
REPLICATION = 3
#: How long a move of a small partition may take once nothing holds it up (it takes
#: about a second; generous for a debug build on two cores).
MOVE_DEADLINE_S = 30.0


@pytest.fixture
def cluster(request, tmp_path) -> Cluster:
    return started_cluster(request, tmp_path, BROKERS)


# --- helpers ----------------------------------------------------------------------------

def strata(c: Cluster, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """Runs the strata CLI (the brokers' binary); the completed process."""
    c.mark("strata " + " ".join(args))
    return subprocess.run([str(c.node(1).bin), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def move(c: Cluster, topic: str, partition: int, to: list[int], admin: int,
         *extra: str) -> subprocess.CompletedProcess:
    return strata(c, "partition", "move", f"{topic}/{partition}",
                  "--to", ",".join(map(str, to)), "--admin", c.node(admin).admin_addr, *extra)


def shown(r: subprocess.CompletedProcess) -> str:
    return f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


def placement(c: Cluster, node_id: int, topic: str, partition: int) -> Optional[dict]:
    """Node node_id's copy of the controller placement of topic/partition."""
    view = c.cluster_json(node_id)
    for p in (view or {}).get("placement", []):
        if (p["topic"], p["partition"]) == (topic, partition):
            return p
    return None


def placements(c: Cluster, node_id: int, topic: str) -> dict[int, tuple]:
    """partition -> (replicas, target) of topic in node node_id's placement."""
    view = c.cluster_json(node_id) or {}
    return {p["partition"]: (p["replicas"], p["target"])
            for p in view.get("placement", []) if p["topic"] == topic}


def placed(c: Cluster, topic: str, partition: int) -> dict:
    """Waits until every running node's placement has topic/partition, all alike and
    with no move under way; returns node 1's entry."""

    def cond():
        c.check_alive()
        seen = {i: placement(c, i, topic, partition) for i in c.running_ids()}
        kinds = {p and (tuple(p["replicas"]), p["group"], p["target"] is None) for p in seen.values()}
        ok = None not in seen.values() and len(kinds) == 1 and next(iter(kinds))[2]
        return ok and seen[c.running_ids()[0]], f"placement per node: {seen}"

    return wait_for(cond, CLUSTER_DEADLINE_S, f"{topic}/{partition} in every node's placement")


def wait_placement(c: Cluster, topic: str, partition: int, replicas: list[int],
                   target: Optional[list[int]], timeout: float = MOVE_DEADLINE_S) -> None:
    """Waits until every running node's placement of topic/partition has exactly
    these replicas (in this order) and target."""
    want = (replicas, target)

    def cond():
        c.check_alive()
        seen = {}
        for i in c.running_ids():
            p = placement(c, i, topic, partition)
            seen[i] = p and (p["replicas"], p["target"])
        return all(v == want for v in seen.values()), f"(replicas, target) per node: {seen}"

    wait_for(cond, timeout, f"{topic}/{partition} placed on {replicas}, target {target}",
             interval=0.2)


def metadata_replicas(c: Cluster, node_id: int, topic: str, partition: int) -> list[int]:
    """The replicas Kafka Metadata from node node_id lists for topic/partition."""
    md = AdminClient({"bootstrap.servers": c.node(node_id).bootstrap}).list_topics(
        topic=topic, timeout=10)
    return list(md.topics[topic].partitions[partition].replicas)


def wait_learner(c: Cluster, topic: str, partition: int, learner: int, among: list[int]) -> int:
    """Waits until the leader of topic/partition (one of `among`) has `learner` in its
    group as a learner; returns the leader."""

    def cond():
        c.check_alive()
        leader = c.leader_of(topic, partition, among)
        e = leader and c.partition_view(leader, topic, partition)
        if not e:
            return None, f"no leader among {among}"
        return (leader if learner in e["learners"] else None,
                f"leader {leader}: voters {e['voters']}, learners {e['learners']}")

    return wait_for(cond, CLUSTER_DEADLINE_S, f"node {learner} to join {topic}/{partition} "
                    "as a learner", interval=0.1)


def assert_partition_holds(c: Cluster, topic: str, partition: int,
                           acked: dict[bytes, int]) -> None:
    """A fresh consumer reads topic/partition from 0 to its high watermark: offsets
    0..n-1, no value twice, every acknowledged value at its acknowledged offset, nothing
    else."""
    low, high = watermarks(c.bootstrap, topic, partition + 1)[partition]
    assert (low, high) == (0, len(acked)), (
        f"{topic}/{partition}: watermarks {(low, high)}, {len(acked)} records acknowledged"
    )
    log = read_partitions(c.bootstrap, topic, {partition: high})[partition]
    assert [r.offset for r in log] == list(range(len(log))), "offsets are not 0..n-1"
    dups = [v for v, n in collections.Counter(r.value for r in log).items() if n > 1]
    assert not dups, f"records stored twice: {dups[:10]}"
    at = {r.value: r.offset for r in log}
    wrong = [(v, o, at.get(v)) for v, o in acked.items() if at.get(v) != o]
    assert not wrong, f"acknowledged (value, offset, offset in the log), first: {wrong[:5]}"


def assert_replica_gone(c: Cluster, node_id: int, topic: str, partition: int) -> None:
    """Waits until node node_id no longer hosts topic/partition: no replica in its
    /cluster view and no `<topic>-<partition>` directory."""
    d = c.node(node_id).partition_dir(topic, partition)

    def cond():
        c.check_alive()
        hosted = c.partition_view(node_id, topic, partition)
        return (hosted is None and not d.exists(),
                f"/cluster replica {hosted and {k: hosted[k] for k in ('voters', 'learners')}}, "
                f"{d} exists: {d.exists()}")

    wait_for(cond, MOVE_DEADLINE_S, f"node {node_id} to drop its replica of {topic}/{partition}")


def assert_moved_group(c: Cluster, topic: str, partition: int, to: list[int]) -> None:
    """Every broker of `to` hosts topic/partition with voters `to`, no learners and no
    joint configuration."""

    def cond():
        c.check_alive()
        seen = {}
        for i in to:
            e = c.partition_view(i, topic, partition)
            seen[i] = e and (sorted(e["voters"]), e["learners"], e["joint"])
        return (all(v == (sorted(to), [], False) for v in seen.values()),
                f"(voters, learners, joint) per replica: {seen}")

    wait_for(cond, MOVE_DEADLINE_S, f"{topic}/{partition}'s group to be {to}")


# --- 1. a move under load ------------------------------------------------------------

LOAD_TOPIC = "moving"
#: SeqProducer with test_cluster's numbering writes key k to partition k % 6.
LOAD_PARTITIONS = test_cluster.PARTITIONS
LOAD_PARTITION = 0
#: Acknowledgements on the moving partition before the move, and after it.
ACKS_BEFORE = 300
ACKS_AFTER = 100


def test_move_off_the_leader_under_load_loses_nothing(cluster, capsys):
    """4 brokers, a topic of 6 partitions with replication factor 3; while SeqProducer
    (idempotent, acks=all, ~1000 records/s over all partitions) writes, partition 0 is
    moved off its current leader onto the broker that had no replica of it. Asserts: the
    CLI exits 0 with `Moved`; the old leader handed leadership to a staying replica; the
    moved partition acknowledges the records sent to it while the CLI ran and after the
    move; no delivery failed and every acknowledged record is read back exactly once, in
    send order, at its acknowledged offset; every node's placement is the new list with no target; the new
    replicas' group is the new list; the dropped broker's replica (in /cluster and on
    disk) is gone; after a clean stop every replica of every partition holds a
    byte-identical committed prefix and passes `strata log verify`."""
    c = cluster
    c.create_topic(LOAD_TOPIC, LOAD_PARTITIONS, REPLICATION)
    c.wait_converged([LOAD_TOPIC])
    before = placed(c, LOAD_TOPIC, LOAD_PARTITION)
    assert len(before["replicas"]) == REPLICATION, before
    replicas = before["replicas"]
    new = next(i for i in c.ids if i not in replicas)

    prod = SeqProducer(c.bootstrap, LOAD_TOPIC, test_cluster.NUMBERING)
    prod.start()
    try:
        wait_for(lambda: (c.check_alive() and prod.check()
                          and prod.acked_on(LOAD_PARTITION) >= ACKS_BEFORE,
                          f"{prod.acked_on(LOAD_PARTITION)} acknowledged"),
                 CLUSTER_DEADLINE_S, f"{ACKS_BEFORE} acknowledgements on partition 0")
        leader = c.wait_leader(LOAD_TOPIC, LOAD_PARTITION)
        to = [r for r in replicas if r != leader] + [new]
        admin = next(i for i in c.ids if i not in (leader, new))
        t0 = time.monotonic()
        r = move(c, LOAD_TOPIC, LOAD_PARTITION, to, admin)
        t_moved = time.monotonic()
        assert r.returncode == 0, f"partition move under load: {shown(r)}"
        want_line = f"Moved {LOAD_TOPIC}/{LOAD_PARTITION} to brokers {','.join(map(str, to))} in "
        assert want_line in r.stdout, f"expected {want_line!r}…: {shown(r)}"
        # Writes to the moved partition go on: a record sent after the move finished
        # gets acknowledged (by the new replica set), then a few more.
        wait_for(lambda: (c.check_alive() and prod.check()
                          and prod.first_ack_sent_after(LOAD_PARTITION, t_moved),
                          f"{prod.acked_on(LOAD_PARTITION)} acknowledged on partition 0"),
                 CLUSTER_DEADLINE_S, "an acknowledgement of a record sent after the move")
        n = prod.acked_on(LOAD_PARTITION)
        wait_for(lambda: (c.check_alive() and prod.check()
                          and prod.acked_on(LOAD_PARTITION) >= n + ACKS_AFTER, ""),
                 CLUSTER_DEADLINE_S, f"{ACKS_AFTER} more acknowledgements on partition 0")
    finally:
        prod.stop()
    c.mark(f"producer stopped: {prod.sent} sent")

    acked = prod.assert_finished_cleanly()
    reused = [pos for pos, k in collections.Counter((p, o) for p, o, _ in acked).items() if k > 1]
    assert not reused, f"offsets acknowledged for two records: {reused[:10]}"

    # The move happened under load: records sent to the partition while the CLI ran
    # were acknowledged (no failure, so all of them were).
    with prod.lock:
        during = [seq for seq, _ in prod.acks_by_partition[LOAD_PARTITION]
                  if t0 <= prod.sent_at[seq] <= t_moved]
        acked_at = [t for _, t in prod.acks_by_partition[LOAD_PARTITION]]
    assert during, f"no record was sent to partition 0 during the {t_moved - t0:.2f} s move"
    gap = max(b - a for a, b in zip(acked_at, acked_at[1:]))

    handed = [line for line in c.node(leader).stderr_text(max_lines=100000).splitlines()
              if "handing leadership to a staying replica" in line
              and f"group={before['group']}" in line]
    assert handed, (f"node {leader} led {LOAD_TOPIC}/{LOAD_PARTITION} when the move began "
                    "but never logged handing leadership over")

    wait_placement(c, LOAD_TOPIC, LOAD_PARTITION, to, None)
    assert_moved_group(c, LOAD_TOPIC, LOAD_PARTITION, to)
    assert sorted(metadata_replicas(c, admin, LOAD_TOPIC, LOAD_PARTITION)) == sorted(to)
    assert_replica_gone(c, leader, LOAD_TOPIC, LOAD_PARTITION)

    marks = watermarks(c.bootstrap, LOAD_TOPIC, LOAD_PARTITIONS)
    log = read_partitions(c.bootstrap, LOAD_TOPIC, {p: marks[p][1] for p in marks})
    assert_log_holds(LOAD_TOPIC, log, {test_cluster.NUMBERING: acked})
    assert sum(len(recs) for recs in log.values()) == len(acked), (
        "the log holds records that were never acknowledged although every send was"
    )

    agreed = c.wait_converged([LOAD_TOPIC])
    assert sorted(agreed[(LOAD_TOPIC, LOAD_PARTITION)]["replicas"]) == sorted(to), agreed
    c.stop_all()
    c.assert_identical_committed_logs(agreed)
    with capsys.disabled():
        print(f"\nmove under load: {LOAD_TOPIC}/{LOAD_PARTITION} {replicas} (leader {leader}) "
              f"-> {to}: the CLI took {t_moved - t0:.2f} s; {len(acked)} records "
              f"acknowledged, {len(log[LOAD_PARTITION])} on the moved partition, "
              f"{len(during)} of them sent during the move; longest pause between its "
              f"acknowledgements {gap:.2f} s; it printed {r.stdout.strip()!r}")


# --- 2. a move parked on a broker that is down ----------------------------------------

PARKED_TOPIC = "parked"


def parked_move(c: Cluster, topic: str, drop_leader: bool):
    """Creates a 1-partition topic (replication 3) with 200 acknowledged records,
    SIGKILLs the broker without a replica (`new`), writes 200 more, and starts moving the
    partition (--no-wait) to keep the leader (drop_leader false) or not, plus `new`.
    Returns (replicas, leader, new, to, dropped, acked) once the leader's group has `new`
    as a learner: `new` cannot catch up, so the move is parked."""
    c.create_topic(topic, 1, REPLICATION)
    before = placed(c, topic, 0)
    replicas = before["replicas"]
    new = next(i for i in c.ids if i not in replicas)
    acked = produce_values(c.bootstrap, topic, 0, [b"before-%04d" % i for i in range(200)])
    leader = c.wait_leader(topic, 0)
    followers = [r for r in replicas if r != leader]
    c.kill(new)
    live = [i for i in c.ids if i != new]
    acked.update(produce_values(c.bootstrap_of(live), topic, 0, [b"new-down-%04d" % i for i in range(200)]))
    dropped = leader if drop_leader else followers[-1]
    to = [r for r in replicas if r != dropped] + [new]

    r = move(c, topic, 0, to, followers[0], "--no-wait")
    assert r.returncode == 0, f"partition move --no-wait: {shown(r)}"
    assert f"Moving {topic}/0 to brokers {','.join(map(str, to))}" in r.stdout, shown(r)
    wait_learner(c, topic, 0, new, replicas)
    return replicas, leader, new, to, dropped, acked


def test_second_move_is_refused_while_one_waits_for_a_restarted_broker(cluster, capsys):
    """The broker being moved in is SIGKILLed before the move starts, so its learner
    cannot catch up and the move stays under way (the leader's group shows it as a
    learner). Meanwhile: every node's placement shows the target; Kafka Metadata lists
    the replicas and the broker being added; a second move of the partition (to its
    current replicas, --no-wait) exits 2 with a 409 naming the move in progress, so does
    a third (another list, waiting), and neither changes the placement. Then that broker is started again: the first move completes (placement,
    group membership), the dropped follower's replica is gone, every record acknowledged
    before, during and after is read back at its offset, and after a clean stop the
    replicas' committed prefixes are byte-identical."""
    c = cluster
    replicas, leader, new, to, dropped, acked = parked_move(c, PARKED_TOPIC, drop_leader=False)

    wait_placement(c, PARKED_TOPIC, 0, replicas, to)
    md = metadata_replicas(c, leader, PARKED_TOPIC, 0)
    assert sorted(md) == sorted(set(replicas) | {new}), (
        f"during the move Metadata lists replicas {md}; placement {replicas}, target {to}"
    )

    second = move(c, PARKED_TOPIC, 0, replicas, dropped, "--no-wait")
    assert second.returncode == 2, f"second move while one is under way: {shown(second)}"
    assert "refused (409)" in second.stderr and "already moving" in second.stderr, shown(second)
    # Waiting for it changes nothing either.
    third = move(c, PARKED_TOPIC, 0, [dropped, new, leader], leader)
    assert third.returncode == 2 and "refused (409)" in third.stderr, shown(third)
    wait_placement(c, PARKED_TOPIC, 0, replicas, to)

    acked.update(produce_values(c.bootstrap_of([i for i in c.ids if i != new]), PARKED_TOPIC, 0,
                         [b"parked-%04d" % i for i in range(200)]))
    t0 = time.monotonic()
    c.restart(new)
    wait_placement(c, PARKED_TOPIC, 0, to, None)
    t_done = time.monotonic() - t0
    assert_moved_group(c, PARKED_TOPIC, 0, to)
    assert_replica_gone(c, dropped, PARKED_TOPIC, 0)
    assert sorted(metadata_replicas(c, leader, PARKED_TOPIC, 0)) == sorted(to)

    acked.update(produce_values(c.bootstrap, PARKED_TOPIC, 0, [b"after-%04d" % i for i in range(200)]))
    assert_partition_holds(c, PARKED_TOPIC, 0, acked)
    agreed = c.wait_converged([PARKED_TOPIC])
    c.stop_all()
    c.assert_identical_committed_logs(agreed)
    with capsys.disabled():
        print(f"\nparked move: {PARKED_TOPIC}/0 {replicas} -> {to} (node {new} down): second "
              f"move refused: {second.stderr.strip()!r}; done {t_done:.2f} s after "
              f"starting node {new} again")


# --- 3. the leader dies mid-move -----------------------------------------------------

LEADER_TOPIC = "orphaned"


def test_move_goes_on_when_the_leader_dies_mid_move(cluster, capsys):
    """As in the parked move above, but the move drops the partition's leader and, while
    it is parked (the broker moved in is down, its learner added), the leader is
    SIGKILLed: a staying replica takes over and acknowledges writes. The broker moved
    in is started again while the old leader stays down, so the new leader finishes the
    move: the placement and the group become the target. Then the old leader, removed
    from the group while it was down, is started again: it drops its replica (/cluster
    and directory) and the group stays the target. Every acknowledged record is read
    back at its offset; after a clean stop the committed prefixes are identical."""
    c = cluster
    replicas, leader, new, to, dropped, acked = parked_move(c, LEADER_TOPIC, drop_leader=True)
    assert dropped == leader
    staying = [r for r in replicas if r != leader]

    c.kill(leader)
    heir = c.wait_leader(LEADER_TOPIC, 0, among=staying)
    # Two of four brokers are down: the controller has no quorum, the partition (two of
    # its three voters up) does.
    acked.update(produce_values(c.bootstrap_of(staying), LEADER_TOPIC, 0,
                         [b"leader-down-%04d" % i for i in range(100)]))
    t0 = time.monotonic()
    c.restart(new)
    wait_placement(c, LEADER_TOPIC, 0, to, None)
    t_done = time.monotonic() - t0
    assert_moved_group(c, LEADER_TOPIC, 0, to)
    acked.update(produce_values(c.bootstrap_of(to), LEADER_TOPIC, 0,
                         [b"old-leader-down-%04d" % i for i in range(100)]))

    c.restart(leader)
    assert_replica_gone(c, leader, LEADER_TOPIC, 0)
    wait_placement(c, LEADER_TOPIC, 0, to, None)
    assert_moved_group(c, LEADER_TOPIC, 0, to)

    acked.update(produce_values(c.bootstrap, LEADER_TOPIC, 0, [b"after-%04d" % i for i in range(200)]))
    assert_partition_holds(c, LEADER_TOPIC, 0, acked)
    agreed = c.wait_converged([LEADER_TOPIC])
    c.stop_all()
    c.assert_identical_committed_logs(agreed)
    with capsys.disabled():
        print(f"\nleader killed mid-move: {LEADER_TOPIC}/0 {replicas} -> {to}, leader "
              f"{leader} SIGKILLed, node {heir} took over; the move was done "
              f"{t_done:.2f} s after starting node {new} again")


# --- 4. bad requests -------------------------------------------------------------------

BAD_TOPIC = "placed"
BAD_PARTITIONS = 2


def post_move(c: Cluster, node_id: int, body: bytes) -> tuple[int, str]:
    """POST /cluster/move with a raw body; (status, body text)."""
    conn = http.client.HTTPConnection("127.0.0.1", c.node(node_id).admin_port, timeout=40)
    try:
        conn.request("POST", "/cluster/move", body=body,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def test_bad_requests_exit_2_and_change_nothing(cluster):
    """Each malformed or impossible move exits 2 with a message saying what is wrong:
    unknown topic, partition out of range, an unregistered broker id, a broker named
    twice (these refused by the controller with 400), `--to` empty or missing, TOPIC
    without /P, a negative partition (refused by the CLI). An empty list and a malformed
    body POSTed straight to /cluster/move answer 400. Afterwards every node's placement
    of the topic is what it was, with no target, and the broker without a replica has
    no directory for it."""
    c = cluster
    c.create_topic(BAD_TOPIC, BAD_PARTITIONS, REPLICATION)
    for p in range(BAD_PARTITIONS):
        placed(c, BAD_TOPIC, p)
    before = placements(c, 1, BAD_TOPIC)
    assert sorted(before) == list(range(BAD_PARTITIONS)), before
    replicas = before[0][0]
    spare = next(i for i in c.ids if i not in replicas)
    ok = ",".join(map(str, replicas))

    cases = [
        # (what, args, words the error must contain)
        ("unknown topic", ["nosuch/0", "--to", ok], ["refused (400)", "nosuch/0 does not exist"]),
        ("partition out of range", [f"{BAD_TOPIC}/{BAD_PARTITIONS}", "--to", ok],
         ["refused (400)", f"{BAD_TOPIC}/{BAD_PARTITIONS} does not exist"]),
        ("unregistered broker", [f"{BAD_TOPIC}/0", "--to", f"{replicas[0]},{replicas[1]},9"],
         ["refused (400)", "broker 9 is not registered"]),
        ("a broker twice", [f"{BAD_TOPIC}/0", "--to", f"{spare},{replicas[0]},{spare}"],
         ["refused (400)", "names a broker twice"]),
        ("empty --to", [f"{BAD_TOPIC}/0", "--to", ""], ["invalid value", "--to"]),
        ("no --to", [f"{BAD_TOPIC}/0"], ["required", "--to"]),
        ("TOPIC without /P", [BAD_TOPIC, "--to", ok], ["expected TOPIC/PARTITION"]),
        ("negative partition", [f"{BAD_TOPIC}/-1", "--to", ok], ["not a partition number"]),
    ]
    admin = ["--admin", c.node(spare).admin_addr]
    failures = []
    for what, args, words in cases:
        r = strata(c, "partition", "move", *args, *admin)
        if r.returncode != 2 or not all(w in r.stderr for w in words):
            failures.append(f"{what} ({' '.join(args)}): expected exit 2 and {words} "
                            f"on stderr; {shown(r)}")
    assert not failures, "\n\n".join(failures)

    status, text = post_move(c, replicas[0], json.dumps(
        {"topic": BAD_TOPIC, "partition": 0, "to": []}).encode())
    assert status == 400 and "empty" in text, f"empty list: {status} {text}"
    status, text = post_move(c, replicas[0], b'{"topic": "placed"}')
    assert status == 400 and "error" in text, f"body without partition and to: {status} {text}"

    for i in c.ids:
        assert placements(c, i, BAD_TOPIC) == before, (
            f"node {i}: placement {placements(c, i, BAD_TOPIC)}, before the bad requests {before}"
        )
    for p, (reps, _) in before.items():
        for i in c.ids:
            if i not in reps:
                d = c.node(i).partition_dir(BAD_TOPIC, p)
                assert not d.exists(), f"node {i} has no replica of {BAD_TOPIC}/{p}, yet {d} exists"


# --- 5. a broker dropped while down, back after a checkpoint ---------------------------

STALE_TOPIC = "stale"
#: Tiny controller checkpoints (every 20 records) in 4 KiB segments, as
#: tests/cluster_cli.rs runs its clusters: a few dozen controller records are enough
#: for the live brokers to delete the log a broker that was down would need.
CHECKPOINT_CONFIG = {"metadata.snapshot.records": 20, "metadata.log.segment.bytes": 4096}
#: Filler topics per CreateTopics request (each makes a create record and its leader's
#: reports: more than the 20 records a checkpoint waits for), and the most in all.
FILLER_BATCH = 8
FILLER_MAX = 64
#: How long to wait for a checkpoint after a batch of fillers: the controller leader
#: proposes one again every 2 s while records keep overtaking it (CHECKPOINT_RETRY).
CHECKPOINT_WAIT_S = 3.0


@pytest.fixture
def checkpointed_cluster(request, tmp_path) -> Cluster:
    return started_cluster(request, tmp_path, BROKERS, config=CHECKPOINT_CONFIG)


def controller_dir(c: Cluster, node_id: int):
    return c.node(node_id).data_dir / "cluster-controller"


def controller_segment_bases(c: Cluster, node_id: int) -> list[int]:
    """Base offsets of node node_id's controller log segments, in order."""
    return [int(f.stem) for f in segment_files(controller_dir(c, node_id))]


def controller_log_end(c: Cluster, node_id: int) -> int:
    """The offset after the last whole batch of node node_id's controller log (its last
    segment parsed as RecordBatch v2; a batch being written is not counted). Reading a
    running node's log is safe: only the tail can be torn."""
    last = segment_files(controller_dir(c, node_id))[-1]
    data = last.read_bytes()
    pos, end = 0, int(last.stem)
    while pos + BATCH_HEADER.size <= len(data):
        base, length, _epoch, _magic, _crc, _attrs, last_delta = BATCH_HEADER.unpack_from(data, pos)
        if length < MIN_BATCH_LENGTH or pos + 12 + length > len(data) or base < end:
            break
        pos += 12 + length
        end = base + last_delta + 1
    return end


def stopped_controller_log_end(c: Cluster, node_id: int) -> int:
    """`strata log dump --json` of a stopped node's controller log: the offset after its
    last record (the summary's last_offset + 1)."""
    r = strata(c, "log", "dump", "--json", str(controller_dir(c, node_id)))
    assert r.returncode == 0, f"log dump of node {node_id}'s controller log: {shown(r)}"
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary.get("type") == "summary" and summary["ok"], summary
    return summary["last_offset"] + 1


def log_since(c: Cluster, node_id: int, event: str) -> list[str]:
    """Node node_id's log lines after the last `===== test …: <event>` mark."""
    text = c.node(node_id).stderr_text(max_lines=10_000_000)
    return text[text.rindex(f": {event}\n"):].splitlines()


def test_a_broker_dropped_while_down_removes_its_replica_after_a_checkpoint(
        checkpointed_cluster, capsys):
    """4 brokers checkpointing their controller log every 20 records (4 KiB segments).
    A 1-partition topic (replication 3) gets acknowledged records; a follower X (not the
    controller leader when there is a choice) is SIGKILLed and the partition is moved
    off it (to the other two replicas and the fourth broker): the move completes while
    X is down, more records are acknowledged. Filler topics are then created until every
    live broker's first controller segment starts at or after the end its controller log
    had once the move was done (so past X's log end too): everywhere, the log before a
    checkpoint that already holds `move_done` is gone.

    The live brokers are then restarted (clean stop, X still down). This matters: while
    X was down the controller leader's transport queued the appends it kept sending X
    (up to raft-rs's 256 in-flight messages; the transport keeps 4096 per peer), and X
    restarted right away replays those stale appends, entries the leader itself already
    deleted, and may catch up on `move_done` as an ordinary record without any
    checkpoint (seen: X took offsets 40..295 that way while the leader's log began at
    296). A restart drops those queues, and the live brokers replay their own log from
    its checkpoint. Then X is started again: the only way left to catch up is the
    leader's snapshot, i.e. its log restarted at a checkpoint past the move.

    Asserts: X logs its controller log restarting at a checkpoint at or past that point
    (and the replication layer's snapshot installation), and removes its replica only
    after that: its `<topic>-0` directory disappears and /cluster shows no replica of the
    partition; X's placement (like every node's) is the new list with no target; Kafka
    Metadata from X lists the new replicas; every acknowledged record reads back at its
    offset."""
    c = checkpointed_cluster
    t_start = time.monotonic()
    c.create_topic(STALE_TOPIC, 1, REPLICATION)
    replicas = placed(c, STALE_TOPIC, 0)["replicas"]
    new = next(i for i in c.ids if i not in replicas)
    acked = produce_values(c.bootstrap, STALE_TOPIC, 0, [b"before-%04d" % i for i in range(200)])
    c.wait_converged([STALE_TOPIC])  # X's replica holds them too
    leader = c.wait_leader(STALE_TOPIC, 0)
    followers = [r for r in replicas if r != leader]
    controller = (c.cluster_json(leader) or {}).get("controller_leader")
    x = next((f for f in followers if f != controller), followers[0])
    x_dir = c.node(x).partition_dir(STALE_TOPIC, 0)
    assert x_dir.is_dir() and segment_files(x_dir), f"node {x} has no replica files in {x_dir}"

    c.kill(x)
    x_end = stopped_controller_log_end(c, x)
    live = [i for i in c.ids if i != x]
    to = [r for r in replicas if r != x] + [new]
    acked.update(produce_values(c.bootstrap_of(live), STALE_TOPIC, 0,
                         [b"x-down-%04d" % i for i in range(100)]))
    t0 = time.monotonic()
    r = move(c, STALE_TOPIC, 0, to, leader)
    t_move = time.monotonic() - t0
    assert r.returncode == 0, f"moving {STALE_TOPIC}/0 off node {x} while it is down: {shown(r)}"
    assert f"Moved {STALE_TOPIC}/0 to brokers {','.join(map(str, to))} in " in r.stdout, shown(r)
    wait_placement(c, STALE_TOPIC, 0, to, None)
    assert_moved_group(c, STALE_TOPIC, 0, to)
    # Every live node applied move_done (its placement is the target), so the record
    # lies below each one's controller log end from now on.
    done_end = max(controller_log_end(c, i) for i in live)
    assert done_end > x_end, (done_end, x_end)
    acked.update(produce_values(c.bootstrap_of(live), STALE_TOPIC, 0,
                         [b"moved-%04d" % i for i in range(100)]))

    # A node's log start (its latest checkpoint) lies at or after its first segment's
    # base: once that base is >= done_end on every live node, none of them holds
    # move_done or anything X lacks, and every one's checkpoint has the move done.
    def trimmed():
        bases = {i: controller_segment_bases(c, i) for i in live}
        return all(b and b[0] >= done_end for b in bases.values()), bases

    admin = AdminClient({"bootstrap.servers": c.bootstrap_of(live)})
    fillers = 0
    while fillers < FILLER_MAX and not trimmed()[0]:
        names = [f"filler-{fillers + k}" for k in range(FILLER_BATCH)]
        futures = admin.create_topics(
            [NewTopic(n, num_partitions=1, replication_factor=REPLICATION) for n in names],
            operation_timeout=30, request_timeout=40)
        for f in futures.values():
            f.result(timeout=60)
        fillers += FILLER_BATCH
        # The checkpoint lands once the records pause (leader reports trail the
        # creations): give it that chance before creating more.
        until = time.monotonic() + CHECKPOINT_WAIT_S
        while time.monotonic() < until and c.check_alive() and not trimmed()[0]:
            time.sleep(0.1)
    # FILLER_MAX fillers make records for several checkpoints; on a slow machine the
    # last one may still be landing on some node: poll for it rather than give up.
    def trimmed_or_why():
        c.check_alive()
        ok, bases = trimmed()
        return (bases if ok else None), (
            f"{fillers} filler topics, yet the live controller segments are {bases}; "
            f"need every first base >= {done_end}")

    live_bases = wait_for(trimmed_or_why, CLUSTER_DEADLINE_S, "the live nodes' checkpoints")
    t_trimmed = time.monotonic() - t0
    c.mark(f"node {x}'s controller log ended at {x_end}, the move was done below "
           f"{done_end}; live controller segments {live_bases} after {fillers} fillers")

    # Drop the appends queued for X (see the docstring): restart the live nodes.
    c.stop_all()
    c.mark(f"start nodes {live} again")
    for i in live:
        c.node(i).spawn()
    for i in live:
        c.node(i).wait_ready()
    c.down.difference_update(live)
    wait_placement(c, STALE_TOPIC, 0, to, None)
    restarted_bases = {i: controller_segment_bases(c, i) for i in live}
    assert all(b and b[0] >= done_end for b in restarted_bases.values()), restarted_bases

    t1 = time.monotonic()
    c.restart(x)
    assert_replica_gone(c, x, STALE_TOPIC, 0)
    t_gone = time.monotonic() - t1
    wait_placement(c, STALE_TOPIC, 0, to, None)
    assert_moved_group(c, STALE_TOPIC, 0, to)
    assert sorted(metadata_replicas(c, x, STALE_TOPIC, 0)) == sorted(to)

    # X caught up through a checkpoint past the move, and removed its replica then.
    lines = log_since(c, x, f"start node {x} again")
    at = next((n for n, line in enumerate(lines)
               if "controller log restarted at a checkpoint" in line), None)
    assert at is not None, (
        f"node {x} never logged its controller log restarting at a checkpoint; "
        "it caught up otherwise:\n" + "\n".join(lines[:200]))
    checkpoint = int(lines[at].rsplit("checkpoint=", 1)[1].split()[0])
    assert checkpoint >= done_end, (
        f"node {x} restarted its controller log at {checkpoint}, before the move "
        f"(done below {done_end}): {lines[at]}")
    assert any("installed a snapshot from the leader" in line and f"next_offset={checkpoint}" in line
               for line in lines[:at]), (
        f"no snapshot installation at {checkpoint} before {lines[at]!r}")
    removed = [n for n, line in enumerate(lines)
               if ("replica removed from this broker" in line and f'topic="{STALE_TOPIC}"' in line)
               or ("removed the files of a partition" in line and f"/{STALE_TOPIC}-0" in line)]
    assert removed and removed[0] > at, (
        f"node {x} removed its replica of {STALE_TOPIC}/0 (log lines {removed}) before its "
        f"controller log restarted at the checkpoint (line {at}): not through the checkpoint")

    acked.update(produce_values(c.bootstrap, STALE_TOPIC, 0, [b"after-%04d" % i for i in range(100)]))
    assert_partition_holds(c, STALE_TOPIC, 0, acked)
    assert not x_dir.exists(), f"{x_dir} came back"
    assert c.partition_view(x, STALE_TOPIC, 0) is None, f"node {x} hosts {STALE_TOPIC}/0 again"
    with capsys.disabled():
        print(f"\nstale replica: {STALE_TOPIC}/0 {replicas} -> {to} while node {x} was down "
              f"(its controller log ended at {x_end}, move_done below {done_end}); move "
              f"{t_move:.2f} s; {fillers} filler topics until the live first segments were "
              f"{live_bases} ({t_trimmed:.2f} s after the move began); node {x}'s replica "
              f"gone {t_gone:.2f} s after its restart; it logged {lines[at].strip()[-110:]!r}; "
              f"total {time.monotonic() - t_start:.1f} s")
