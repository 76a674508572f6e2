"""An audit topic on three brokers (replication factor 3): every replica builds the same
Merkle tree over the committed batches, and after the leader is SIGKILLed the new
leader's tree extends the old one: a consistency proof from the head the old leader
served checks against that head's root (with test_audit_topics.py's independent Python
verifier). The killed broker, restarted, rebuilds its tree from its segments and reaches
the same head."""

from __future__ import annotations

from cluster_harness import started_cluster, wait_for
from test_audit_topics import _get, _produce_batches, _verify_consistency

TOPIC = "audit-replicated"


def _same_head_everywhere(c, size: int) -> dict:
    """Waits until every running replica serves a head of `size` leaves, all with one
    root; that head."""
    def cond():
        heads = {i: _get(c.node(i), f"/audit/{TOPIC}/0/head") for i in c.running_ids()}
        roots = {h["root_hash"] for h in heads.values()}
        sizes = {h["tree_size"] for h in heads.values()}
        return (next(iter(heads.values())) if sizes == {size} and len(roots) == 1 else None,
                f"heads {heads}")

    return wait_for(cond, 30, f"every replica's head at {size} leaves")


def test_replicas_build_one_tree_and_a_new_leader_extends_it(request, tmp_path):
    c = started_cluster(request, tmp_path, 3)
    c.create_topic(TOPIC, 1, 3, config={"audit.enabled": "true"})
    _produce_batches(c.bootstrap, TOPIC, 20, "before")
    first = _same_head_everywhere(c, 20)

    old = c.wait_leader(TOPIC, 0)
    c.kill(old)
    others = [i for i in c.ids if i != old]
    new = c.wait_leader(TOPIC, 0, among=others)
    _produce_batches(c.bootstrap_of(others), TOPIC, 15, "after")
    later = _same_head_everywhere(c, 35)
    proof = _get(c.node(new), f"/audit/{TOPIC}/0/consistency?from=20&to=35")
    assert proof["from_root"] == first["root_hash"] and proof["to_root"] == later["root_hash"]
    path = [bytes.fromhex(h) for h in proof["proof"]]
    assert _verify_consistency(20, 35, path, bytes.fromhex(first["root_hash"]),
                               bytes.fromhex(later["root_hash"]))

    c.restart(old)
    assert _same_head_everywhere(c, 35)["root_hash"] == later["root_hash"]
