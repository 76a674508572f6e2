"""Faults for the soak test (test_soak.py): injected one at a time into a running
cluster_harness.Cluster (proxied), each healed before the next and followed by a wait
until the cluster is healthy again.

Kinds (`KINDS`; the chosen ones are injected in this order, round after round):

- "kill-leader": SIGKILL the leader of a partition, wait until the others elect one,
  restart it and wait until it has caught up;
- "pause": SIGSTOP the leader of a partition until the other two elected leaders for
  everything it led and at least PAUSE_S passed, then SIGCONT;
- "partition": cut the leader of a partition off at the Raft transport (Cluster.cut;
  its Kafka port stays reachable) until the others elected a leader and at least CUT_S
  passed, then heal;
- "wipe-follower": SIGKILL the node leading the fewest partitions, delete its data
  directory, restart it and wait until it has caught up; the other two stay up;
- "disk-full": allocate a filler file on the `SmallDisk` (a tmpfs) holding the disk
  node's directory until less than the broker's `storage.min.free.bytes` is free, keep
  it there until that broker's /health answers 503 and then FULL_S more while the load
  runs, then delete the filler. When that node leads none of the topic's
  partitions, `strata cluster rebalance-leaders` first gives it some (waited for up to
  REBALANCE_S, not required), so the full disk meets produce requests. Without a disk
  (not root) this kind is skipped.

Healthy (`Nemesis.wait_healthy`): every node runs and answers /health 200, every
producer had a record sent after the healing acknowledged on every partition, and every
partition's replicas agree on a leader and term. Targets come from a seeded
random.Random, so a seed replays the choices (not the timing).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from cluster_harness import CLUSTER_DEADLINE_S, Cluster, wait_for
from seqload import SeqProducer

KINDS = ("kill-leader", "pause", "partition", "wipe-follower", "disk-full")
#: Least time a paused node stays stopped (an election timeout is 1-2 s).
PAUSE_S = 3.0
#: Least time a node stays cut off.
CUT_S = 3.0
#: Least time the disk stays below the floor once the broker reported it.
FULL_S = 3.0
#: How long the disk fault waits for leader balancing to give the disk node a partition.
REBALANCE_S = 30.0
#: How long the cluster may take to be healthy again after a fault was healed.
HEAL_DEADLINE_S = CLUSTER_DEADLINE_S


def check_kinds(kinds: Sequence[str]) -> list[str]:
    """`kinds` (empty names ignored) in KINDS order; fails on a name KINDS lacks."""
    kinds = [k.strip() for k in kinds if k.strip()]
    unknown = set(kinds) - set(KINDS)
    assert not unknown, f"unknown fault kinds {sorted(unknown)}; known: {', '.join(KINDS)}"
    return [k for k in KINDS if k in kinds]


@dataclass
class Fault:
    """One injected fault: its kind, the node it hit, when (seconds since the nemesis
    began), what was done, and how long the cluster took to be healthy after healing."""

    kind: str
    node: int
    at_s: float
    detail: str = ""
    recovered_s: Optional[float] = None
    #: What the wait for health found missing last before it was satisfied.
    waited_on: str = ""


class SmallDisk:
    """A tmpfs of `size` bytes mounted (as root) at `path`; `fill` allocates a filler
    file on it until less than a floor is free, `drain` deletes it."""

    FILLER = "soak-filler"

    def __init__(self, path: Path, size: int):
        self.path = Path(path)
        self.size = size
        self.mounted = False

    @property
    def filler(self) -> Path:
        return self.path / self.FILLER

    def mount(self) -> "SmallDisk":
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs",
                        str(self.path)], check=True)
        self.mounted = True
        return self

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)
            self.mounted = False

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, floor: int) -> int:
        """Allocates the filler so that about floor / 2 bytes stay free; its size."""
        n = max(0, self.free() - floor // 2)
        with open(self.filler, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, n)
        return n

    def drain(self) -> None:
        self.filler.unlink(missing_ok=True)


def produce_storage_errors(metrics: str) -> int:
    """KAFKA_STORAGE_ERROR answers to Produce so far, from a broker's /metrics text."""
    return sum(int(float(line.split()[-1])) for line in metrics.splitlines()
               if line.startswith("strata_kafka_errors_total")
               and 'api="Produce"' in line and "KafkaStorageError" in line)


def hold_until(t: float) -> None:
    """Keeps a fault in place until monotonic time `t` (the fault's length, not a wait
    for a condition)."""
    time.sleep(max(0.0, t - time.monotonic()))


