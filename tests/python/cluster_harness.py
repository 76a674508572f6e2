"""A cluster of real `strata serve` processes for the cluster fault tests (test_cluster.py).

`Cluster(root).start(n)` starts brokers 1..n, each with its own data directory
(`root/nodeN/data`), log file (`root/nodeN.log`: stdout and stderr of every start),
Kafka, admin and Raft ports on 127.0.0.1, and a `--peers` list naming every node. All
processes are launched before any is waited for, since a broker may only report healthy
once a quorum exists.

With `proxied=True` every ordered pair j->i gets a tcp_proxy.TcpProxy forwarding to i's
Raft address, and node j's `--peers` entry for i names that proxy; `cut(x)` then severs
node x from the others at the Raft transport (its Kafka and admin ports stay reachable)
and `heal(x)` reconnects it.

`Cluster(root, config={...})` gives every broker the same settings (docs/broker.md's
table, e.g. `{"metadata.snapshot.records": 20}`): each node writes them to its own
`root/nodeN/strata.toml` (harness.toml_text: quoted keys) and starts with `--config` on
it; without `config` no file is written and no flag passed.

Each broker's own view comes from its admin endpoint `GET /cluster`:
`{"node_id", "controller_leader", "brokers": [{"id", "kafka_addr"}], "partitions":
[{"topic", "partition", "group", "replicas", "leader", "term", "committed_index",
"high_watermark", "last_index", "local"}]}` (leader 0 = unknown). `leader_of` trusts a
broker only about itself: the leader is the node whose own view says it leads, with the
highest term (a cut-off old leader may still believe it leads, at an older term).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import signal
import struct
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from harness import START_DEADLINE_S, STOP_DEADLINE_S, Broker, free_port, toml_text
from tcp_proxy import TcpProxy

#: How long a cluster may take to elect leaders, register brokers or converge.
CLUSTER_DEADLINE_S = 60.0
#: A Kafka RecordBatch v2 header: baseOffset i64, batchLength i32, leaderEpoch i32,
#: magic i8, crc u32, attributes i16, lastOffsetDelta i32 (then the rest).
BATCH_HEADER = struct.Struct(">qiibIhi")
#: The smallest RecordBatch v2 (header with no records), counted from leaderEpoch.
MIN_BATCH_LENGTH = 49


def wait_for(cond: Callable[[], tuple[object, str]], timeout: float, what: str,
             interval: float = 0.1):
    """Polls `cond`, which returns (value, why-not), until value is truthy (returned);
    past `timeout` fails with the last why-not, so a timeout says what was missing."""
    deadline = time.monotonic() + timeout
    while True:
        value, why = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {why}")
        time.sleep(interval)


class ClusterNode(Broker):
    """One broker of a cluster: a harness.Broker (stop, kill, verify, partition_dir, …)
    started with cluster flags, whose launch and readiness wait are separate steps."""

    def __init__(self, node_id: int, root: Path, raft_port: int, taken: set[int],
                 config: Optional[dict] = None):
        super().__init__(root / f"node{node_id}" / "data", root / f"node{node_id}.log",
                         config=config)
        # One file per node (the base class would put every node's in `root`).
        if self.config_path is not None:
            self.config_path = root / f"node{node_id}" / "strata.toml"
        self.node_id = node_id
        self.raft_port = raft_port
        # free_port() can hand the same port to two nodes; keep the cluster's ports apart.
        while self.kafka_port in taken:
            self.kafka_port = free_port()
        taken.add(self.kafka_port)
        while self.admin_port in taken:
            self.admin_port = free_port()
        taken.add(self.admin_port)
        #: `--peers` value; the Cluster sets it (proxy addresses when proxied).
        self.peers = ""

    @property
    def raft_addr(self) -> str:
        return f"127.0.0.1:{self.raft_port}"

    def command(self) -> list[str]:
        cmd = [
            str(self.bin), "serve",
            "--node-id", str(self.node_id),
            "--raft-addr", self.raft_addr,
            "--peers", self.peers,
            "--kafka-addr", self.bootstrap,
            "--admin-addr", self.admin_addr,
            "--data-dir", str(self.data_dir),
            "--log-level", "info",
        ]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        return cmd

    def spawn(self) -> None:
        """Launches the process without waiting for it (see `wait_ready`)."""
        assert not self.running(), f"node {self.node_id} already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.config_path is not None:
            self.config_path.write_text(toml_text(self.config))
        self.starts += 1
        cmd = self.command()
        with open(self.stderr_path, "ab") as log:
            log.write(f"\n===== start #{self.starts} at {time.time():.3f}: {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def wait_ready(self, timeout: float = START_DEADLINE_S) -> None:
        """Kafka port accepts TCP and /health answers 200; kills the process on failure."""
        try:
            wait_until_ready = time.monotonic() + timeout
            while not self._ready():
                if time.monotonic() >= wait_until_ready:
                    raise AssertionError(
                        f"node {self.node_id}: not accepting TCP with /health 200 after {timeout:.0f} s"
                    )
                time.sleep(0.05)
        except BaseException:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            raise

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def cluster_json(self) -> Optional[dict]:
        """This broker's `GET /cluster`, or None when it does not answer 200."""
        if not self.running():
            return None
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=2.0)
        try:
            conn.request("GET", "/cluster")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                return None
            return json.loads(body)
        except (OSError, ValueError):
            return None
        finally:
            conn.close()

    def partition_views(self) -> dict[tuple[str, int], dict]:
        """(topic, partition) -> this broker's view of its own replica."""
        view = self.cluster_json()
        if view is None:
            return {}
        return {
            (e["topic"], e["partition"]): e
            for e in view.get("partitions", [])
            if e.get("local", True)
        }


