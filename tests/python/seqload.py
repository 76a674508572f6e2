"""Numbered, keyed records written under faults, and the checks that a log holds them
(test_cluster.py's failover run, test_soak.py).

A `Numbering` says what record `seq` of a stream looks like (value, key, partition).
`SeqProducer` is a thread that writes records 0, 1, 2, … of one numbering with an
idempotent acks=all confluent-kafka producer and keeps every delivery report.
`read_back` reads a topic from offset 0 to its high watermarks with a fresh assign()
consumer; `log_problems` lists everything in such a read-back log that contradicts
what the producers were told (an acknowledged record missing from its offset, a record
stored twice, out of send order, in the wrong partition, or never sent), and
`assert_log_holds` fails on any of them. `GroupReader` is a group member reading along
with the producers; `committed_offsets` reads what a group committed.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Optional

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from cluster_harness import wait_for
from kclients import read_partitions, watermarks

#: A SeqProducer's default pace, and its bound on records awaiting a delivery report.
RATE_PER_S = 1000
BURST = 20
MAX_IN_FLIGHT = 5000
#: How many problems of each kind a failure message quotes.
QUOTED = 5


@dataclass(frozen=True)
class Numbering:
    """Record `seq` of a stream: value `tag` + b"%09d" % seq, key b"key-%02d" % (seq %
    keys), partition (seq % keys) % partitions; so a key always goes to one partition.
    Streams with different tags can share a topic and still be told apart."""

    partitions: int
    keys: int = 24
    tag: bytes = b""

    def key_of(self, seq: int) -> bytes:
        return b"key-%02d" % (seq % self.keys)

    def partition_of(self, seq: int) -> int:
        return (seq % self.keys) % self.partitions

    def value_of(self, seq: int) -> bytes:
        return self.tag + b"%09d" % seq

    def seq_of(self, value: Optional[bytes]) -> Optional[int]:
        """The seq whose value this is, or None when it is no value of this stream."""
        if value is None or not value.startswith(self.tag):
            return None
        body = value[len(self.tag):]
        return int(body) if len(body) == 9 and body.isdigit() else None


class SeqProducer(threading.Thread):
    """An idempotent acks=all producer sending records 0, 1, 2, … of `numbering` at
    `rate_per_s` until stopped; keeps every delivery report and when each record was
    sent and acknowledged. Transport errors (a broker down) are counted in `errors`;
    fatal ones fail `check`. `config` adds client settings (e.g. a "logger")."""

    def __init__(self, bootstrap: str, topic: str, numbering: Numbering,
                 rate_per_s: int = RATE_PER_S, config: Optional[dict] = None):
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.config = dict(config or {})
        self.topic = topic
        self.numbering = numbering
        self.rate_per_s = rate_per_s
        self.lock = threading.Lock()
        self.acked: list[tuple[int, int, int]] = []  # (partition, offset, seq)
        #: partition -> [(seq, acknowledged at, monotonic)] in acknowledgement order.
        self.acks_by_partition: dict[int, list[tuple[int, float]]] = collections.defaultdict(list)
        self.sent_at: list[float] = []  # index: seq
        self.failed: list[tuple[int, str]] = []
        self.fatal: list[str] = []
        self.errors = 0
        self.crashed: Optional[BaseException] = None
        self.unflushed: Optional[int] = None
        self.stopping = threading.Event()

    # -- read by the test thread -------------------------------------------------------

    @property
    def sent(self) -> int:
        return len(self.sent_at)

    def snapshot(self) -> list[tuple[int, int, int]]:
        with self.lock:
            return list(self.acked)

    def acked_on(self, partition: int) -> int:
        with self.lock:
            return len(self.acks_by_partition[partition])

    def first_ack_sent_after(self, partition: int, t: float) -> Optional[float]:
        """When the first record sent to `partition` after `t` was acknowledged, if one
        was. Acknowledgements within a partition come in send order, so those of records
        sent after `t` are a suffix of the list."""
        with self.lock:
            acks = self.acks_by_partition[partition]
            first = None
            for seq, acked_at in reversed(acks):
                if self.sent_at[seq] <= t:
                    break
                first = acked_at
            return first

    def check(self) -> bool:
        """True while the producer thread is healthy; fails otherwise."""
        assert self.crashed is None, f"producer thread died: {self.crashed!r}"
        assert not self.fatal, f"the idempotent producer hit fatal errors: {self.fatal}"
        assert self.is_alive(), "producer thread ended"
        return True

    def stop(self) -> None:
        self.stopping.set()
        self.join(120)

    def finish_problems(self) -> dict[str, list[str]]:
        """After `stop`, what went wrong (kind -> lines): the thread still running or
        dead, fatal errors, records without a delivery report after the final flush,
        failed deliveries (their records may or may not be in the log)."""
        out: dict[str, list[str]] = {}
        if self.is_alive():
            out["producer thread"] = ["did not finish"]
        if self.crashed is not None:
            out["producer thread"] = [f"died: {self.crashed!r}"]
        if self.fatal:
            out["producer fatal"] = list(self.fatal)
        if self.unflushed:
            out["undelivered"] = [f"{self.unflushed} records still undelivered after 90 s"]
        if self.failed:
            out["delivery failed"] = [f"{self.numbering.value_of(seq)!r}: {err}"
                                      for seq, err in self.failed]
        return out

    def assert_finished_cleanly(self) -> list[tuple[int, int, int]]:
        """After `stop`: the thread ended without errors and every record sent was
        acknowledged; returns the acknowledgements (partition, offset, seq)."""
        problems = self.finish_problems()
        assert not problems, f"the producer did not finish cleanly:\n{describe(problems)}"
        acked = self.snapshot()
        assert len(acked) == self.sent, f"{self.sent} sent, {len(acked)} acknowledged"
        return acked

    # -- the producer thread ----------------------------------------------------------

    def _report(self, err, msg):
        seq = self.numbering.seq_of(msg.value())
        now = time.monotonic()
        with self.lock:
            if err is not None:
                self.failed.append((seq, str(err)))
            else:
                self.acked.append((msg.partition(), msg.offset(), seq))
                self.acks_by_partition[msg.partition()].append((seq, now))

    def _error(self, err):
        # Transport errors are expected while a broker is down; fatal ones are not.
        with self.lock:
            self.errors += 1
            if err.fatal():
                self.fatal.append(str(err))

    def run(self):
        try:
            p = Producer({
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 60000,
                "reconnect.backoff.ms": 20,
                "reconnect.backoff.max.ms": 500,
                "error_cb": self._error,
                **self.config,
            })
            self._send_until_stopped(p)
            self.unflushed = p.flush(90)
        except BaseException as e:  # surfaced by check() and the tests
            self.crashed = e

    def _send_until_stopped(self, p: Producer) -> None:
        n = self.numbering
        next_burst = time.monotonic()
        while not self.stopping.is_set():
            for _ in range(BURST):
                seq = len(self.sent_at)
                with self.lock:
                    self.sent_at.append(time.monotonic())
                p.produce(self.topic, key=n.key_of(seq), value=n.value_of(seq),
                          partition=n.partition_of(seq), on_delivery=self._report)
            next_burst += BURST / self.rate_per_s
            while (now := time.monotonic()) < next_burst:
                p.poll(next_burst - now)
            # While partitions fail over, reports stall: don't pile up without bound,
            # and don't burst to catch up afterwards.
            while len(p) > MAX_IN_FLIGHT and not self.stopping.is_set():
                p.poll(0.05)
            next_burst = max(next_burst, time.monotonic() - 1.0)


class GroupReader(threading.Thread):
    """A confluent-kafka group member (subscribe; offsets auto-committed every second
    and at close) reading `topic` along with the producers until stopped. Keeps every
    record it was handed as (partition, offset, value) and counts what the client
    reported as errors, which are expected while brokers die: an error never ends the
    loop. `config` adds client settings (e.g. a "logger")."""

    def __init__(self, bootstrap: str, topic: str, group: str, config: Optional[dict] = None):
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.config = dict(config or {})
        self.topic = topic
        self.group = group
        self.lock = threading.Lock()
        self.seen: list[tuple[int, int, bytes]] = []
        #: partition -> the highest offset handed out.
        self.top: dict[int, int] = {}
        self.errors = 0
        self.last_error = ""
        self.crashed: Optional[BaseException] = None
        self.stopping = threading.Event()

    def reached(self, ends: dict[int, int]) -> tuple[bool, str]:
        """(whether every partition p was read up to offset ends[p] - 1, what is missing)."""
        with self.lock:
            behind = {p: self.top.get(p, -1) + 1 for p, end in ends.items()
                      if self.top.get(p, -1) + 1 < end}
        return not behind, f"read up to {behind} of {ends}"

    def stop(self) -> None:
        self.stopping.set()
        self.join(60)
        assert not self.is_alive(), "group reader did not close within 60 s"
        assert self.crashed is None, f"group reader died: {self.crashed!r}"

    def _note(self, err) -> None:
        with self.lock:
            self.errors += 1
            self.last_error = str(err)

    def run(self):
        try:
            c = Consumer({
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "enable.auto.commit": True,
                "auto.commit.interval.ms": 1000,
                "auto.offset.reset": "earliest",
                "reconnect.backoff.ms": 20,
                "reconnect.backoff.max.ms": 500,
                "error_cb": self._note,
                **self.config,
            })
            c.subscribe([self.topic])
            try:
                self._read_until_stopped(c)
            finally:
                c.close()
        except BaseException as e:  # surfaced by stop()
            self.crashed = e

    def _read_until_stopped(self, c: Consumer) -> None:
        while not self.stopping.is_set():
            try:
                msgs = c.consume(num_messages=500, timeout=0.5)
            except KafkaException as e:
                self._note(e)
                continue
            for m in msgs:
                if m.error() is not None:
                    self._note(m.error())
                    continue
                with self.lock:
                    self.seen.append((m.partition(), m.offset(), m.value()))
                    self.top[m.partition()] = max(self.top.get(m.partition(), -1), m.offset())


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int,
                      timeout: float = 60.0) -> dict[int, int]:
    """partition -> the offset `group` committed (negative: none), asked again while the
    coordinator answers with errors (loading, moving) until `timeout`."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    tps = [TopicPartition(topic, p) for p in range(partitions)]

    def answer():
        try:
            got = c.committed(tps, timeout=10)
        except KafkaException as e:
            return None, str(e)
        bad = [(tp.partition, str(tp.error)) for tp in got if tp.error is not None]
        return (None if bad else {tp.partition: tp.offset for tp in got}), f"partition errors {bad}"

    try:
        return wait_for(answer, timeout, f"the offsets {group} committed", interval=0.2)
    finally:
        c.close()


