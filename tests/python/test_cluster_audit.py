"""An audit topic on three brokers (replication factor 3): every replica builds the same
Merkle tree over the committed batches, and after the leader is SIGKILLed the new
leader's tree extends the old one: a consistency proof from the head the old leader
served checks against that head's root (with test_audit_topics.py's independent Python
verifier). The killed broker, restarted, rebuilds its tree from its segments and reaches
the same head. A replica whose batch was changed on disk while it was down is caught by
the heads logged through Raft when it opens its log, and taken out of service; one that
leads with such a batch signs a head the other replicas outvote, and it is the one taken
out of service."""

from __future__ import annotations

from cluster_harness import started_cluster, wait_for
from test_audit_topics import (_answer, _change_batch, _get, _post_log_head, _produce_batches,
                               _verify_consistency)

TOPIC = "audit-replicated"


def _same_head_everywhere(c, size: int, ids=None) -> dict:
    """Waits until every running replica (of `ids`) serves a head of `size` leaves, all
    with one root; that head."""
    def cond():
        heads = {i: _get(c.node(i), f"/audit/{TOPIC}/0/head") for i in ids or c.running_ids()}
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


def test_a_replica_whose_batch_changed_is_taken_out_of_service(request, tmp_path):
    """A follower's batch is changed on disk while it is down, its CRC fixed, so that only
    the tree can tell. Restarted, it finds its tree contradicting the heads the leader
    logged through Raft: it serves nothing (503 on the admin port),
    `strata_audit_diverged_partitions` reads 1 and /health names the partition, while
    the two other replicas go on with the same tree."""
    c = started_cluster(request, tmp_path, 3)
    c.create_topic(TOPIC, 1, 3, config={"audit.enabled": "true", "audit.head.interval.ms": "200",
                                        "segment.bytes": "4096"})
    _produce_batches(c.bootstrap, TOPIC, 30, "x")
    _same_head_everywhere(c, 30)

    def logged_everywhere(size):
        sizes = {i: [h["tree_size"] for h in _get(c.node(i), f"/audit/{TOPIC}/0/heads")["heads"]]
                 for i in c.running_ids()}
        return all(size in s for s in sizes.values()), f"logged head sizes {sizes}"

    wait_for(lambda: logged_everywhere(30), 30, "a logged head of 30 leaves on every replica")
    leader = c.wait_leader(TOPIC, 0)
    victim = next(i for i in c.ids if i != leader)
    others = [i for i in c.ids if i != victim]
    c.kill(victim)
    node = c.node(victim)
    _change_batch(node.partition_dir(TOPIC, 0), 3)
    node.spawn()

    def out_of_service():
        try:
            diverged = node.metric("strata_audit_diverged_partitions")
        except (OSError, AssertionError) as e:
            return False, f"no metrics yet: {e}"
        return diverged == 1, f"strata_audit_diverged_partitions {diverged}"

    wait_for(out_of_service, 60, "the changed replica to be taken out of service")
    conn = node.admin_connection(5.0)
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        status, text = resp.status, resp.read().decode()
    finally:
        conn.close()
    assert status == 503 and f"{TOPIC}/0" in text and "audit tree" in text, (status, text)
    status, body = _answer(node, f"/audit/{TOPIC}/0/head")
    assert status == 503 and "disagrees with a logged head" in body["error"], body

    _produce_batches(c.bootstrap_of(others), TOPIC, 5, "y")
    _same_head_everywhere(c, 35, ids=others)
    for i in others:
        assert c.node(i).metric("strata_audit_diverged_partitions") == 0


def test_a_leader_whose_batch_changed_is_outvoted(request, tmp_path):
    """A follower's batch beyond the last logged head is changed while it is down (so its
    own check at open passes), and it then leads: made the only electable replica by
    letting the third fall behind. The head it signs disagrees with the two other
    replicas' trees; they poll each other and the changed leader, find it in the
    minority, count a bad head and stay in service, while the changed leader takes
    itself out of service and hands its leadership over."""
    c = started_cluster(request, tmp_path, 3)
    c.create_topic(TOPIC, 1, 3, config={"audit.enabled": "true",
                                        "audit.head.interval.ms": "3600000",
                                        "segment.bytes": "4096"})
    _produce_batches(c.bootstrap, TOPIC, 10, "a")

    def first_head_everywhere():
        heads = {i: _get(c.node(i), f"/audit/{TOPIC}/0/heads")["heads"] for i in c.ids}
        return all(heads.values()), f"logged heads {heads}"

    wait_for(first_head_everywhere, 30, "the first logged head on every replica")
    covered = _get(c.node(c.ids[0]), f"/audit/{TOPIC}/0/heads")["heads"][-1]["tree_size"]
    _produce_batches(c.bootstrap, TOPIC, 20, "b")
    _same_head_everywhere(c, 30)
    leader = c.wait_leader(TOPIC, 0)
    changed, third = [i for i in c.ids if i != leader]

    c.kill(changed)
    _change_batch(c.node(changed).partition_dir(TOPIC, 0), max(covered, 20))
    c.restart(changed)
    c.wait_caught_up(changed, TOPIC, 1)
    # The third falls behind, so that only the changed replica can win an election.
    c.kill(third)
    _produce_batches(c.bootstrap_of([leader, changed]), TOPIC, 5, "c")
    c.kill(leader)
    c.restart(third)
    assert c.wait_leader(TOPIC, 0, among=[changed, third]) == changed
    c.restart(leader)
    c.wait_caught_up(leader, TOPIC, 1)

    status, body = _post_log_head(c.node(changed), TOPIC)
    assert status == 200 and body["tree_size"] == 35, body
    node = c.node(changed)

    def outvoted():
        diverged = node.metric("strata_audit_diverged_partitions")
        bad = sum(c.node(i).metric("strata_audit_bad_heads_total") for i in (leader, third))
        return diverged == 1 and bad >= 1, f"changed replica diverged {diverged}, bad heads {bad}"

    wait_for(outvoted, 60, "the changed leader to be outvoted")
    new = c.wait_leader(TOPIC, 0, among=[leader, third])
    for i in (leader, third):
        assert c.node(i).metric("strata_audit_diverged_partitions") == 0
    _produce_batches(c.bootstrap_of([leader, third]), TOPIC, 3, "d")
    assert _get(c.node(new), f"/audit/{TOPIC}/0/head")["tree_size"] >= 38