class Cluster:
    """Brokers 1..n on 127.0.0.1; see the module doc."""

    def __init__(self, root: Path, proxied: bool = False, config: Optional[dict] = None):
        self.root = Path(root)
        self.proxied = proxied
        #: Broker settings every node starts with (see the module doc), or None.
        self.config = dict(config) if config else None
        self.nodes: dict[int, ClusterNode] = {}
        #: (from, to) -> the proxy node `from` dials to reach node `to`.
        self.proxies: dict[tuple[int, int], TcpProxy] = {}
        #: Nodes the test killed or stopped (and has not started again).
        self.down: set[int] = set()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, n: int) -> None:
        """Starts brokers 1..n and waits until each is healthy and sees all n brokers
        registered with a controller leader."""
        assert not self.nodes, "cluster already started"
        self.root.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        for i in range(1, n + 1):
            raft_port = free_port()
            while raft_port in taken:
                raft_port = free_port()
            taken.add(raft_port)
            self.nodes[i] = ClusterNode(i, self.root, raft_port, taken, self.config)
        for j in self.nodes:
            entries = []
            for i, node in self.nodes.items():
                addr = node.raft_addr
                if self.proxied and i != j:
                    proxy = TcpProxy(("127.0.0.1", node.raft_port), name=f"raft-{j}-to-{i}").start()
                    self.proxies[(j, i)] = proxy
                    addr = proxy.addr
                entries.append(f"{i}={addr}")
            self.nodes[j].peers = ",".join(entries)
        for node in self.nodes.values():
            node.spawn()
        for node in self.nodes.values():
            node.wait_ready()
        self.wait_registered()

    def start_all(self) -> None:
        """Starts every stopped node again (same flags, same data) and waits as `start`."""
        stopped = [node for node in self.nodes.values() if not node.running()]
        for node in stopped:
            node.spawn()
        self.down.clear()
        for node in stopped:
            node.wait_ready()
        self.wait_registered()

    @property
    def ids(self) -> list[int]:
        return sorted(self.nodes)

    def node(self, node_id: int) -> ClusterNode:
        return self.nodes[node_id]

    def running_ids(self) -> list[int]:
        return [i for i in self.ids if self.nodes[i].running()]

    def bootstrap_of(self, ids: Iterable[int]) -> str:
        return ",".join(self.nodes[i].bootstrap for i in ids)

    @property
    def bootstrap(self) -> str:
        return self.bootstrap_of(self.ids)

    def mark(self, event: str) -> None:
        """Writes `===== test: <event>` with the wall-clock time (UTC, as the brokers log)
        into every node's log, so a log reads against what the test did."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1000000:06d}Z"
        for n in self.nodes.values():
            with open(n.stderr_path, "ab") as log:
                log.write(f"===== test {stamp}: {event}\n".encode())

    def kill(self, node_id: int) -> None:
        """SIGKILL, as a crash."""
        self.mark(f"SIGKILL node {node_id}")
        self.down.add(node_id)
        self.nodes[node_id].kill()

    def restart(self, node_id: int, timeout: float = START_DEADLINE_S) -> None:
        """Starts the node again with the same flags and data directory (stopping it with
        SIGTERM first if it runs) and waits up to `timeout` until it is healthy."""
        node = self.nodes[node_id]
        if node.running():
            self.down.add(node_id)
            node.stop()
        self.mark(f"start node {node_id} again")
        node.spawn()
        node.wait_ready(timeout)
        self.down.discard(node_id)

    def stop_all(self) -> None:
        """SIGTERM to every running node at once; asserts each exits 0 in time."""
        running = [n for n in self.nodes.values() if n.running()]
        self.mark(f"SIGTERM nodes {[n.node_id for n in running]}")
        self.down.update(self.nodes)
        for n in running:
            n.proc.send_signal(signal.SIGTERM)
        problems = []
        deadline = time.monotonic() + STOP_DEADLINE_S
        for n in running:
            try:
                code = n.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait()
                problems.append(f"node {n.node_id} did not exit within {STOP_DEADLINE_S:.0f} s of SIGTERM")
                continue
            if code != 0:
                problems.append(f"node {n.node_id} exited with status {code} after SIGTERM")
        assert not problems, "; ".join(problems)

    def kill_all(self) -> None:
        """Teardown: SIGKILL whatever still runs and close the proxies. Never raises."""
        for n in self.nodes.values():
            if n.proc is not None and n.proc.poll() is None:
                n.proc.kill()
                try:
                    n.proc.wait(timeout=STOP_DEADLINE_S)
                except subprocess.TimeoutExpired:
                    pass
        for proxy in self.proxies.values():
            proxy.close()

    def check_alive(self) -> bool:
        """True; fails (with the dead node's log tail) when a node the test did not kill
        or stop has exited: a crash."""
        for i in self.ids:
            if i in self.down:
                continue
            code = self.nodes[i].proc.poll() if self.nodes[i].proc else "never started"
            assert code is None, (
                f"node {i} exited unexpectedly (status {code}); its log:\n"
                f"{self.nodes[i].stderr_text(max_lines=60)}"
            )
        return True

    # -- network partition (proxied clusters) ------------------------------------------

    def _proxies_of(self, node_id: int) -> list[TcpProxy]:
        assert self.proxied, "cut/heal need Cluster(proxied=True)"
        return [p for (a, b), p in self.proxies.items() if node_id in (a, b)]

    def cut(self, node_id: int) -> None:
        """Severs node_id from every other node, both directions (its Kafka and admin
        ports stay reachable)."""
        proxies = self._proxies_of(node_id)
        self.mark(f"cut node {node_id} off")
        for p in proxies:
            p.cut()

    def heal(self, node_id: int) -> None:
        proxies = self._proxies_of(node_id)
        self.mark(f"heal node {node_id}")
        for p in proxies:
            p.heal()

    # -- views -------------------------------------------------------------------------

    def cluster_json(self, node_id: int) -> Optional[dict]:
        return self.nodes[node_id].cluster_json()

    def partition_view(self, node_id: int, topic: str, partition: int) -> Optional[dict]:
        return self.nodes[node_id].partition_views().get((topic, partition))

    def leader_of(self, topic: str, partition: int,
                  among: Optional[Iterable[int]] = None) -> Optional[int]:
        """The running node (of `among`, default all) whose own view says it leads the
        partition, at the highest term; None when none does."""
        ids = self.running_ids() if among is None else [i for i in among if self.nodes[i].running()]
        best = None
        for i in ids:
            e = self.partition_view(i, topic, partition)
            if e is not None and e.get("leader") == i and (best is None or e["term"] > best[1]):
                best = (i, e["term"])
        return best[0] if best else None

    def wait_leader(self, topic: str, partition: int, among: Optional[Iterable[int]] = None,
                    timeout: float = CLUSTER_DEADLINE_S) -> int:
        among = None if among is None else list(among)

        def cond():
            self.check_alive()
            leader = self.leader_of(topic, partition, among)
            return leader, f"no node of {among or self.running_ids()} claims leadership"

        return wait_for(cond, timeout, f"a leader of {topic}/{partition}")

    def wait_registered(self, timeout: float = CLUSTER_DEADLINE_S) -> None:
        """Every running node knows a controller leader (/cluster) and answers Metadata
        listing all brokers."""
        want = set(self.ids)

        def cond():
            self.check_alive()
            for i in self.running_ids():
                view = self.cluster_json(i)
                if view is None or not view.get("controller_leader"):
                    return False, f"node {i}: /cluster {view and {'controller_leader': view.get('controller_leader')}}"
                try:
                    md = AdminClient({"bootstrap.servers": self.nodes[i].bootstrap}).list_topics(timeout=5)
                except Exception as e:  # KafkaException: not answering yet
                    return False, f"node {i}: Metadata failed: {e}"
                if set(md.brokers) != want:
                    return False, f"node {i}: Metadata lists brokers {sorted(md.brokers)}"
            return True, ""

        wait_for(cond, timeout, f"brokers {sorted(want)} registered and in Metadata", interval=0.25)

    def metadata_cluster_ids(self) -> dict[int, str]:
        """node -> the ClusterId its Metadata answer carries (a fresh client each: librdkafka
        keeps the first id it saw)."""
        return {
            i: AdminClient({"bootstrap.servers": self.nodes[i].bootstrap}).list_topics(timeout=10).cluster_id
            for i in self.running_ids()
        }

    def create_topic(self, name: str, partitions: int, replication_factor: int,
                     config: Optional[dict] = None) -> None:
        """CreateTopics (topic configs `config`) through confluent-kafka's AdminClient (any
        broker), then waits until Metadata shows every partition with a leader and
        `replication_factor` replicas and every replica's /cluster shows a leader for it."""
        a = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = a.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=replication_factor,
                      config=config or {})],
            operation_timeout=30, request_timeout=30,
        )
        futures[name].result(timeout=60)

        def metadata_ready():
            md = a.list_topics(topic=name, timeout=10)
            t = md.topics.get(name)
            ok = (t is not None and t.error is None and len(t.partitions) == partitions
                  and all(p.leader >= 0 and len(p.replicas) == replication_factor
                          for p in t.partitions.values()))
            return ok, f"metadata: {t and {p.id: (p.leader, p.replicas) for p in t.partitions.values()}}"

        wait_for(metadata_ready, CLUSTER_DEADLINE_S, f"topic {name} in Metadata")
        self.wait_converged([name], require_equal=False)

    def wait_converged(self, topics: Optional[Iterable[str]] = None,
                       timeout: float = CLUSTER_DEADLINE_S,
                       require_equal: bool = True,
                       partitions: Optional[Iterable[int]] = None) -> dict[tuple[str, int], dict]:
        """Waits until every node runs and, for every partition (of `topics`, default
        all; of those, numbers in `partitions`, default all), each of its replicas reports it with the same known leader and term, and,
        with `require_equal`, the same high_watermark and last_index. Returns
        (topic, partition) -> the agreed {"leader", "term", "high_watermark",
        "last_index", "replicas"}."""
        topics = None if topics is None else set(topics)
        partitions = None if partitions is None else set(partitions)

        def cond():
            self.check_alive()
            down = [i for i in self.ids if not self.nodes[i].running()]
            if down:
                return None, f"nodes {down} are not running"
            views: dict[tuple[str, int], dict[int, dict]] = {}
            for i in self.ids:
                for key, e in self.nodes[i].partition_views().items():
                    if ((topics is None or key[0] in topics)
                            and (partitions is None or key[1] in partitions)):
                        views.setdefault(key, {})[i] = e
            if topics is not None and not {t for t, _ in views} >= topics:
                return None, f"no replica reports topics {sorted(topics - {t for t, _ in views})}"
            agreed = {}
            for key, by_node in sorted(views.items()):
                replicas = sorted(next(iter(by_node.values()))["replicas"])
                if sorted(by_node) != replicas:
                    return None, f"{key}: replicas {replicas}, reported by nodes {sorted(by_node)}"
                fields = ["leader", "term"] + (["high_watermark", "last_index"] if require_equal else [])
                seen = {i: tuple(e.get(f) for f in fields) for i, e in by_node.items()}
                if len(set(seen.values())) != 1:
                    return None, f"{key}: replicas disagree on {fields}: {seen}"
                e = by_node[replicas[0]]
                if e["leader"] not in replicas:
                    return None, f"{key}: leader {e['leader']} is not a replica {replicas}"
                agreed[key] = {f: e.get(f) for f in
                               ("leader", "term", "high_watermark", "last_index", "replicas")}
            return agreed, ""

        what = "replicas to agree" + (" on leader, term, high_watermark and last_index"
                                      if require_equal else " on a leader")
        return wait_for(cond, timeout, what, interval=0.2)

    def wait_caught_up(self, node_id: int, topic: str, partitions: int,
                       timeout: float = CLUSTER_DEADLINE_S) -> None:
        """Waits until node_id's replica of every partition knows a leader and has
        committed at least what that leader had committed when the wait began."""
        targets: dict[int, int] = {}

        def cond():
            self.check_alive()
            for p in range(partitions):
                if p not in targets:
                    leader = self.leader_of(topic, p)
                    e = self.partition_view(leader, topic, p) if leader else None
                    if e is None:
                        return False, f"{topic}/{p}: no leader yet"
                    targets[p] = e["committed_index"]
            views = self.nodes[node_id].partition_views()
            for p in range(partitions):
                e = views.get((topic, p))
                if e is None or not e.get("leader"):
                    return False, f"node {node_id}: {topic}/{p} {e} (no leader known)"
                if e["committed_index"] < targets[p]:
                    return False, (f"node {node_id}: {topic}/{p} committed_index "
                                   f"{e['committed_index']} < leader's {targets[p]}")
            return True, ""

        wait_for(cond, timeout, f"node {node_id} to catch up on {topic}", interval=0.1)

    # -- logs on disk ------------------------------------------------------------------

    def assert_identical_committed_logs(self, agreed: dict[tuple[str, int], dict]) -> None:
        """For every partition of `agreed` (from wait_converged, taken before the brokers
        stopped): each replica's segments hold the committed prefix [0, high_watermark)
        byte for byte the same, and `strata log verify` passes on each replica's dir."""
        for (topic, p), a in sorted(agreed.items()):
            digests = {}
            for r in a["replicas"]:
                d = self.nodes[r].partition_dir(topic, p)
                digests[r] = committed_prefix_digest(d, a["high_watermark"])
            for r, (_, nbytes, end) in digests.items():
                assert end == a["high_watermark"], (
                    f"{topic}/{p}: node {r}'s segments end their committed prefix at offset "
                    f"{end} ({nbytes} bytes), the high watermark is {a['high_watermark']}"
                )
            assert len({sha for sha, _, _ in digests.values()}) == 1, (
                f"{topic}/{p}: replicas' committed prefixes differ: "
                + ", ".join(f"node {r}: sha256 {sha[:16]}… {n} bytes" for r, (sha, n, _) in digests.items())
            )
            for r in a["replicas"]:
                self.nodes[r].assert_verified(self.nodes[r].partition_dir(topic, p))

    # -- diagnostics -------------------------------------------------------------------

    def log_tails(self, max_lines: int = 80) -> str:
        return "\n".join(
            f"----- node {i} ({n.stderr_path})\n{n.stderr_text(max_lines=max_lines)}"
            for i, n in self.nodes.items()
        )