def read_back(bootstrap: str, topic: str, partitions: int,
              acked: Iterable[tuple[int, int, object]]) -> dict[int, list]:
    """A fresh assign() consumer reads every partition from 0 to its high watermark
    (partition -> kclients.Rec); asserts the watermarks cover every acknowledged
    (partition, offset, …)."""
    marks = watermarks(bootstrap, topic, partitions)
    top = {p: -1 for p in range(partitions)}
    for p, o, _ in acked:
        top[p] = max(top[p], o)
    for p in range(partitions):
        assert marks[p][0] == 0 and marks[p][1] > top[p], (
            f"partition {p}: watermarks {marks[p]} do not cover acknowledged offset {top[p]}"
        )
    return read_partitions(bootstrap, topic, {p: marks[p][1] for p in range(partitions)})


def owner_of(value: Optional[bytes],
             streams: Iterable[Numbering]) -> Optional[tuple[Numbering, int]]:
    """(the stream, seq) a value belongs to, or None when no stream has it."""
    for n in streams:
        seq = n.seq_of(value)
        if seq is not None:
            return n, seq
    return None


def log_problems(topic: str, log: dict[int, list], acked: dict[Numbering, list],
                 sent: Optional[dict[Numbering, int]] = None) -> dict[str, list[str]]:
    """What in `log` (partition -> kclients.Rec, read from offset 0 to the high
    watermark) contradicts the streams' acknowledgements `acked` (numbering ->
    [(partition, offset, seq)]) and, when given, how many records each stream `sent`:
    kind -> one line per problem. Kinds: "offsets" (not 0..n-1), "never sent",
    "misplaced" (wrong partition or key), "duplicate", "out of order" (within a stream
    and partition), "lost" (an acknowledged record not at its acknowledged offset)."""
    problems: dict[str, list[str]] = collections.defaultdict(list)
    placed: dict[Numbering, dict[int, int]] = {n: {} for n in acked}  # seq -> partition
    for p, recs in sorted(log.items()):
        if [r.offset for r in recs] != list(range(len(recs))):
            problems["offsets"].append(f"{topic}/{p}: offsets are not 0..{len(recs) - 1}")
        last: dict[Numbering, int] = {}
        for r in recs:
            owner = owner_of(r.value, acked)
            if owner is None or (sent is not None and owner[1] >= sent[owner[0]]):
                problems["never sent"].append(f"{topic}/{p} offset {r.offset}: {r.value!r}")
                continue
            n, s = owner
            if (n.partition_of(s), r.key) != (p, n.key_of(s)):
                problems["misplaced"].append(
                    f"{topic}/{p} offset {r.offset}: {r.value!r} with key {r.key!r} belongs "
                    f"in partition {n.partition_of(s)} with key {n.key_of(s)!r}")
            if s in placed[n]:
                problems["duplicate"].append(
                    f"{topic}/{p} offset {r.offset}: {r.value!r} already stored in "
                    f"partition {placed[n][s]}")
            placed[n][s] = p
            if n in last and s <= last[n]:
                problems["out of order"].append(
                    f"{topic}/{p} offset {r.offset}: {r.value!r} after {n.value_of(last[n])!r}")
            last[n] = max(s, last.get(n, s))
    for n, rows in acked.items():
        for p, o, s in rows:
            recs = log.get(p, [])
            got = recs[o].value if o < len(recs) else None
            if got != n.value_of(s):
                problems["lost"].append(
                    f"acknowledged {n.value_of(s)!r} at {topic}/{p} offset {o}; the log holds "
                    f"{'nothing' if got is None else repr(got)} there (high watermark {len(recs)})")
    return dict(problems)


def describe(problems: dict[str, list[str]]) -> str:
    """A failure message: the count of each kind and its first few lines."""
    return "\n".join(
        f"{len(lines)} {kind}:\n  " + "\n  ".join(lines[:QUOTED])
        for kind, lines in sorted(problems.items())
    )


def assert_log_holds(topic: str, log: dict[int, list], acked: dict[Numbering, list],
                     sent: Optional[dict[Numbering, int]] = None) -> None:
    """Fails when `log_problems` finds anything: offsets 0..n-1, each sent record at
    most once, in its partition with its key, in send order per stream and partition,
    and every acknowledged record at its acknowledged offset."""
    problems = log_problems(topic, log, acked, sent)
    assert not problems, f"{topic} does not hold what was acknowledged:\n{describe(problems)}"
