"""Fault-injection soak: three real `strata serve` processes (cluster_harness.Cluster,
proxied) under steady load while a nemesis (nemesis.py) injects one fault at a time —
SIGKILL of a partition leader, SIGSTOP of one, a network partition, a follower whose
data directory is deleted, a disk filled below `storage.min.free.bytes` — each healed
and waited out until the cluster is healthy again.

Load during the whole run: two idempotent acks=all confluent-kafka producers (seqload.
SeqProducer) writing numbered, keyed records to a topic of 6 partitions with
replication factor 3, and a confluent-kafka group member (seqload.GroupReader) reading
along and committing offsets (so `__consumer_offsets` is written too).

At the end, with everything healed and the load stopped, the checker proves:
- every acknowledged record is in the log exactly once, at its acknowledged offset, in
  send order per producer and partition; nothing is in the log that was never sent
  (read back with a fresh assign() consumer from offset 0 to the high watermark the
  replicas agree on); every record sent was acknowledged (none failed or timed out);
- every record the group member was handed was sent, and is in the final log at the
  offset it was read from (reads never see data that is later lost); the group's
  committed offsets are at most the high watermarks;
- every replica of every partition (`__consumer_offsets` included) holds the same
  committed prefix byte for byte after a SIGTERM of every broker, and `strata log
  verify` passes on each.

A summary line (duration, seed, faults by kind, records acknowledged, lost, duplicated,
errors the clients saw) is printed, and appended as one JSON line to the file named by
$STRATA_SOAK_REPORT when that is set. The disk fault mounts a tmpfs and so needs root;
without root only that fault is skipped (the summary says so).

Run from the repository root; the short mode (the CI default: each fault kind once)
and the long mode (rounds of faults for N seconds, here an hour) are:

    STRATA_BIN=target/debug/strata PYTHONDONTWRITEBYTECODE=1 .venv/bin/python -m pytest tests/python/test_soak.py -q
    STRATA_SOAK_SECONDS=3600 STRATA_SOAK_REPORT=soak.jsonl STRATA_BIN=target/debug/strata PYTHONDONTWRITEBYTECODE=1 .venv/bin/python -m pytest tests/python/test_soak.py -q -s

STRATA_SOAK_SEED=<n> replays a run's fault targets (the summary prints its seed), and
STRATA_SOAK_FAULTS=kill-leader,pause (a comma-separated subset of nemesis.KINDS)
injects only those kinds. The test carries the `cluster` marker (`-m cluster` selects
it with the other cluster tests). librdkafka's own log lines go to `rdkafka.log` in the
test's tmp directory, next to the brokers' logs (`cluster/nodeN.log`).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import warnings
from dataclasses import dataclass, field

import pytest

from cluster_harness import Cluster, started_cluster, wait_for
from harness import strata_bin
from kclients import read_partitions, watermarks
from nemesis import KINDS, Nemesis, SmallDisk, check_kinds
from seqload import (GroupReader, Numbering, SeqProducer, committed_offsets, describe,
                     log_problems, owner_of)

pytest_plugins = ["cluster_plugin"]

#: Seconds of faults in the long mode; 0 is the short mode (each kind once).
SOAK_SECONDS = int(os.environ.get("STRATA_SOAK_SECONDS", "0"))
#: The fault kinds injected (default: all of nemesis.KINDS).
FAULTS = check_kinds(os.environ.get("STRATA_SOAK_FAULTS", ",".join(KINDS)).split(","))

# cluster_plugin marks test_cluster.py by name; this module carries the marker itself.
# The plugin registers the marker only once loaded, after this module body ran.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300 + 2 * SOAK_SECONDS)]

TOPIC = "soak"
PARTITIONS = 6
REPLICATION = 3
OFFSETS_TOPIC = "__consumer_offsets"
GROUP = "soak-reader"
#: The two producers' records (told apart by their value's tag) and each one's pace.
STREAMS = (Numbering(PARTITIONS, tag=b"a-"), Numbering(PARTITIONS, tag=b"b-"))
RATE_PER_S = 400
MIB = 1024 * 1024
#: The brokers' free-space floor (docs/broker.md's default, set explicitly) and the disk
#: node's tmpfs: room for the run's data and the floor, plus what a long run adds.
FLOOR_BYTES = 64 * MIB
DISK_BYTES = 256 * MIB + SOAK_SECONDS * len(STREAMS) * RATE_PER_S * 256
CONFIG = {"storage.min.free.bytes": FLOOR_BYTES, "group.initial.rebalance.delay.ms": 0}
#: Bound on reading the whole topic back (a long run writes millions of records).
READ_BACK_S = 120.0 + SOAK_SECONDS / 10


@dataclass
class Soak:
    """A started cluster with its load running and a nemesis ready."""

    cluster: Cluster
    producers: list[SeqProducer]
    reader: GroupReader
    nemesis: Nemesis
    seed: int
    started: float
    notes: list[str] = field(default_factory=list)


def mount_disk(request, node_dir) -> tuple[SmallDisk | None, str]:
    """A SmallDisk mounted on `node_dir` (the disk node's directory, so its data
    directory and the filler share the filesystem), unmounted at teardown; (None, why)
    when not root."""
    if os.geteuid() != 0:
        return None, "disk-full skipped: mounting a size-limited tmpfs needs root"
    disk = SmallDisk(node_dir, DISK_BYTES).mount()
    request.addfinalizer(disk.unmount)  # runs after the cluster's kill_all
    return disk, ""


class ClientLog:
    """A librdkafka "logger" (confluent-kafka calls its `log`) appending every line to a
    file: connection refused while a broker is down and the like flood neither the
    output nor the failure report (pytest's log capture never sees them)."""

    def __init__(self, path):
        self.out = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def log(self, level: int, fmt: str, *args) -> None:
        stamp = time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}"
        with self.lock:
            if not self.out.closed:
                self.out.write(f"{stamp} {level} {fmt % args}\n")

    def close(self) -> None:
        with self.lock:
            self.out.close()