def deliver(config: dict, topic: str, partition: int, values: list[bytes],
            flush_timeout: float) -> tuple[dict[bytes, int], list, int]:
    """Writes `values` (each its own key) to topic/partition with a confluent-kafka
    Producer of `config`: (value -> offset of the acknowledged ones, [(value, error)] of
    the failed ones, how many still had no delivery report after `flush_timeout`)."""
    acked, failed = {}, []

    def report(err, msg):
        if err is not None:
            failed.append((msg.value(), str(err)))
        else:
            acked[msg.value()] = msg.offset()

    p = Producer(config)
    for v in values:
        p.produce(topic, key=v, value=v, partition=partition, on_delivery=report)
        p.poll(0)
    left = p.flush(flush_timeout)
    return acked, failed, left


def produce_values(bootstrap: str, topic: str, partition: int, values: list[bytes],
                   timeout: float = 60.0) -> dict[bytes, int]:
    """Idempotent acks=all writes of `values` to topic/partition; asserts every one is
    acknowledged; value -> offset."""
    acked, errors, left = deliver(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
         "linger.ms": 5, "message.timeout.ms": int(timeout * 1000),
         "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 500},
        topic, partition, values, timeout + 10)
    assert left == 0 and not errors, f"{left} undelivered, errors: {errors[:5]}"
    return acked


