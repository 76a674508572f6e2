"""Transactions against idempotence, measured against a `strata serve` this script
starts (release build recommended), with confluent-kafka (librdkafka) as the client:

  * produce: --seconds of 1 KiB records to a fresh topic of 1 and of 8 partitions, by an
    idempotent producer (acks=all) and by a transactional one that commits every
    --commit-ms (100 by default), modes alternating run by run; msgs/s acknowledged
    (the transactional ones counted only once their transaction committed);
  * consume: everything the transactional runs wrote (aborted nothing, markers between
    every 100 ms of records), read from offset 0 by a read_committed and by a
    read_uncommitted assign() consumer, alternating; msgs/s from the first record to
    the last.

Medians of --runs for each, with the ratio of the medians. Prints one JSON object.

Usage: .venv/bin/python benches/txn_bench.py --strata target/release/strata
       [--runs 3] [--seconds 5] [--commit-ms 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "python"))

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402

from harness import Broker  # noqa: E402
from kclients import create_topic  # noqa: E402

VALUE = b"x" * 1024


def produce(bootstrap: str, topic: str, partitions: int, seconds: float,
            commit_ms: int | None, tid: str) -> float:
    """msgs/s acknowledged by an idempotent producer, or (`commit_ms`) committed by a
    transactional one."""
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all",
            "enable.idempotence": True, "queue.buffering.max.messages": 200_000}
    if commit_ms is not None:
        conf["transactional.id"] = tid
    p = Producer(conf)
    done = [0]

    def delivered(err, _msg):
        if err is None:
            done[0] += 1
        else:
            raise KafkaException(err)

    if commit_ms is not None:
        p.init_transactions(30)
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < seconds:
        if commit_ms is not None:
            p.begin_transaction()
        window_end = time.monotonic() + (commit_ms or 100) / 1000
        while time.monotonic() < window_end:
            try:
                p.produce(topic, VALUE, partition=sent % partitions, on_delivery=delivered)
                sent += 1
            except BufferError:
                p.poll(0.001)
        if commit_ms is not None:
            p.commit_transaction(30)
        p.poll(0)
    p.flush(60)
    elapsed = time.monotonic() - start
    assert done[0] == sent, f"{sent - done[0]} records not acknowledged"
    return sent / elapsed


def consume(bootstrap: str, topic: str, partitions: int, isolation: str) -> float:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "txn-bench",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": isolation, "fetch.max.bytes": 52428800})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    pending, n, first = set(range(partitions)), 0, None
    while pending:
        for m in c.consume(num_messages=10_000, timeout=1.0):
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(m.partition())
                    continue
                raise KafkaException(m.error())
            first = first or time.monotonic()
            n += 1
    elapsed = time.monotonic() - (first or time.monotonic())
    c.close()
    return n / elapsed if elapsed > 0 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--strata", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--commit-ms", type=int, default=100)
    args = ap.parse_args()
    os.environ["STRATA_BIN"] = args.strata
    root = Path(tempfile.mkdtemp(prefix="txn-bench-"))
    b = Broker(root / "data", root / "strata-serve.stderr")
    b.start()
    out: dict = {"seconds": args.seconds, "commit_ms": args.commit_ms, "runs": args.runs}
    try:
        for partitions in (1, 8):
            rates: dict[str, list[float]] = {"idempotent": [], "transactional": []}
            for run in range(args.runs):
                order = ["idempotent", "transactional"]
                if run % 2:
                    order.reverse()
                for mode in order:
                    topic = f"{mode}-{partitions}-{run}"
                    create_topic(b.bootstrap, topic, partitions)
                    commit = args.commit_ms if mode == "transactional" else None
                    rates[mode].append(produce(b.bootstrap, topic, partitions, args.seconds,
                                               commit, f"bench-{partitions}-{run}"))
            med = {m: statistics.median(v) for m, v in rates.items()}
            out[f"produce_{partitions}p"] = {
                "msgs_per_sec": rates, "median": med,
                "ratio": med["transactional"] / med["idempotent"]}
            reads: dict[str, list[float]] = {"read_committed": [], "read_uncommitted": []}
            for run in range(args.runs):
                order = ["read_committed", "read_uncommitted"]
                if run % 2:
                    order.reverse()
                for iso in order:
                    reads[iso].append(consume(b.bootstrap, f"transactional-{partitions}-{run}",
                                              partitions, iso))
            med = {m: statistics.median(v) for m, v in reads.items()}
            out[f"consume_{partitions}p"] = {
                "msgs_per_sec": reads, "median": med,
                "ratio": med["read_committed"] / med["read_uncommitted"]}
    finally:
        b.stop()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
