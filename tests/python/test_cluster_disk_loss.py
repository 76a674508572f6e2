"""A node that lost its data directory never votes with what it forgot.

Three real brokers, a topic with replication factor 3. Node 2 is SIGKILLed, so the
records acknowledged next are held by nodes 1 and 3 only. Then node 3's data directory
is wiped (a replaced disk) and node 1 stops: nodes 2 (behind) and 3 (empty) are a
majority, and a wiped node that voted would elect node 2 and lose every one of those
acknowledged records. Instead node 3 starts *joining* (its identity file is new): its
controller replica refuses node 2's vote requests, and no leader is elected. Once node 1
is back, node 3 learns from the controller that its id belonged to an earlier directory,
rejoins its replicas without voting until caught up, and becomes a member again: every
acknowledged record is read back, and with node 1 down once more, nodes 2 and 3 elect a
leader and acknowledge new writes.

The second test is fail-stop end to end: a node whose directory belongs to another
cluster (its checksummed identity names another cluster id) exits non-zero with the
reason, while the other two keep serving.
"""

from __future__ import annotations

import shutil
import zlib

import pytest

from cluster_harness import CLUSTER_DEADLINE_S, Cluster, produce_values, started_cluster, wait_for
from kclients import read_partitions

pytest_plugins = ["cluster_plugin"]

pytestmark = pytest.mark.timeout(400)

TOPIC = "ledger"
ACKED = 200
#: Vote requests node 3 must have refused before the test looks for a leader.
REFUSED = 3


def spawn(c: Cluster, node_id: int) -> None:
    """Starts a node without waiting for it to be healthy (it may have no quorum)."""
    c.mark(f"start node {node_id}")
    c.nodes[node_id].spawn()
    c.down.discard(node_id)


def view(c: Cluster, node_id: int) -> dict:
    return c.nodes[node_id].cluster_json() or {}


def read_back(bootstrap: str, end: int) -> list[bytes]:
    return [r.value for r in read_partitions(bootstrap, TOPIC, {0: end})[0]]


def test_a_wiped_node_rejoins_without_voting_until_caught_up(request, tmp_path):
    c = started_cluster(request, tmp_path, 3)
    c.create_topic(TOPIC, 1, 3)
    c.kill(2)
    values = [b"acked-%05d" % i for i in range(ACKED)]
    acked = produce_values(c.bootstrap_of([1, 3]), TOPIC, 0, values)
    assert sorted(acked.values()) == list(range(ACKED))

    c.kill(3)
    shutil.rmtree(c.nodes[3].data_dir)
    c.kill(1)
    spawn(c, 2)
    spawn(c, 3)

    def refusing():
        c.check_alive()
        v = view(c, 3)
        ctl = v.get("controller") or {}
        return (v.get("standing") == "joining" and ctl.get("votes_refused", 0) >= REFUSED,
                f"node 3: {v.get('standing')}, controller {ctl}")

    wait_for(refusing, CLUSTER_DEADLINE_S, "node 3 to refuse node 2's vote requests")
    for i in (2, 3):
        assert view(c, i).get("controller_leader") == 0, f"node {i} knows a controller leader"
    leaders = [e["leader"] for e in view(c, 2).get("partitions", []) if e["topic"] == TOPIC]
    assert leaders in ([], [0]), f"node 2 elected a leader without the acknowledged records: {leaders}"

    spawn(c, 1)
    for i in c.ids:
        c.nodes[i].wait_ready()
    c.wait_converged([TOPIC])

    def member():
        v = view(c, 3)
        mine = [e for e in v.get("partitions", []) if e["topic"] == TOPIC]
        return (v.get("standing") == "member" and mine and not mine[0]["rejoining"],
                f"node 3: {v.get('standing')}, replicas {mine}")

    wait_for(member, CLUSTER_DEADLINE_S, "node 3 to catch up and vote again")
    assert read_back(c.bootstrap, ACKED) == values, "an acknowledged record was lost"

    # Node 3 counts again: without node 1, nodes 2 and 3 elect and acknowledge.
    c.kill(1)
    more = [b"after-%05d" % i for i in range(20)]
    produce_values(c.bootstrap_of([2, 3]), TOPIC, 0, more)
    assert read_back(c.bootstrap_of([2, 3]), ACKED + len(more)) == values + more


def rewrite_identity(path, **changes: str) -> None:
    """Rewrites `node.identity` with `changes` to its `key = "value"` lines and a valid
    checksum line (CRC-32 of the text before it), as a mistaken restore would."""
    lines = [l for l in path.read_text().splitlines(keepends=True) if not l.startswith("# crc32 ")]
    for key, value in changes.items():
        lines = [f'"{key}" = "{value}"\n' if l.startswith(f'"{key}"') else l for l in lines]
        if not any(l.startswith(f'"{key}"') for l in lines):
            lines.append(f'"{key}" = "{value}"\n')
    body = "".join(lines)
    path.write_text(body + "# crc32 %08x\n" % zlib.crc32(body.encode()))


def test_a_directory_of_another_cluster_stops_the_node(request, tmp_path):
    """Fail-stop end to end: a node whose directory says it belongs to another cluster
    (a backup restored onto the wrong machine) exits non-zero with the reason, and the
    rest of the cluster keeps serving."""
    c = started_cluster(request, tmp_path, 3)
    c.create_topic(TOPIC, 1, 3)
    c.down.add(3)
    c.nodes[3].stop()
    rewrite_identity(c.nodes[3].data_dir / "node.identity", **{"cluster.id": "strata-elsewhere"})
    c.nodes[3].spawn()
    code = c.nodes[3].proc.wait(timeout=CLUSTER_DEADLINE_S)
    log = c.nodes[3].stderr_text(max_lines=200)
    assert code not in (0, None), f"exit status {code}"
    assert "belongs to cluster strata-elsewhere" in log, log
    produce_values(c.bootstrap_of([1, 2]), TOPIC, 0, [b"still-served"])
