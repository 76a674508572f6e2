"""Helpers of the transaction tests (test_transactions.py, test_cluster_transactions.py):
reading what read_committed and read_uncommitted consumers see, and the
consume-transform-produce scenario with eos_app.py."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from harness import wait_until
from kclients import consumer


def read_to_end(bootstrap: str, topics, isolation: str, timeout: float = 30.0,
                partitions: int = 3) -> list[bytes]:
    """Every record a consumer with `isolation` reads from offset 0 of each partition
    of `topics` up to its end (partition EOF), in per-partition order."""
    c = consumer(bootstrap, **{"isolation.level": isolation, "auto.offset.reset": "earliest"})
    tps = [TopicPartition(t, p, 0) for t in topics for p in range(partitions)]
    seen: dict[tuple[str, int], list[bytes]] = {(tp.topic, tp.partition): [] for tp in tps}
    pending = set(seen)
    try:
        c.assign(tps)
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, f"no end of {sorted(pending)} within {timeout} s"
            for m in c.consume(num_messages=1000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard((m.topic(), m.partition()))
                        continue
                    raise KafkaException(err)
                seen[(m.topic(), m.partition())].append(m.value())
    finally:
        c.close()
    return [v for key in sorted(seen) for v in seen[key]]


def in_partition_order(values: list[bytes]) -> list[bytes]:
    """`values` as read_to_end returns them: by topic, partition, then produce order."""
    def key(v: bytes):
        _, t, part, i = v.decode().split(":")
        return (t, int(part))
    return sorted(values, key=key)




def run_eos(bootstrap: Callable[[], str], partitions: int, tmp_path: Path,
            disruptions: dict[float, Optional[Callable[[], None]]], records: int = 2000) -> None:
    """Writes `records` per partition to `eos-in` (both `eos-in` and `eos-out` exist
    with `partitions` partitions), runs eos_app.py over them and, each time the
    committed output reaches a fraction in `disruptions`, SIGKILLs the app, runs that
    fraction's disruption (a broker kill, say) and starts the app again. Asserts that
    the committed output ends up holding every input record exactly once, in order per
    partition."""
    plain = Producer({"bootstrap.servers": bootstrap(), "linger.ms": 5})
    sent = []
    for part in range(partitions):
        for i in range(records):
            v = f"in:eos-in:{part}:{i}".encode()
            plain.produce("eos-in", value=v, partition=part)
            sent.append(v)
    assert plain.flush(30) == 0
    expected = [b"out:" + v for v in in_partition_order(sent)]

    def output() -> list[bytes]:
        return read_to_end(bootstrap(), ("eos-out",), "read_committed", partitions=partitions)

    def start_app() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("eos_app.py")), bootstrap(),
             "eos-in", "eos-out", "eos-group", "eos-app"],
            stderr=open(tmp_path / "eos-app.stderr", "ab"))

    app = start_app()
    try:
        for fraction, disrupt in sorted(disruptions.items()):
            wait_until(lambda: len(output()) >= fraction * len(expected), 120,
                       f"{fraction:.0%} of the output")
            app.send_signal(signal.SIGKILL)
            app.wait(10)
            if disrupt is not None:
                disrupt()
            app = start_app()
        wait_until(lambda: len(output()) >= len(expected), 120, "the whole output")
        assert output() == expected
    finally:
        if app.poll() is None:
            app.send_signal(signal.SIGKILL)
            app.wait(10)
