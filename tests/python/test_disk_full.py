"""A filling disk, on a small tmpfs (mounted by the test, as root). Producing until the
free space falls below `storage.min.free.bytes` makes the broker refuse produce with a
retriable error and report itself degraded on /health, while it stays up and every
acknowledged record stays readable exactly once; deleting a topic frees the space and
writes come back. Without that floor the disk fills to the last block and the broker
stops (fail-stop, as Kafka does when its only log directory fails); once space is freed
it starts again with every acknowledged record. Index and entry files are allocated for
real, so a full disk is an error, never a SIGBUS."""

from __future__ import annotations

import os
import subprocess

import pytest

from cluster_harness import deliver
from harness import Broker, wait_until
from kclients import admin, create_topic, read_partitions, watermarks

MIB = 1024 * 1024
#: The filesystem the broker gets, and the free space it keeps.
DISK_BYTES = 48 * MIB
FLOOR_BYTES = 24 * MIB
VALUE_BYTES = 2048
#: Values per produce round; the rounds stop at the first refusal (bounded anyway).
ROUND = 500
MAX_ROUNDS = 40


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root (CI runs as root)")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mnt)],
                   check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def producer_config(bootstrap: str) -> dict:
    return {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 5, "message.timeout.ms": 8000, "retry.backoff.ms": 200,
            "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 500}


def fill(b: Broker) -> dict[bytes, int]:
    """Produces rounds of values to `fill` until one is refused; the acknowledged values
    and their offsets."""
    create_topic(b.bootstrap, "fill", 1, {"segment.bytes": str(MIB)})
    acked: dict[bytes, int] = {}
    refused: list = []
    for r in range(MAX_ROUNDS):
        values = [f"{r:04d}-{i:05d}-".encode().ljust(VALUE_BYTES, b"x") for i in range(ROUND)]
        ok, failed, left = deliver(producer_config(b.bootstrap), "fill", 0, values, 30)
        acked.update(ok)
        refused += failed
        assert left == 0, f"{left} values without a delivery report"
        if failed:
            break
    assert refused, f"the disk never filled ({len(acked)} values acknowledged)"
    return acked


def assert_all_there(b: Broker, acked: dict[bytes, int]) -> None:
    """Every acknowledged value, exactly once, at the offset it was acknowledged at."""
    hw = watermarks(b.bootstrap, "fill", 1)[0][1]
    recs = read_partitions(b.bootstrap, "fill", {0: hw})[0]
    by_value = {}
    for rec in recs:
        assert rec.value not in by_value, f"{rec.value[:12]!r} stored twice"
        by_value[rec.value] = rec.offset
    for v, off in acked.items():
        assert by_value.get(v) == off, f"acknowledged {v[:12]!r} at {off}, found {by_value.get(v)}"


def test_a_full_disk_refuses_produce_and_loses_nothing_acknowledged(small_disk, tmp_path):
    """With a floor, produce stops while space is left, the broker stays up and keeps
    every acknowledged record, and deleting a topic brings writes back."""
    b = Broker(small_disk / "data", tmp_path / "strata-serve.stderr",
               config={"storage.min.free.bytes": FLOOR_BYTES,
                       "offsets.topic.num.partitions": 1})
    b.start()
    try:
        acked = fill(b)
        # The client retried the broker's KAFKA_STORAGE_ERROR until its message timeout.
        b.assert_alive()
        wait_until(lambda: b.health() == 503, 10, "/health to report the low disk")
        metrics = b.metrics()
        free = int(next(line.split()[1] for line in metrics.splitlines()
                        if line.startswith("strata_disk_free_bytes ")))
        assert free < FLOOR_BYTES, free
        storage_errors = [line for line in metrics.splitlines()
                          if line.startswith("strata_kafka_errors_total")
                          and 'api="Produce"' in line and "KafkaStorageError" in line]
        assert storage_errors and int(storage_errors[0].split()[-1]) > 0, storage_errors
        assert_all_there(b, acked)

        # Deleting the topic frees the space: health and writes come back.
        a = admin(b.bootstrap)
        a.delete_topics(["fill"], operation_timeout=30)["fill"].result(timeout=60)
        wait_until(lambda: b.health() == 200, 30, "/health to recover once space is freed")
        create_topic(b.bootstrap, "after", 1)
        ok, failed, left = deliver(producer_config(b.bootstrap), "after", 0, [b"back"], 30)
        assert ok and not failed and left == 0, (failed, left)
        b.assert_alive()
    finally:
        if b.running():
            b.stop()


def test_a_disk_full_to_the_last_block_stops_the_broker_and_loses_nothing(small_disk, tmp_path):
    """Without a floor (0) an append fails with ENOSPC: the broker stops with an error
    naming it rather than serve a log it could not write; with space freed (the tmpfs
    grown) it starts again and serves every acknowledged record exactly once."""
    b = Broker(small_disk / "data", tmp_path / "strata-serve.stderr",
               config={"storage.min.free.bytes": 0, "offsets.topic.num.partitions": 1})
    b.start()
    try:
        acked = fill(b)
        wait_until(lambda: not b.running(), 30, "the broker to stop on ENOSPC")
        assert b.proc.returncode == 2, b.proc.returncode
        assert "No space left on device" in b.stderr_text()
        subprocess.run(["mount", "-o", f"remount,size={2 * DISK_BYTES}", str(small_disk)],
                       check=True)
        b.start()
        assert_all_there(b, acked)
    finally:
        if b.running():
            b.stop()
