"""Transactions on three brokers (cluster_harness.Cluster), with confluent-kafka: the
partitions of a transaction are led by different brokers, so the coordinator writes
markers through other brokers, and partition leaders ask the coordinator about
transactional batches, both over the Raft transport's calls between nodes.

1. Commit and abort across partitions led by every broker: read_committed sees exactly
   the committed records.
2. Consume-transform-produce (eos_app.py) stays exactly-once while the test SIGKILLs
   the app and, once, the broker that leads the first output partition.

Select them with `-m cluster`.
"""

from __future__ import annotations

import warnings

import pytest
from confluent_kafka import Producer

from cluster_harness import started_cluster
from txnkit import in_partition_order, read_to_end, run_eos

pytest_plugins = ["cluster_plugin"]

with warnings.catch_warnings():
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

PARTITIONS = 6


def test_transactions_span_partitions_led_by_every_broker(request, tmp_path):
    c = started_cluster(request, tmp_path, 3)
    c.create_topic("ctxn", PARTITIONS, 3)
    leaders = {c.wait_leader("ctxn", p) for p in range(PARTITIONS)}
    assert len(leaders) > 1, f"every partition led by one broker: {leaders}"
    p = Producer({"bootstrap.servers": c.bootstrap, "transactional.id": "ctxn", "linger.ms": 5})
    p.init_transactions(60)
    committed = []
    for n, outcome in enumerate(["commit", "abort", "commit"]):
        p.begin_transaction()
        values = []
        for part in range(PARTITIONS):
            for i in range(20):
                v = f"t{n}:ctxn:{part}:{i}".encode()
                p.produce("ctxn", value=v, partition=part)
                values.append(v)
        if outcome == "commit":
            p.commit_transaction(60)
            committed += values
        else:
            p.flush(60)
            p.abort_transaction(60)
    seen = read_to_end(c.bootstrap, ("ctxn",), "read_committed", partitions=PARTITIONS)
    assert seen == in_partition_order(committed)
    everything = read_to_end(c.bootstrap, ("ctxn",), "read_uncommitted", partitions=PARTITIONS)
    assert len(everything) == 3 * 20 * PARTITIONS


def test_consume_transform_produce_survives_killed_leaders(request, tmp_path):
    c = started_cluster(request, tmp_path, 3, config={"group.initial.rebalance.delay.ms": 0})
    for t in ("eos-in", "eos-out"):
        c.create_topic(t, PARTITIONS, 3)

    def kill_output_leader():
        leader = c.wait_leader("eos-out", 0)
        c.kill(leader)
        c.restart(leader)

    run_eos(lambda: c.bootstrap_of(c.running_ids()), PARTITIONS, tmp_path,
            {0.25: None, 0.5: kill_output_leader, 0.75: None}, records=1000)