def started_cluster(request, root: Path, n: int, **kw) -> Cluster:
    """For a test fixture: brokers 1..n under `root` (Cluster's keyword arguments in
    `kw`), started, SIGKILLed when the test ends, and attached to the test so
    cluster_plugin adds their logs to a failure report."""
    c = Cluster(root, **kw)
    request.node.strata_cluster = c
    request.addfinalizer(c.kill_all)
    c.start(n)
    return c


def segment_files(partition_dir: Path) -> list[Path]:
    """The `NNNNNNNNNNNNNNNNNNNN.log` segment files, in base-offset order."""
    logs = [f for f in partition_dir.iterdir()
            if f.suffix == ".log" and len(f.stem) == 20 and f.stem.isdigit()]
    return sorted(logs, key=lambda f: int(f.stem))


def segment_bytes(partition_dir: Path, attempts: int = 20) -> bytes:
    """The concatenated segment files of a live partition directory. A cleaning that
    swaps a segment in while `file.delete.delay.ms` keeps the old one renames the old
    `.log` aside just before the new one takes its name: a file listed a moment ago may
    be missing for that instant, so the listing is read again."""
    for _ in range(attempts - 1):
        try:
            return b"".join(f.read_bytes() for f in segment_files(partition_dir))
        except FileNotFoundError:
            continue
    return b"".join(f.read_bytes() for f in segment_files(partition_dir))