def stop_threads(threads) -> None:
    """Teardown of a failed run: ask the load threads to end without waiting on them."""
    for t in threads:
        t.stopping.set()


@pytest.fixture
def soak(request, tmp_path) -> Soak:
    started = time.monotonic()
    seed = int(os.environ.get("STRATA_SOAK_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    root = tmp_path / "cluster"
    disk_node = rng.choice([1, 2, 3])
    disk, why = mount_disk(request, root / f"node{disk_node}")
    c = started_cluster(request, root, 3, proxied=True, config=CONFIG)
    c.create_topic(TOPIC, PARTITIONS, REPLICATION)
    client_log = ClientLog(tmp_path / "rdkafka.log")
    request.addfinalizer(client_log.close)
    clients = {"logger": client_log}
    producers = [SeqProducer(c.bootstrap, TOPIC, n, RATE_PER_S, clients) for n in STREAMS]
    reader = GroupReader(c.bootstrap, TOPIC, GROUP, clients)
    request.addfinalizer(lambda: stop_threads(producers + [reader]))
    for t in producers + [reader]:
        t.start()
    # The group's offsets topic exists once every broker registered; faults may hit it.
    c.wait_converged([TOPIC, OFFSETS_TOPIC], require_equal=False)
    nemesis = Nemesis(c, TOPIC, PARTITIONS, producers, rng, disk=disk, disk_node=disk_node,
                      floor=FLOOR_BYTES, kinds=FAULTS)
    nemesis.wait_healthy(started)
    return Soak(c, producers, reader, nemesis, seed, started, [why] if why else [])


def finish_load(s: Soak) -> tuple[dict[Numbering, list], dict[str, list[str]]]:
    """Stops the producers, then the group reader once it read every partition to its
    high watermark: (the acknowledgements, what went wrong with the producers)."""
    acked, problems = {}, {}
    for prod in s.producers:
        prod.stop()
        acked[prod.numbering] = prod.snapshot()
        for kind, lines in prod.finish_problems().items():
            problems.setdefault(kind, []).extend(lines)
    ends = {p: hw for p, (_, hw) in watermarks(s.cluster.bootstrap, TOPIC, PARTITIONS).items()}
    wait_for(lambda: s.reader.reached(ends), 60, "the group reader to read every partition")
    s.reader.stop()
    return acked, problems


def reader_problems(s: Soak, log: dict[int, list],
                    committed: dict[int, int]) -> dict[str, list[str]]:
    """What the group reader saw or committed that the final log contradicts."""
    sent = {prod.numbering: prod.sent for prod in s.producers}
    problems: dict[str, list[str]] = {}
    for p, o, v in s.reader.seen:
        owner = owner_of(v, sent)
        if owner is None or owner[1] >= sent[owner[0]]:
            problems.setdefault("read never sent", []).append(f"{TOPIC}/{p} offset {o}: {v!r}")
        elif o >= len(log[p]) or log[p][o].value != v:
            problems.setdefault("read, then lost", []).append(
                f"{TOPIC}/{p} offset {o}: read {v!r}, the log holds "
                f"{log[p][o].value if o < len(log[p]) else 'nothing'!r} there")
    for p, off in committed.items():
        if off > len(log[p]):
            problems.setdefault("committed past hw", []).append(
                f"{GROUP} committed {TOPIC}/{p} offset {off}, high watermark {len(log[p])}")
    return problems


def replica_problems(s: Soak, agreed: dict) -> dict[str, list[str]]:
    """SIGTERM every broker, then compare every replica's committed prefix and verify
    every replica's log; a failure becomes a problem line."""
    try:
        s.cluster.stop_all()
        s.cluster.assert_identical_committed_logs(agreed)
    except AssertionError as e:
        return {"replicas": [str(e)]}
    return {}


def summary(s: Soak, acked: dict, problems: dict[str, list[str]], reader_committed) -> dict:
    """The run in numbers, for a results table."""
    counts = {kind: len(lines) for kind, lines in problems.items()}
    return {
        "test": "soak", "mode": f"long {SOAK_SECONDS} s" if SOAK_SECONDS else "short",
        "duration_s": round(time.monotonic() - s.started, 1), "seed": s.seed,
        "faults": s.nemesis.counts(), "skipped": s.nemesis.skipped,
        "sent": sum(prod.sent for prod in s.producers),
        "acked": sum(len(rows) for rows in acked.values()),
        "lost": counts.get("lost", 0), "duplicates": counts.get("duplicate", 0),
        "problems": counts,
        "producer_errors": sum(prod.errors for prod in s.producers),
        "reader_records": len(s.reader.seen), "reader_errors": s.reader.errors,
        "reader_last_error": s.reader.last_error,
        "reader_committed": sum(max(0, o) for o in reader_committed.values()),
        "recovery_max_s": s.nemesis.max_recovery(),
        "fault_log": [f.__dict__ for f in s.nemesis.faults],
        "binary": str(strata_bin()),
    }


def summary_line(r: dict) -> str:
    faults = " ".join(f"{k}={n}" for k, n in r["faults"].items())
    named = ("lost", "duplicate", "delivery failed")
    other = ", ".join(f"{k} {n}" for k, n in sorted(r["problems"].items()) if k not in named)
    return (f"soak {r['mode']}: {r['duration_s']} s, seed {r['seed']}, faults {faults}, "
            f"sent {r['sent']}, acked {r['acked']}, lost {r['lost']}, duplicates "
            f"{r['duplicates']}, delivery failures {r['problems'].get('delivery failed', 0)}, "
            f"other problems: {other or 'none'}; producer errors {r['producer_errors']}, "
            f"group reader {r['reader_records']} records ({r['reader_errors']} errors)")


def fault_lines(s: Soak, last: int = 40) -> list[str]:
    """One line per fault injected so far, the `last` ones (the very last one may still
    be under way); the report file has them all."""
    faults = s.nemesis.faults
    out = [f"  ({len(faults) - last} earlier faults)"] if len(faults) > last else []
    for f in faults[-last:]:
        healed = ("not healthy yet" if f.recovered_s is None
                  else f"healthy {f.recovered_s:.1f} s after healing")
        waited = f" (last waited for: {f.waited_on})" if f.waited_on else ""
        out.append(f"  {f.at_s:7.1f} s {f.kind:13} node {f.node}: {f.detail}; {healed}{waited}")
    return out


def report(s: Soak, r: dict, capsys) -> None:
    with capsys.disabled():
        print()
        for line in [f"soak: {note}" for note in s.notes] + fault_lines(s):
            print(line)
        print(summary_line(r))
    path = os.environ.get("STRATA_SOAK_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps(r) + "\n")


def test_acknowledged_records_survive_faults_under_load(soak, capsys):
    s, c = soak, soak.cluster
    try:
        s.nemesis.run(SOAK_SECONDS)
        s.nemesis.heal_all()
        s.nemesis.wait_healthy(time.monotonic())
        acked, problems = finish_load(s)
    except BaseException:
        # In the failure report (captured output): the seed and what was injected.
        print(f"seed {s.seed}; faults so far:", *fault_lines(s), sep="\n")
        raise
    agreed = c.wait_converged()
    ends = {p: agreed[(TOPIC, p)]["high_watermark"] for p in range(PARTITIONS)}
    log = read_partitions(c.bootstrap, TOPIC, ends, timeout=READ_BACK_S)
    sent = {prod.numbering: prod.sent for prod in s.producers}
    problems.update(log_problems(TOPIC, log, acked, sent))
    committed = committed_offsets(c.bootstrap, GROUP, TOPIC, PARTITIONS)
    problems.update(reader_problems(s, log, committed))
    problems.update(replica_problems(s, agreed))
    r = summary(s, acked, problems, committed)
    report(s, r, capsys)
    assert not problems, f"seed {s.seed}:\n{describe(problems)}"