class Nemesis:
    """Injects the faults of `KINDS` into `cluster`, whose `topic` has `partitions`
    partitions written by `producers`; see the module doc. `disk` (with `disk_node`,
    whose directory it holds) enables "disk-full"; `floor` is the brokers'
    storage.min.free.bytes. `kinds` (default all) restricts the faults injected."""

    def __init__(self, cluster: Cluster, topic: str, partitions: int,
                 producers: Sequence[SeqProducer], rng: random.Random,
                 disk: Optional[SmallDisk] = None, disk_node: Optional[int] = None,
                 floor: int = 0, kinds: Sequence[str] = KINDS):
        self.kinds = check_kinds(kinds)
        self.c = cluster
        self.topic = topic
        self.partitions = partitions
        self.producers = list(producers)
        self.rng = rng
        self.disk = disk
        self.disk_node = disk_node
        self.floor = floor
        self.t0 = time.monotonic()
        self.faults: list[Fault] = []
        #: kind -> why it was not injected.
        self.skipped: dict[str, str] = {}
        self.paused: set[int] = set()
        self.cut_off: set[int] = set()

    # -- the loop ----------------------------------------------------------------------

    def run(self, seconds: float) -> None:
        """One fault of each kind in turn; with `seconds` > 0, rounds of them until that
        long has passed since the nemesis began (checked before each fault)."""
        while True:
            for kind in self.kinds:
                if seconds > 0 and time.monotonic() - self.t0 >= seconds:
                    return
                self.inject(kind)
            if seconds <= 0:
                return

    def inject(self, kind: str) -> Optional[Fault]:
        """One fault of `kind`, healed, then waited out until the cluster is healthy;
        recorded in `faults` (None when the kind is skipped)."""
        if kind == "disk-full" and self.disk is None:
            self.skipped[kind] = "mounting a size-limited tmpfs needs root"
            return None
        p = self.rng.randrange(self.partitions)
        fault = getattr(self, "_" + kind.replace("-", "_"))(p)
        healed = time.monotonic()
        fault.waited_on = self.wait_healthy(healed)
        fault.recovered_s = round(time.monotonic() - healed, 3)
        self.c.mark(f"soak: healthy again after {kind} on node {fault.node}")
        return fault

    def _record(self, kind: str, node: int, detail: str) -> Fault:
        fault = Fault(kind, node, round(time.monotonic() - self.t0, 3), detail)
        self.faults.append(fault)
        self.c.mark(f"soak fault #{len(self.faults)}: {kind} node {node} ({detail})")
        return fault

    # -- the faults --------------------------------------------------------------------

    def _kill_leader(self, p: int) -> Fault:
        node = self.c.wait_leader(self.topic, p)
        fault = self._record("kill-leader", node, f"leader of {self.topic}/{p}")
        survivors = [i for i in self.c.ids if i != node]
        self.c.kill(node)
        new = self.c.wait_leader(self.topic, p, among=survivors)
        fault.detail += f"; node {new} took over"
        self._restart_caught_up(node)
        return fault

    def _pause(self, p: int) -> Fault:
        node = self.c.wait_leader(self.topic, p)
        led = self.led_by(node)
        fault = self._record("pause", node,
                             f"leader of {self.topic}/{p} and {len(led)} partitions in all")
        others = [i for i in self.c.ids if i != node]
        self.c.mark(f"SIGSTOP node {node}")
        self.c.node(node).proc.send_signal(signal.SIGSTOP)
        self.paused.add(node)
        stopped = time.monotonic()
        try:
            for topic, q in led:
                self.c.wait_leader(topic, q, among=others)
            fault.detail += f"; others led them after {time.monotonic() - stopped:.1f} s"
            hold_until(stopped + PAUSE_S)
        finally:
            self._resume(node)
        return fault

    def _partition(self, p: int) -> Fault:
        node = self.c.wait_leader(self.topic, p)
        fault = self._record("partition", node, f"leader of {self.topic}/{p}")
        others = [i for i in self.c.ids if i != node]
        self.c.cut(node)
        self.cut_off.add(node)
        cut = time.monotonic()
        try:
            new = self.c.wait_leader(self.topic, p, among=others)
            fault.detail += f"; node {new} led after {time.monotonic() - cut:.1f} s"
            hold_until(cut + CUT_S)
        finally:
            self.c.heal(node)
            self.cut_off.discard(node)
        return fault

    def _wipe_follower(self, p: int) -> Fault:
        node = self.least_leading()
        fault = self._record("wipe-follower", node, f"leading {len(self.led_by(node))} partitions")
        self.c.kill(node)
        shutil.rmtree(self.c.node(node).data_dir)
        self.c.mark(f"deleted node {node}'s data directory")
        self._restart_caught_up(node)
        return fault

    def _disk_full(self, p: int) -> Fault:
        node, disk = self.disk_node, self.disk
        b = self.c.node(node)
        balanced = self._lead_some(node)
        refused = produce_storage_errors(b.metrics())
        fault = self._record("disk-full", node, f"{balanced}leading {self.topic_led(node)} "
                             f"{self.topic} partitions")
        filled = disk.fill(self.floor)
        self.c.mark(f"filler of {filled} bytes on node {node}'s disk, {disk.free()} free")
        full = time.monotonic()
        try:
            wait_for(lambda: (b.health() == 503, f"/health {b.health()}, {disk.free()} bytes free"),
                     30, f"node {node} to report its disk below the floor")
            fault.detail += f"; /health 503 after {time.monotonic() - full:.1f} s"
            hold_until(time.monotonic() + FULL_S)
            self.c.check_alive()
        finally:
            disk.drain()
            self.c.mark(f"deleted the filler on node {node}'s disk")
        fault.detail += f"; {produce_storage_errors(b.metrics()) - refused} produce refusals"
        return fault

    def _lead_some(self, node: int) -> str:
        """When `node` leads none of the topic's partitions: asks for leader balancing
        and waits up to REBALANCE_S for it to lead one; says what was done."""
        if self.topic_led(node):
            return ""
        admin = self.c.node(node).admin_addr
        self.c.mark(f"cluster rebalance-leaders --admin {admin}")
        r = subprocess.run([str(self.c.node(node).bin), "cluster", "rebalance-leaders",
                            "--admin", admin], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            return f"rebalance-leaders exited {r.returncode}: {r.stderr.strip()[-200:]}; "
        try:
            wait_for(lambda: (self.topic_led(node), "no leadership yet"), REBALANCE_S,
                     f"node {node} to lead a {self.topic} partition")
        except AssertionError:
            return f"rebalance-leaders gave it nothing in {REBALANCE_S:.0f} s; "
        return "after rebalance-leaders, "

    # -- healing -----------------------------------------------------------------------

    def _resume(self, node: int) -> None:
        self.c.mark(f"SIGCONT node {node}")
        self.c.node(node).proc.send_signal(signal.SIGCONT)
        self.paused.discard(node)

    def _restart_caught_up(self, node: int) -> None:
        """Starts `node` again and waits until it is healthy (a wiped node may first
        have to rejoin), registered, and every replica it holds has committed what its
        leader had committed."""
        self.c.restart(node, timeout=HEAL_DEADLINE_S)
        self.c.wait_registered()
        for topic, n in self.topic_sizes(exclude=node).items():
            self.c.wait_caught_up(node, topic, n)

    def heal_all(self) -> None:
        """Undoes whatever fault is still in place (a failed step may leave one): paused
        nodes continue, cut ones are healed, the filler goes, stopped nodes start."""
        for node in list(self.paused):
            self._resume(node)
        for node in list(self.cut_off):
            self.c.heal(node)
            self.cut_off.discard(node)
        if self.disk is not None:
            self.disk.drain()
        if len(self.c.running_ids()) < len(self.c.ids):
            self.c.start_all()

    def wait_healthy(self, since: float, timeout: float = HEAL_DEADLINE_S) -> str:
        """Waits until every node runs and answers /health 200, every producer had a
        record sent after `since` acknowledged on every partition, and every partition's
        replicas agree on a leader and term; returns what was found missing last."""
        missing = [""]

        def cond():
            ok, why = healthy()
            if not ok:
                missing[0] = why
            return ok, why

        def healthy():
            self.c.check_alive()
            for i in self.c.ids:
                status = self.c.node(i).health()
                if status != 200:
                    return False, f"node {i}: /health {status}"
            for prod in self.producers:
                prod.check()
                waiting = [q for q in range(self.partitions)
                           if prod.first_ack_sent_after(q, since) is None]
                if waiting:
                    return False, (f"producer {prod.numbering.tag!r}: no record sent since "
                                   f"then acknowledged on partitions {waiting}")
            return True, ""

        wait_for(cond, timeout, "brokers healthy and producers acknowledged", interval=0.2)
        self.c.wait_converged(require_equal=False, timeout=timeout)
        return missing[0]

    # -- views -------------------------------------------------------------------------

    def led_by(self, node: int) -> list[tuple[str, int]]:
        """The partitions (any topic) whose replica on `node` says it leads."""
        return sorted(key for key, e in self.c.node(node).partition_views().items()
                      if e.get("leader") == node)

    def topic_led(self, node: int) -> int:
        """How many of the topic's partitions `node` leads (its own view)."""
        return sum(1 for topic, _ in self.led_by(node) if topic == self.topic)

    def least_leading(self) -> int:
        """The node leading the fewest partitions (ties broken by the seed)."""
        counts = {i: len(self.led_by(i)) for i in self.c.ids}
        fewest = min(counts.values())
        return self.rng.choice([i for i, n in counts.items() if n == fewest])

    def topic_sizes(self, exclude: int) -> dict[str, int]:
        """topic -> partitions, as a running node other than `exclude` reports them."""
        for i in self.c.running_ids():
            if i != exclude:
                sizes: dict[str, int] = {}
                for topic, _ in self.c.node(i).partition_views():
                    sizes[topic] = sizes.get(topic, 0) + 1
                if sizes:
                    return sizes
        raise AssertionError(f"no node but {exclude} reports partitions")

    def max_recovery(self) -> dict[str, float]:
        """kind -> the longest a fault of that kind took to be healthy after healing."""
        out: dict[str, float] = {}
        for f in self.faults:
            if f.recovered_s is not None:
                out[f.kind] = max(out.get(f.kind, 0.0), f.recovered_s)
        return out

    def counts(self) -> dict[str, int]:
        """kind -> faults injected."""
        out = {k: 0 for k in self.kinds if k not in self.skipped}
        for f in self.faults:
            out[f.kind] = out.get(f.kind, 0) + 1
        return out