def committed_prefix_digest(partition_dir: Path, high_watermark: int) -> tuple[str, int, int]:
    """sha256 of the concatenated segment files (base-offset order), cut after the last
    batch below `high_watermark`; returns (hex digest, bytes hashed, the offset the
    hashed prefix ends at: last offset + 1 of its last batch, 0 when empty)."""
    assert partition_dir.is_dir(), f"{partition_dir} is missing"
    data = segment_bytes(partition_dir)
    pos, end = 0, 0
    while pos + BATCH_HEADER.size <= len(data):
        base, length, _epoch, _magic, _crc, _attrs, last_delta = BATCH_HEADER.unpack_from(data, pos)
        if length < MIN_BATCH_LENGTH or pos + 12 + length > len(data) or base < end:
            break  # preallocated zeros, a torn tail or garbage: not part of any prefix
        if base >= high_watermark:
            break
        pos += 12 + length
        end = base + last_delta + 1
    return hashlib.sha256(data[:pos]).hexdigest(), pos, end


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos
        shift += 7


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    n, pos = _uvarint(data, pos)
    return (n >> 1) ^ -(n & 1), pos


#: RecordBatch v2 from baseTimestamp to recordsCount (after the header above).
BATCH_TAIL = struct.Struct(">qqqhii")


def committed_records(partition_dir: Path, high_watermark: int) -> list[tuple[int, bytes, bytes]]:
    """(offset, key, value) of every record below `high_watermark` in a partition
    directory's segments, read from the files (uncompressed batches only; keyless records
    and tombstones get b"" for the missing part)."""
    data = segment_bytes(partition_dir)
    out, pos, end = [], 0, 0
    while pos + BATCH_HEADER.size <= len(data):
        base, length, _epoch, _magic, _crc, attrs, _last_delta = BATCH_HEADER.unpack_from(data, pos)
        if length < MIN_BATCH_LENGTH or pos + 12 + length > len(data) or base < end:
            break
        if base >= high_watermark:
            break
        assert attrs & 0x7 == 0, f"{partition_dir}: compressed batch at offset {base}"
        *_, count = BATCH_TAIL.unpack_from(data, pos + BATCH_HEADER.size)
        rpos = pos + BATCH_HEADER.size + BATCH_TAIL.size
        for _ in range(count):
            _len, rpos = _varint(data, rpos)
            rpos += 1  # attributes
            _ts, rpos = _varint(data, rpos)
            delta, rpos = _varint(data, rpos)
            klen, rpos = _varint(data, rpos)
            key = data[rpos:rpos + max(klen, 0)]
            rpos += max(klen, 0)
            vlen, rpos = _varint(data, rpos)
            value = data[rpos:rpos + max(vlen, 0)]
            rpos += max(vlen, 0)
            headers, rpos = _varint(data, rpos)
            for _ in range(headers):
                hk, rpos = _varint(data, rpos)
                rpos += hk
                hv, rpos = _varint(data, rpos)
                rpos += max(hv, 0)
            if base + delta < high_watermark:
                out.append((base + delta, key, value))
        pos += 12 + length
        end = base + _last_delta + 1
    return out
