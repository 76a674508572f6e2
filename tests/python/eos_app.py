"""A consume-transform-produce app for test_cluster_transactions.py, run as its own process so
the test can SIGKILL it: reads `IN` as group `GROUP` (read_committed, static
membership), writes each record's value prefixed with b"out:" to the same partition of
`OUT`, and commits its input offsets in the same transaction, one transaction per
polled batch. Runs until SIGTERM or SIGKILL.

    python eos_app.py BOOTSTRAP IN OUT GROUP TRANSACTIONAL_ID
"""

from __future__ import annotations

import signal
import sys

from confluent_kafka import Consumer, Producer


def main() -> None:
    bootstrap, source, sink, group, tid = sys.argv[1:6]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.instance.id": f"{group}-only",
        "session.timeout.ms": 6000,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "transactional.id": tid,
        "linger.ms": 1,
    })
    producer.init_transactions(60)
    consumer.subscribe([source])
    while not stop:
        batch = consumer.consume(num_messages=50, timeout=0.5)
        records = [m for m in batch if m.error() is None]
        if not records:
            continue
        producer.begin_transaction()
        for m in records:
            producer.produce(sink, value=b"out:" + m.value(), partition=m.partition())
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 60)
        producer.commit_transaction(60)
    consumer.close()


if __name__ == "__main__":
    main()
