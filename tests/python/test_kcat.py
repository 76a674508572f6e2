"""kcat (librdkafka's command-line client) produces keyed lines and reads them back."""

from __future__ import annotations

import collections
import random
import shutil
import subprocess

from kclients import create_topic, watermarks

TOPIC = "kcat-lines"
PARTITIONS = 3
LINES = 10_000
KEYS = 97


def kcat() -> str:
    path = shutil.which("kcat")
    assert path, "kcat is not installed (scripts/test.sh installs it with apt-get)"
    return path


def test_kcat_produce_consume_keyed_lines(broker):
    create_topic(broker.bootstrap, TOPIC, PARTITIONS)

    rng = random.Random(7)
    lines = []
    for i in range(LINES):
        # Values carry their line number (per-key order check) and vary in length.
        value = f"v{i:05d}-" + "".join(rng.choice("abcdefghij") for _ in range(rng.randint(0, 60)))
        lines.append(f"key{rng.randrange(KEYS)}:{value}")

    produced = subprocess.run(
        [kcat(), "-P", "-b", broker.bootstrap, "-t", TOPIC, "-K:",
         # Idempotence keeps each partition in send order even if a request is retried.
         "-X", "enable.idempotence=true", "-X", "acks=all"],
        input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=120,
    )
    assert produced.returncode == 0, f"kcat -P failed ({produced.returncode}):\n{produced.stderr}"
    assert "ERROR" not in produced.stderr and "failed" not in produced.stderr.lower(), produced.stderr

    consumed = subprocess.run(
        [kcat(), "-C", "-b", broker.bootstrap, "-t", TOPIC, "-o", "beginning", "-e", "-q",
         "-f", "%k:%s:%p:%o\\n"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )
    assert consumed.returncode == 0, f"kcat -C failed ({consumed.returncode}):\n{consumed.stderr}"

    rows = []  # (key, value, partition, offset)
    for line in consumed.stdout.splitlines():
        # key:value:partition:offset — keys and values contain no ':'.
        key, value, partition, offset = line.split(":")
        rows.append((key, value, int(partition), int(offset)))

    # The same multiset of key:value lines.
    got = collections.Counter(f"{k}:{v}" for k, v, _, _ in rows)
    assert got == collections.Counter(lines), (
        f"consumed {len(rows)} lines, produced {len(lines)}; "
        f"missing {list((collections.Counter(lines) - got).elements())[:5]}, "
        f"extra {list((got - collections.Counter(lines)).elements())[:5]}"
    )

    # Offsets: each partition is 0..n-1 with no gap or repeat, matching the watermarks.
    by_partition = collections.defaultdict(list)
    for k, v, p, o in rows:
        by_partition[p].append((o, k, v))
    marks = watermarks(broker.bootstrap, TOPIC, PARTITIONS)
    for p in range(PARTITIONS):
        offsets = sorted(o for o, _, _ in by_partition[p])
        assert offsets == list(range(len(offsets))), f"partition {p}: offsets not 0..n-1"
        assert marks[p] == (0, len(offsets)), f"partition {p}: watermarks {marks[p]}"
    assert sum(1 for p in range(PARTITIONS) if by_partition[p]) == PARTITIONS, (
        "keyed lines should spread over every partition: "
        f"{ {p: len(v) for p, v in by_partition.items()} }"
    )

    # Every key lives in one partition, and its lines come back in the order sent.
    key_partitions = collections.defaultdict(set)
    for k, _, p, _ in rows:
        key_partitions[k].add(p)
    split = {k: ps for k, ps in key_partitions.items() if len(ps) > 1}
    assert not split, f"keys spread over several partitions: {split}"

    for p, recs in by_partition.items():
        last_seen = {}
        for o, k, v in sorted(recs):
            n = int(v[1:6])
            assert last_seen.get(k, -1) < n, (
                f"partition {p}: key {k} line {n} at offset {o} after line {last_seen[k]}"
            )
            last_seen[k] = n

    broker.stop()
    broker.assert_all_verified(min_dirs=PARTITIONS)
