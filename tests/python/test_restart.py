"""Acknowledged writes survive a clean restart and a kill -9 while a producer keeps
sending; offsets are never reused; the idempotent producer rides through both without a
duplicate or a lost record; the logs verify clean afterwards."""

from __future__ import annotations

import collections
import threading

from confluent_kafka import Producer

from harness import wait_until
from kclients import create_topic, read_partitions, watermarks

TOPIC = "restart"
PARTITIONS = 3
#: Acknowledgements to wait for in each phase (before the stop, after each restart).
PHASE_ACKS = 3000


class AckingProducer(threading.Thread):
    """Sends numbered values until stopped; records every delivery report."""

    def __init__(self, bootstrap: str):
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.lock = threading.Lock()
        self.acked: list[tuple[int, int, bytes]] = []  # (partition, offset, value)
        self.failed: list[tuple[bytes, str]] = []
        self.fatal: list[str] = []
        self.sent = 0
        self.unflushed = None
        self.crashed: BaseException | None = None
        self.stopping = threading.Event()

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def snapshot(self) -> list[tuple[int, int, bytes]]:
        with self.lock:
            return list(self.acked)

    def _report(self, err, msg):
        with self.lock:
            if err is not None:
                self.failed.append((msg.value(), str(err)))
            else:
                self.acked.append((msg.partition(), msg.offset(), msg.value()))

    def _error(self, err):
        # Broker-down and transport errors are expected during restarts; fatal ones
        # (the idempotent producer giving up) are not.
        if err.fatal():
            with self.lock:
                self.fatal.append(str(err))

    def run(self):
        try:
            p = Producer({
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "message.timeout.ms": 120000,
                "reconnect.backoff.ms": 20,
                "reconnect.backoff.max.ms": 200,
                "error_cb": self._error,
            })
            i = 0
            while not self.stopping.is_set():
                for _ in range(50):
                    p.produce(TOPIC, key=b"k%d" % (i % 40), value=b"v%08d" % i,
                              on_delivery=self._report)
                    i += 1
                self.sent = i
                # Keep a bounded number in flight: wait for delivery reports.
                while len(p) > 1000 and not self.stopping.is_set():
                    p.poll(0.05)
                p.poll(0)
            self.unflushed = p.flush(90)
        except BaseException as e:  # surfaced by the test
            self.crashed = e


def max_offsets(acked) -> dict[int, int]:
    out = {p: -1 for p in range(PARTITIONS)}
    for p, o, _ in acked:
        out[p] = max(out[p], o)
    return out


def probe_offsets(bootstrap: str) -> dict[int, int]:
    """Produces one record to each partition synchronously; their offsets."""
    got, errors = {}, []
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for part in range(PARTITIONS):
        p.produce(TOPIC, value=b"probe-%d" % part, partition=part,
                  on_delivery=lambda err, msg: errors.append(err) if err else
                  got.__setitem__(msg.partition(), msg.offset()))
    assert p.flush(60) == 0, "probe records not delivered in 60 s"
    assert not errors, errors
    return got


def assert_after(before: dict[int, int], probe: dict[int, int], what: str) -> None:
    for part in range(PARTITIONS):
        assert probe[part] > before[part], (
            f"after {what}: partition {part} gave a new record offset {probe[part]}, "
            f"but offset {before[part]} was already acknowledged before"
        )


def test_acknowledged_writes_survive_sigterm_and_sigkill(broker):
    create_topic(broker.bootstrap, TOPIC, PARTITIONS)
    prod = AckingProducer(broker.bootstrap)
    prod.start()
    probes: list[bytes] = []

    def acks_reach(n):
        assert prod.crashed is None, f"producer thread died: {prod.crashed!r}"
        assert prod.is_alive(), "producer thread ended"
        return prod.acked_count() >= n

    try:
        # (a) SIGTERM while producing, then restart.
        wait_until(lambda: acks_reach(PHASE_ACKS), 60, f"{PHASE_ACKS} acknowledgements")
        broker.stop()
        before = max_offsets(prod.snapshot())
        broker.start()
        n = prod.acked_count()
        wait_until(lambda: acks_reach(n + PHASE_ACKS), 60, "acknowledgements after the restart")
        probe = probe_offsets(broker.bootstrap)
        assert_after(before, probe, "SIGTERM + restart")
        probes += [b"probe-%d" % part for part in range(PARTITIONS)]

        # (b) SIGKILL while producing, then restart.
        broker.kill()
        before = max_offsets(prod.snapshot())
        broker.start()
        n = prod.acked_count()
        wait_until(lambda: acks_reach(n + PHASE_ACKS), 60, "acknowledgements after the kill -9")
        probe = probe_offsets(broker.bootstrap)
        assert_after(before, probe, "SIGKILL + restart")
        probes += [b"probe-%d" % part for part in range(PARTITIONS)]
    finally:
        prod.stopping.set()
        prod.join(120)
    assert not prod.is_alive(), "producer thread did not finish"
    assert prod.crashed is None, f"producer thread died: {prod.crashed!r}"
    assert prod.unflushed == 0, f"{prod.unflushed} records still undelivered after 90 s"
    assert not prod.fatal, f"the idempotent producer hit fatal errors: {prod.fatal}"
    assert not prod.failed, f"{len(prod.failed)} deliveries failed, first: {prod.failed[:5]}"

    acked = prod.snapshot()
    assert len(acked) == prod.sent, f"{prod.sent} sent, {len(acked)} acknowledged"
    # No offset was handed out twice.
    positions = collections.Counter((p, o) for p, o, _ in acked)
    reused = [pos for pos, c in positions.items() if c > 1]
    assert not reused, f"offsets acknowledged for two records: {reused[:10]}"
    # Within a partition, later sends got later offsets (the producer is idempotent).
    for part in range(PARTITIONS):
        seq = [(v, o) for p, o, v in acked if p == part]
        seq.sort()
        offsets = [o for _, o in seq]
        assert offsets == sorted(offsets), f"partition {part}: offsets not in send order"

    marks = watermarks(broker.bootstrap, TOPIC, PARTITIONS)
    top = max_offsets(acked)
    for part in range(PARTITIONS):
        assert marks[part][0] == 0 and marks[part][1] > top[part], (
            f"partition {part}: watermarks {marks[part]} do not cover acknowledged offset {top[part]}"
        )
    log = read_partitions(broker.bootstrap, TOPIC, {p: marks[p][1] for p in range(PARTITIONS)})

    # Every acknowledged record is at its offset.
    at = {(r.partition, r.offset): r.value for recs in log.values() for r in recs}
    for p, o, v in acked:
        assert at.get((p, o)) == v, f"acknowledged {v!r} at {p}/{o}; the log holds {at.get((p, o))!r}"
    # The log holds each sent value exactly once (no duplicate from a retry), plus the probes.
    values = collections.Counter(r.value for recs in log.values() for r in recs)
    dups = [v for v, c in values.items() if c > 1 and not v.startswith(b"probe-")]
    assert not dups, f"records stored twice: {dups[:10]}"
    assert set(values) == {v for _, _, v in acked} | set(probes)
    for part, recs in log.items():
        offsets = [r.offset for r in recs]
        assert offsets == list(range(len(recs))), f"partition {part}: offsets not 0..n-1"

    broker.stop()
    broker.assert_all_verified(min_dirs=PARTITIONS)
