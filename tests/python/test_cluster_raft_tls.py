"""Three `strata serve` processes whose Raft port runs mutual TLS (`RAFT:SSL` in
`listener.security.protocol.map`, certificates made by the test) with a configured
`cluster.id`: the cluster forms, commits acks=all writes and reports the configured id
to clients; a plaintext connection to a Raft port (the forged-frame attack) and a node
of another cluster with a trusted certificate are refused at the handshake, counted in
`strata_raft_transport_connections_refused`, and the cluster goes on committing. The
nodes' keystore is then rewritten twice: a broken file is refused (the old certificate
stays), a rotated one is reloaded without a restart and used by new connections.

Select it with `-m cluster` (marker and failure logs from cluster_plugin.py).
"""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import warnings
from pathlib import Path

import pytest

from cluster_harness import deliver, started_cluster, wait_for
from harness import free_port, strata_bin, toml_text
from pki import Authority

pytest_plugins = ["cluster_plugin"]

with warnings.catch_warnings():
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

CLUSTER_ID = "raft-tls-test"
TOPIC = "over-mtls-raft"


def refused(node) -> float:
    m = re.search(r"^strata_raft_transport_connections_refused (\S+)$", node.metrics(), re.M)
    return float(m.group(1)) if m else 0.0


def raft_security(ca: Authority, folder) -> dict:
    node_cert = ca.issue(folder, "raft-node", server=True, client_too=True)
    return {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,RAFT:SSL",
        "listener.name.raft.ssl.keystore.location": str(node_cert.keystore),
        "listener.name.raft.ssl.truststore.location": str(ca.ca_path),
        "cluster.id": CLUSTER_ID,
    }


def spawn_impostor(folder, node1_raft: str, config: dict) -> subprocess.Popen:
    """A broker claiming to be node 3 of a cluster whose node 1 is `node1_raft`."""
    folder.mkdir(parents=True)
    (folder / "strata.toml").write_text(toml_text(config))
    raft = f"127.0.0.1:{free_port()}"
    cmd = [str(strata_bin()), "serve", "--data-dir", str(folder / "data"),
           "--node-id", "3", "--raft-addr", raft, "--peers", f"1={node1_raft},3={raft}",
           "--kafka-addr", f"127.0.0.1:{free_port()}", "--admin-addr", f"127.0.0.1:{free_port()}",
           "--config", str(folder / "strata.toml")]
    with open(folder / "stderr", "ab") as err:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)


def test_mutual_tls_raft_refuses_strangers(request, tmp_path):
    ca = Authority.create(tmp_path / "pki", "cluster-ca")
    security = raft_security(ca, tmp_path / "pki")
    c = started_cluster(request, tmp_path / "cluster", 3, config=security)
    c.wait_registered()
    assert set(c.metadata_cluster_ids().values()) == {CLUSTER_ID}
    c.create_topic(TOPIC, 1, 3)
    conf = {"bootstrap.servers": c.bootstrap, "acks": "all"}
    values = [f"v{i}".encode() for i in range(50)]
    acked, failed, pending = deliver(conf, TOPIC, 0, values, 60)
    assert len(acked) == 50 and not failed and not pending

    # Plaintext on a TLS Raft port: the forged heartbeat of a stranger never arrives.
    node1 = c.node(1)
    before = refused(node1)
    with socket.create_connection(("127.0.0.1", node1.raft_port), timeout=10) as s:
        s.sendall(struct.pack(">IIQ", 12, 0, 1) + b"\xff" * 12)
        s.settimeout(10)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass  # a reset is a close too
    wait_for(lambda: (refused(node1) > before, f"refused {refused(node1)}"), 30,
             "node 1 to count the plaintext connection refused")

    # A node of another cluster, with a certificate the cluster trusts, posing as node 3.
    before = refused(node1)
    impostor = spawn_impostor(tmp_path / "impostor", node1.raft_addr,
                              {**security, "cluster.id": "another-cluster"})
    try:
        wait_for(lambda: (refused(node1) > before, f"refused {refused(node1)}"), 30,
                 "node 1 to refuse the other cluster's node")
    finally:
        impostor.kill()
        impostor.wait()

    # The cluster is unaffected.
    acked, failed, pending = deliver(conf, TOPIC, 0, [b"after"], 60)
    assert len(acked) == 1 and not failed and not pending
    assert all(c.node(i).health() == 200 for i in c.ids)

    rotate_certificates(c, ca, tmp_path / "pki", security, conf)


def reloads(node, outcome: str) -> float:
    return node.metric("strata_tls_certificate_reloads_total", listener="RAFT", outcome=outcome)


def rotate_certificates(c, ca: Authority, folder, security: dict, conf: dict) -> None:
    """Every node reloads a rewritten keystore without a restart: a broken file is
    refused and the old certificate stays; a new one is used by new connections (node 2
    restarted, node 3 killed: commits need nodes 1 and 2 to handshake afresh)."""
    keystore = Path(security["listener.name.raft.ssl.keystore.location"])
    original = keystore.read_bytes()
    keystore.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n")
    wait_for(lambda: (all(reloads(c.node(i), "failed") >= 1 for i in c.ids), "no failed reload"),
             30, "every node to refuse the broken keystore")
    acked, failed, pending = deliver(conf, TOPIC, 0, [b"broken-file"], 60)
    assert len(acked) == 1 and not failed and not pending

    rotated = ca.issue(folder, "raft-node-rotated", server=True, client_too=True)
    assert rotated.keystore.read_bytes() != original
    keystore.write_bytes(rotated.keystore.read_bytes())
    wait_for(lambda: (all(reloads(c.node(i), "ok") >= 1 for i in c.ids), "no reload yet"),
             30, "every node to reload the rotated keystore")
    c.kill(2)
    c.restart(2)
    c.kill(3)
    acked, failed, pending = deliver(conf, TOPIC, 0, [b"rotated"], 60)
    assert len(acked) == 1 and not failed and not pending
    c.restart(3)
