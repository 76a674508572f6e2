"""Shared pieces of the consumer-group tests (test_group*.py): a broker fixture with
fast group settings, member processes (group_member.py) and their logs, producing
numbered records, and reading committed offsets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from harness import Broker, wait_until

HERE = Path(__file__).resolve().parent
MEMBER_SCRIPT = HERE / "group_member.py"

#: Fast groups for tests: no initial rebalance delay, short sessions allowed, and offsets
#: kept as long as by default.
FAST_GROUPS = {
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 1000,
}

#: librdkafka's session timeout and heartbeat interval used by most group tests.
SESSION_MS = 6000
HEARTBEAT_MS = 500


def start_broker(request, tmp_path: Path, config: Optional[dict]) -> Broker:
    b = Broker(tmp_path / "data", tmp_path / "strata-serve.stderr", config=config)
    # conftest.py attaches this broker's stderr to the report of a failed test.
    request.node.strata_broker = b
    b.start()
    return b


@pytest.fixture
def gbroker(request, tmp_path):
    """A broker with FAST_GROUPS settings (a test may override them by parametrizing
    `broker_config` indirectly)."""
    config = dict(FAST_GROUPS)
    config.update(getattr(request, "param", None) or {})
    b = start_broker(request, tmp_path, config)
    yield b
    if b.running():
        b.stop()


class Member:
    """A group_member.py process and its JSON-lines log."""

    def __init__(self, name: str, out: Path, cmd: list[str]):
        self.name = name
        self.out = out
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(out.with_suffix(".stderr"), "ab"),
        )
        self.started_at = time.monotonic()

    # -- the log ---------------------------------------------------------------------------

    def events(self, *kinds: str) -> list[dict]:
        try:
            text = self.out.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            if not line.endswith("}"):
                continue  # a line still being written
            e = json.loads(line)
            if not kinds or e["ev"] in kinds:
                out.append(e)
        return out

    def assignment(self) -> Optional[list[int]]:
        """The last full assignment the member reported (None before the first)."""
        a = self.events("assignment")
        return a[-1]["parts"] if a else None

    def consumed(self, after: float = float("-inf")) -> list[tuple[int, int, str, float]]:
        """(partition, offset, value, time) of every record consumed after `after`."""
        return [(e["p"], e["o"], e["v"], e["t"]) for e in self.events("msg") if e["t"] > after]

    def commits(self) -> list[dict]:
        return self.events("commit")

    def last_committed(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for e in self.commits():
            for p, o in e["offsets"].items():
                out[int(p)] = max(out.get(int(p), 0), o)
        return out

    def check_alive(self) -> bool:
        crash = self.events("crash")
        assert not crash, f"member {self.name} crashed: {crash}\n{self.stderr()}"
        code = self.proc.poll()
        assert code is None, f"member {self.name} exited with {code}\n{self.stderr()}"
        return True

    def stderr(self) -> str:
        try:
            return self.out.with_suffix(".stderr").read_text()[-4000:]
        except FileNotFoundError:
            return ""

    # -- signals ---------------------------------------------------------------------------

    def kill(self) -> float:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        return time.monotonic()

    def stop_process(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def cont_process(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def close(self, timeout: float = 30.0) -> None:
        """SIGTERM: the member closes its consumer and exits 0."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        assert code == 0, f"member {self.name} exited with {code}\n{self.stderr()}"
        assert self.events("closed"), f"member {self.name} did not log its close"

    def running(self) -> bool:
        return self.proc.poll() is None


