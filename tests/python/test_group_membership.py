"""Group membership seen from real librdkafka members (group_member.py processes): the
initial rebalance delay gathers members that start together into one generation; a static
member (`group.instance.id`) replaced by a new process keeps its partitions without a
rebalance; a member paused past its session timeout is fenced — its partitions go to the
others, its commits fail — and it rejoins and carries on."""

from __future__ import annotations

import time

import pytest

from groupkit import HEARTBEAT_MS, commit_start, committed, end_offsets, gbroker, members, produce  # noqa: F401,E501
from groupkit import wait_assignments
from harness import wait_until
from kclients import create_topic
from test_groups import assert_no_committed_record_reconsumed, consumed_all

PARTITIONS = 6


def all_committed(m) -> bool:
    done = m.last_committed()
    return all(done.get(p, 0) > o for p, o, _, _ in m.consumed())


@pytest.mark.parametrize("gbroker", [{"group.initial.rebalance.delay.ms": 3000}], indirect=True)
def test_initial_delay_gathers_members_starting_together_into_one_generation(gbroker, members):
    """Kafka's default group.initial.rebalance.delay.ms (3 s): three members started
    together get their final assignment in the first generation — one assignment each,
    nothing revoked."""
    topic, group = "together", "together"
    create_topic(gbroker.bootstrap, topic, PARTITIONS)
    ms = [members(n, gbroker.bootstrap, group, topic) for n in ("a", "b", "c")]
    t_first = min(m.started_at for m in ms)
    wait_assignments(ms, None, PARTITIONS, 60, "three members with 2 partitions each")
    for m in ms:
        assigns = m.events("assign")
        assert len(assigns) == 1 and len(assigns[0]["parts"]) == 2, (
            f"{m.name} went through several generations: {m.events('assign', 'revoke')}")
        assert not m.events("revoke", "lost"), f"{m.name}: {m.events('revoke', 'lost')}"
        waited = assigns[0]["t"] - t_first
        # The first JoinGroup came after the first process started: the group waited
        # at least the delay from then.
        assert waited >= 3.0, f"{m.name} was assigned {waited:.2f} s after the first start"
    produce(gbroker.bootstrap, topic, PARTITIONS, 60, "t")
    for m in ms:
        m.close()


@pytest.mark.parametrize("how", ["close", "sigkill"])
def test_static_member_replaced_keeps_partitions_without_rebalance(gbroker, members, how):
    """librdkafka static membership: the old process closes (a static member does not
    send LeaveGroup) or is SIGKILLed; a new process with the same group.instance.id
    rejoins within the session timeout, gets the same partitions and resumes at its
    commits; the other members see no rebalance. Nothing hangs. The members that close
    subscribe by regex, the others by name."""
    topic, group, session_ms = "static", f"static-{how}", 6000
    create_topic(gbroker.bootstrap, topic, PARTITIONS)
    commit_start(gbroker.bootstrap, group, topic, PARTITIONS)
    pattern = "^stati[c]$" if how == "close" else None

    def spawn(name, instance):
        return members(name, gbroker.bootstrap, group, topic, instance_id=instance,
                       session_ms=session_ms, pattern=pattern)

    # a first, alone, so that it is the leader (a restarted static leader rebalances
    # unless it speaks JoinGroup v9; librdkafka does not).
    a = spawn("a", "static-a")
    wait_assignments([a], None, PARTITIONS, 60, "a to own every partition")
    b, c = spawn("b", "static-b"), spawn("c", "static-c")
    wait_assignments([a, b, c], None, PARTITIONS, 60, "three static members, 2 partitions each")
    first = produce(gbroker.bootstrap, topic, PARTITIONS, 300, "one")
    wait_until(lambda: consumed_all([a, b, c], first), 60, "the group to consume 300 records")
    callbacks = {m.name: len(m.events("assign", "revoke", "lost")) for m in (a, c)}
    assignments = {m.name: m.assignment() for m in (a, c)}
    b_parts = b.assignment()
    # A member logs a record before it commits its batch: wait until b's commits cover
    # everything it consumed, or a SIGKILL may lose the last commit (and b2 rightly reads
    # those records again — at-least-once, not what this test is about).
    def b_committed_all():
        done: dict[int, int] = {}
        for p, o, _, _ in b.consumed():
            done[p] = max(done.get(p, 0), o + 1)
        last = b.last_committed()
        return all(last.get(p, 0) >= o for p, o in done.items())

    wait_until(b_committed_all, 30, "b's commits to cover what it consumed")

    if how == "close":
        b.close()
    else:
        b.kill()
    t_gone = time.monotonic()
    b2 = spawn("b2", "static-b")
    wait_until(lambda: b2.check_alive() and b2.assignment() == b_parts, session_ms / 1000 + 20,
               f"the new static-b process to get {b_parts} back")
    back_after = b2.events("assign")[0]["t"] - t_gone
    print(f"{how}: static-b back with {b_parts} {back_after:.2f} s after the old process ended")
    assert back_after < session_ms / 1000, (
        f"static-b got its partitions back only {back_after:.1f} s later (session {session_ms} ms)")
    assert [e["parts"] for e in b2.events("assign")] == [b_parts]

    second = produce(gbroker.bootstrap, topic, PARTITIONS, 300, "two", start=300)
    wait_until(lambda: consumed_all([a, b2, c], second), 60, "the group to consume 300 more")
    # Past the moment the old session would have expired, nothing moved.
    quiet_until = t_gone + session_ms / 1000 + 3
    while time.monotonic() < quiet_until:
        for m in (a, b2, c):
            m.check_alive()
        time.sleep(0.2)
    for m in (a, c):
        extra = m.events("assign", "revoke", "lost")[callbacks[m.name]:]
        assert not extra, f"{m.name} saw a rebalance after static-b's restart: {extra}"
        assert m.assignment() == assignments[m.name]
    assert b2.assignment() == b_parts and len(b2.events("assign")) == 1
    # b2 took over at b's commits: b's records were not consumed again.
    assert_no_committed_record_reconsumed([a, b, b2, c])
    assert not [(p, o) for p, o, _, _ in b2.consumed() if (p, o) in first], (
        "the new process re-read records the old one had committed")
    for m in (a, b2, c):
        m.close()
    assert committed(gbroker.bootstrap, group, topic, PARTITIONS) == \
        end_offsets({**first, **second}, PARTITIONS)


