"""Consumer groups with real clients: three confluent-kafka members (each its own
process, group_member.py) share a 6-partition topic under each assignment strategy;
every record is consumed exactly once while the group is stable; a SIGKILLed member's
partitions move to the others after its session times out, and the group resumes at the
committed offsets: nothing committed is consumed again, nothing is skipped."""

from __future__ import annotations

import bisect
import collections

import pytest

from groupkit import (HEARTBEAT_MS, SESSION_MS, commit_start, committed, end_offsets,  # noqa: F401
                      gbroker, members, produce, wait_assignments)
from harness import wait_until
from kclients import create_topic

PARTITIONS = 6


def consumed_all(ms, records) -> bool:
    for m in ms:
        if m.running():
            m.check_alive()
    seen = {(p, o) for m in ms for p, o, _, _ in m.consumed()}
    return seen >= set(records)


def assert_no_committed_record_reconsumed(ms, extra_commits=(), zombie=None) -> None:
    """No member consumed a record after any member's commit covering it had succeeded.
    `extra_commits`: (time, partition, offset) commits known from OffsetFetch.
    `zombie`: (name, t0, t1), a window in which that member had been fenced but did not
    know it yet. Fetch is not fenced by group generation (in Kafka either), so records it
    read then are expected; only its commits must fail, which the caller checks."""
    commits: dict[int, list[tuple[float, int]]] = collections.defaultdict(list)
    for m in ms:
        for e in m.commits():
            for p, o in e["offsets"].items():
                commits[int(p)].append((e["t"], o))
    for t, p, o in extra_commits:
        commits[p].append((t, o))
    # Per partition: running maximum of committed offsets over time.
    timeline = {}
    for p, cs in commits.items():
        cs.sort()
        times, highs, high = [], [], -1
        for t, o in cs:
            high = max(high, o)
            times.append(t)
            highs.append(high)
        timeline[p] = (times, highs)
    bad = []
    for m in ms:
        for p, o, _, t in m.consumed():
            if p not in timeline:
                continue
            if zombie and zombie[0] == m.name and zombie[1] < t <= zombie[2]:
                continue
            times, highs = timeline[p]
            i = bisect.bisect_left(times, t) - 1
            if i >= 0 and highs[i] > o:
                bad.append((m.name, p, o, f"committed {highs[i]} before"))
    assert not bad, f"records consumed again after their commit: {bad[:10]} ({len(bad)} in all)"


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_killed_member_partitions_move_and_resume_at_commits(gbroker, members, strategy):
    topic, group = "orders", f"g-{strategy}"
    create_topic(gbroker.bootstrap, topic, PARTITIONS)
    commit_start(gbroker.bootstrap, group, topic, PARTITIONS)
    # Some "processing" per record, so the victim (b) dies with work left: 10 ms for it
    # leaves at least 2 s of work on each of its partitions when it is killed (200 of
    # the second batch's 300 records per partition at the least), far more than the
    # test takes to notice the threshold; 2 ms for the survivors.
    ms = [members(n, gbroker.bootstrap, group, topic, strategy=strategy,
                  delay_ms=10 if n == "b" else 2)
          for n in ("a", "b", "c")]
    wait_assignments(ms, None, PARTITIONS, 60, "3 members with 2 partitions each")
    assert all(len(m.assignment()) == 2 for m in ms), {m.name: m.assignment() for m in ms}

    # Stable group: every record is consumed exactly once, by the member that owns it.
    first = produce(gbroker.bootstrap, topic, PARTITIONS, 600, "one")
    wait_until(lambda: consumed_all(ms, first), 60, "the group to consume the first 600")
    counts = collections.Counter((p, o) for m in ms for p, o, _, _ in m.consumed())
    assert set(counts) == set(first) and set(counts.values()) == {1}, (
        f"stable group: duplicates {[k for k, c in counts.items() if c > 1][:10]}")
    for m in ms:
        for p, o, v, _ in m.consumed():
            assert p in m.assignment() and first[(p, o)] == v
    owner = {p: m for m in ms for p in m.assignment()}

    # Kill one member mid-way through the second batch.
    victim, survivors = ms[1], [ms[0], ms[2]]
    victim_parts = victim.assignment()
    before = {m.name: list(m.assignment()) for m in survivors}
    second = produce(gbroker.bootstrap, topic, PARTITIONS, 1800, "two", start=600)
    wait_until(lambda: sum(1 for _, _, v, _ in victim.consumed() if v.startswith("two"))
               >= 100, 60, "the victim to consume 100 of the second batch")
    t_kill = victim.kill()
    # The survivors cannot own its partitions before its session expires: what is
    # committed now is where they must resume.
    at_kill = committed(gbroker.bootstrap, group, topic, PARTITIONS)
    logged = victim.last_committed()
    victim_next = {p: max((o + 1 for q, o, _, _ in victim.consumed() if q == p), default=0)
                   for p in victim_parts}
    for p in victim_parts:
        assert logged.get(p, 0) <= at_kill[p] <= victim_next[p], (
            f"partition {p}: the victim logged a commit of {logged.get(p)} and consumed up "
            f"to {victim_next[p]}, OffsetFetch says {at_kill[p]}")
        assert at_kill[p] < end_offsets(second, PARTITIONS)[p], "the victim finished too soon"

    session_s, heartbeat_s = SESSION_MS / 1000, HEARTBEAT_MS / 1000
    bound = session_s + 10.0  # session timeout + one rebalance, generously
    t_moved = wait_assignments(survivors, None, PARTITIONS, bound + 5,
                               "the survivors to take over the victim's partitions")
    moved_after = t_moved - t_kill
    print(f"{strategy}: partitions moved {moved_after:.2f} s after the kill "
          f"(session.timeout.ms={SESSION_MS})")
    assert moved_after <= bound, f"partitions moved only after {moved_after:.1f} s"
    # No LeaveGroup was sent: only the session timeout can have removed the victim.
    assert moved_after >= session_s - heartbeat_s - 0.5, (
        f"partitions moved {moved_after:.1f} s after the kill, before the session timeout")
    for m in survivors:
        assert len(m.assignment()) == 3, {s.name: s.assignment() for s in survivors}
    if strategy == "cooperative-sticky":
        for m in survivors:
            assert set(before[m.name]) <= set(m.assignment()), (
                f"cooperative-sticky moved {m.name}'s own partitions: "
                f"{before[m.name]} -> {m.assignment()}")
            assert not [e for e in m.events("revoke", "lost") if e["t"] > t_kill], (
                f"cooperative-sticky revoked partitions of {m.name}")

    records = {**first, **second}
    wait_until(lambda: consumed_all(ms, records), 60, "the group to consume everything")

    # Every record was consumed, with the value produced at its offset.
    for m in ms:
        for p, o, v, _ in m.consumed():
            assert records[(p, o)] == v, f"{p}/{o}: consumed {v!r}, produced {records[(p, o)]!r}"
    # The victim's partitions resumed exactly at the offsets committed when it died.
    for p in victim_parts:
        after = sorted(o for m in survivors for q, o, _, t in m.consumed(after=t_kill) if q == p)
        assert after == list(range(at_kill[p], end_offsets(records, PARTITIONS)[p])), (
            f"partition {p} (committed {at_kill[p]} at the kill): consumed after the move "
            f"{after[:5]}…{after[-5:]} ({len(after)} records)")
    # Nothing committed was consumed again, by anyone, at any time.
    assert_no_committed_record_reconsumed(
        ms, extra_commits=[(t_kill, p, at_kill[p]) for p in victim_parts])
    # The survivors' own partitions were never consumed twice.
    counts = collections.Counter((p, o) for m in ms for p, o, _, _ in m.consumed())
    dups = [k for k, c in counts.items() if c > 1]
    assert all(k[0] in victim_parts for k in dups), f"duplicates outside the victim's: {dups}"
    assert all(owner[p] is victim for p, _ in dups)

    for m in survivors:
        m.close()
    final = committed(gbroker.bootstrap, group, topic, PARTITIONS)
    assert final == end_offsets(records, PARTITIONS), final
