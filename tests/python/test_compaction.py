"""`cleanup.policy=compact` end to end: librdkafka produces 100 000 updates of 100 keys to
a compacted topic of a real `strata serve`; the broker's cleaner compacts them to the
latest value per key (checked against a model), tombstoned keys disappear once
`delete.retention.ms` has passed, and a `kill -9` in the middle of a cleaning (while its
staging directory exists) leaves a log that `strata log verify` accepts and that still
holds every key's latest value."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from harness import Broker, wait_until
from kclients import consumer, create_topic, produce_keyed

TOPIC = "compacted"
KEYS = 100
UPDATES = 100_000
#: Cleanings interrupted by kill -9 (each once its staging directory appeared).
KILLS = 3


def produce(bootstrap: str, updates: list[tuple[str, bytes | None]]) -> None:
    produce_keyed(bootstrap, TOPIC, updates, compression="lz4", flush_timeout=60)


def read_latest(bootstrap: str) -> tuple[dict[str, bytes | None], int]:
    """The last value read per key and how many records the partition serves, reading
    from the start to the high watermark (compaction leaves offset gaps)."""
    c = consumer(bootstrap)
    latest: dict[str, bytes | None] = {}
    count = 0
    last_offset = -1
    try:
        c.assign([TopicPartition(TOPIC, 0, 0)])
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "reading the compacted topic timed out"
            msgs = c.consume(num_messages=10000, timeout=1.0)
            done = False
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done = True
                        continue
                    raise KafkaException(err)
                assert m.offset() > last_offset, "offsets must strictly increase"
                last_offset = m.offset()
                latest[m.key().decode()] = m.value()
                count += 1
            if done:
                return latest, count
    finally:
        c.close()


def model_of(updates: list[tuple[str, bytes | None]]) -> dict[str, bytes | None]:
    m: dict[str, bytes | None] = {}
    for k, v in updates:
        m[k] = v
    return m


def cleanings(b: Broker) -> int:
    for line in b.metrics().splitlines():
        if line.startswith("strata_log_cleanings_total "):
            return int(float(line.split()[1]))
    return 0


def test_compaction_matches_a_model_and_survives_kill9_mid_cleaning(tmp_path):
    config = tmp_path / "strata.toml"
    config.write_text('"log.cleaner.backoff.ms" = 20\n')
    b = Broker(tmp_path / "data", tmp_path / "strata-serve.stderr", ("--config", str(config)))
    b.start()
    try:
        create_topic(b.bootstrap, TOPIC, 1, {
            "cleanup.policy": "compact",
            "segment.bytes": "16384",
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": "2000",
        })
        updates = [(f"key-{i % KEYS}", f"update-{i}".encode()) for i in range(UPDATES)]
        produce(b.bootstrap, updates)
        staging = b.partition_dir(TOPIC, 0) / ".cleaner"

        for kill in range(KILLS):
            # More dirty data, then kill -9 the moment a cleaning is writing its copy.
            more = [(f"key-{i % KEYS}", f"kill{kill}-update-{i}".encode()) for i in range(20_000)]
            produce(b.bootstrap, more)
            updates += more
            wait_until(staging.exists, 60, "a cleaning in progress", interval=0.001)
            b.kill()
            b.assert_verified(b.partition_dir(TOPIC, 0))
            b.start()
            latest, _ = read_latest(b.bootstrap)
            assert latest == model_of(updates), f"after kill {kill}: a latest value was lost"

        # Let the cleaner finish: few records are left and they match the model.
        def compacted():
            latest, count = read_latest(b.bootstrap)
            return (latest, count) if count < len(updates) // 20 else None

        latest, count = wait_until(compacted, 60, "the topic to be compacted", interval=0.2)
        assert latest == model_of(updates)
        assert cleanings(b) >= 1

        # Tombstones for ten keys, then updates of the others so the tombstones sit in
        # closed segments; after delete.retention.ms the ten keys are gone entirely.
        tombstones = [(f"key-{k}", None) for k in range(10)]
        filler = [(f"key-{10 + i % (KEYS - 10)}", f"late-{i}".encode()) for i in range(30_000)]
        produce(b.bootstrap, tombstones + filler)
        updates += tombstones + filler
        want = {k: v for k, v in model_of(updates).items() if v is not None}

        def tombstones_gone():
            latest, _ = read_latest(b.bootstrap)
            return latest if latest == want else None

        wait_until(tombstones_gone, 90, "tombstoned keys to disappear", interval=0.2)
    finally:
        if b.running():
            b.stop()
    b.assert_verified(b.partition_dir(TOPIC, 0))