def test_member_paused_past_session_timeout_is_fenced_and_rejoins(gbroker, members):
    """SIGSTOP a member for longer than its session timeout: the broker expires it and
    gives its partitions to the other member; on SIGCONT its commit fails, it loses its
    partitions, rejoins, and consumes again."""
    topic, group, session_ms = "fenced", "fenced", 4000
    create_topic(gbroker.bootstrap, topic, PARTITIONS)
    commit_start(gbroker.bootstrap, group, topic, PARTITIONS)
    a = members("a", gbroker.bootstrap, group, topic, session_ms=session_ms, commit_on_cont=True)
    b = members("b", gbroker.bootstrap, group, topic, session_ms=session_ms)
    wait_assignments([a, b], None, PARTITIONS, 60, "a and b with 3 partitions each")
    first = produce(gbroker.bootstrap, topic, PARTITIONS, 300, "one")
    wait_until(lambda: consumed_all([a, b], first), 60, "the group to consume 300 records")
    # a's last commit has returned (else its answer, given before the pause, would be
    # read only after SIGCONT).
    wait_until(lambda: all_committed(a), 30, "a's commits to cover what it consumed")

    a_parts = a.assignment()
    a.stop_process()
    t_stop = time.monotonic()
    bound = session_ms / 1000 + 10.0
    t_moved = wait_assignments([b], None, PARTITIONS, bound, "b to own every partition")
    moved_after = t_moved - t_stop
    print(f"a paused: its partitions moved to b {moved_after:.2f} s later")
    assert (session_ms - HEARTBEAT_MS) / 1000 - 0.5 <= moved_after <= bound
    second = produce(gbroker.bootstrap, topic, PARTITIONS, 300, "two", start=300)
    wait_until(lambda: consumed_all([b], second), 60, "b to consume what came while a was paused")

    t_cont = time.monotonic()  # before the signal: a logs its commit at once
    a.cont_process()

    def commit_outcome():
        a.check_alive()
        return [e for e in a.events("commit", "commit_err") if e["t"] > t_cont]

    outcome = wait_until(commit_outcome, 30, "a's commit after SIGCONT to finish")
    assert outcome[0]["ev"] == "commit_err", (
        f"a commit from the fenced member succeeded: {outcome[0]}")
    print(f"a's commit after SIGCONT failed with: {outcome[0]['err']}")
    lost = wait_until(lambda: [e for e in a.events("revoke", "lost") if e["t"] > t_cont], 30,
                      "a to lose its partitions")
    t_lost = lost[0]["t"]
    # Between SIGCONT and learning it was fenced, a may still fetch (Fetch carries no
    # group generation); whatever it read then must be from its old partitions.
    stale = {p for p, _, _, t in a.consumed(t_cont) if t <= t_lost}
    assert stale <= set(a_parts), f"a read {stale} while fenced; it had owned {a_parts}"
    wait_assignments([a, b], None, PARTITIONS, 30, "a to rejoin: 3 partitions each")
    rejoined = [e for e in a.events("assign") if e["t"] > t_cont]
    assert rejoined and rejoined[-1]["parts"], "a did not get partitions after rejoining"

    third = produce(gbroker.bootstrap, topic, PARTITIONS, 300, "three", start=600)
    wait_until(lambda: consumed_all([a, b], third), 60, "the group to consume 300 more")
    assert any(v.startswith("three") for _, _, v, _ in a.consumed()), "a did not consume again"
    assert_no_committed_record_reconsumed([a, b], zombie=("a", t_cont, t_lost))
    for m in (a, b):
        m.close()
    assert committed(gbroker.bootstrap, group, topic, PARTITIONS) == \
        end_offsets({**first, **second, **third}, PARTITIONS)