@pytest.fixture
def members(tmp_path):
    """Starts group_member.py processes; kills whatever is left at teardown."""
    started: list[Member] = []

    def spawn(name: str, bootstrap: str, group: str, topic: str, *, client: str = "confluent",
              strategy: str = "range", session_ms: int = SESSION_MS,
              heartbeat_ms: int = HEARTBEAT_MS, instance_id: Optional[str] = None,
              delay_ms: float = 0.0, commit_on_cont: bool = False, batch: int = 20,
              fetch_bytes: int = 0, pattern: Optional[str] = None) -> Member:
        out = tmp_path / f"member-{name}-{len(started)}.jsonl"
        cmd = [sys.executable, str(MEMBER_SCRIPT), "--client", client,
               "--bootstrap", bootstrap, "--group", group, "--topic", topic,
               "--out", str(out), "--strategy", strategy,
               "--session-ms", str(session_ms), "--heartbeat-ms", str(heartbeat_ms),
               "--delay-ms", str(delay_ms), "--batch", str(batch),
               "--fetch-bytes", str(fetch_bytes)]
        if instance_id:
            cmd += ["--instance-id", instance_id]
        if pattern:
            cmd += ["--pattern", pattern]
        if commit_on_cont:
            cmd.append("--commit-on-cont")
        m = Member(name, out, cmd)
        started.append(m)
        return m

    yield spawn
    for m in started:
        if m.proc.poll() is None:
            m.proc.send_signal(signal.SIGKILL)  # also ends a SIGSTOPped process
            m.proc.wait(10)


def wait_assignments(ms: list[Member], expected: dict[str, list[int]] | None, partitions: int,
                     timeout: float, what: str) -> float:
    """Polls until the members' reported assignments are disjoint, cover every partition
    and (when `expected` is given) equal it per member name, or are balanced otherwise.
    Returns the moment it held."""

    def ok():
        for m in ms:
            m.check_alive()
        got = {m.name: m.assignment() for m in ms}
        if any(a is None for a in got.values()):
            return False
        flat = [p for a in got.values() for p in a]
        if sorted(flat) != list(range(partitions)):
            return False
        if expected is not None:
            return got == expected
        sizes = [len(a) for a in got.values()]
        return max(sizes) - min(sizes) <= 1

    def describe():
        return {m.name: m.assignment() for m in ms}

    try:
        wait_until(ok, timeout, what, interval=0.02)
    except AssertionError as e:
        raise AssertionError(f"{e}; assignments: {describe()}") from None
    return time.monotonic()


def produce(bootstrap: str, topic: str, partitions: int, n: int, tag: str,
            start: int = 0) -> dict[tuple[int, int], str]:
    """n records, spread evenly over the partitions, in batches of at most 10 records (so
    small consumer fetches interleave partitions); (partition, offset) -> value."""
    got: dict[tuple[int, int], str] = {}
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            got[(msg.partition(), msg.offset())] = msg.value().decode()

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "batch.num.messages": 10, "enable.idempotence": True})
    for i in range(start, start + n):
        while True:
            try:
                p.produce(topic, value=f"{tag}-{i}".encode(), partition=i % partitions,
                          on_delivery=report)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(60) == 0, "records not delivered in 60 s"
    assert not errors, f"delivery errors: {errors[:5]}"
    assert len(got) == n
    return got


def committed(bootstrap: str, group: str, topic: str, partitions: int,
              timeout: float = 10.0) -> dict[int, int]:
    """OffsetFetch through confluent-kafka's committed(): partition -> offset (-1001 =
    nothing committed). The consumer never subscribes, so it does not join the group."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=timeout)
        for tp in tps:
            assert tp.error is None, f"OffsetFetch {group} {topic}/{tp.partition}: {tp.error}"
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def commit_start(bootstrap: str, group: str, topic: str, partitions: int) -> None:
    """Commits offset 0 of every partition for an Empty group (generation -1), so members
    start from a committed offset and never need auto.offset.reset.

    Why: librdkafka 2.16.0 has a client-side race — when an eager rebalance revokes a
    partition while its ListOffsets(BEGINNING) is in flight (members joining one after
    another), the outdated reply restarts the offset query and fetching for the no longer
    assigned partition; if the partition comes back later, those stale records (from
    offset 0) reach the application before the committed offset applies (seen with
    debug=fetch: "outdated offset response: (re)starting offset query timer", then
    "Fetch topic T [p] at offset 0 (v5)" after "Stop consuming T [p] (v4)"). The broker
    answered OffsetFetch correctly; with a committed offset the client takes no
    ListOffsets path."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        res = c.commit(offsets=[TopicPartition(topic, p, 0) for p in range(partitions)],
                       asynchronous=False)
        assert all(tp.error is None for tp in res), res
    finally:
        c.close()


def end_offsets(records: dict[tuple[int, int], str], partitions: int) -> dict[int, int]:
    out = {p: 0 for p in range(partitions)}
    for p, o in records:
        out[p] = max(out[p], o + 1)
    return out
