"""confluent-kafka (librdkafka): an idempotent acks=all producer with compression and
headers, then assign()+seek reads of every partition from offset 0."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from kclients import consumer, create_topic, watermarks
from records import assert_compressed, assert_consumed_equal, expected_by_partition, make_records

PARTITIONS = 4
RECORDS = 100_000


def produce_all(bootstrap: str, topic: str, sent, compression: str) -> dict[int, tuple[int, int]]:
    """Sends every record; returns index -> (partition, offset) from the delivery reports."""
    delivered: dict[int, tuple[int, int]] = {}
    errors = []

    def report(index):
        def cb(err, msg):
            if err is not None:
                errors.append((index, err))
            else:
                delivered[index] = (msg.partition(), msg.offset())
        return cb

    p = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": compression,
        "linger.ms": 5,
    })
    for s in sent:
        while True:
            try:
                p.produce(topic, value=s.value, key=s.key, headers=list(s.headers),
                          on_delivery=report(s.index))
                break
            except BufferError:
                p.poll(0.1)  # the local queue is full: serve delivery reports, then retry
        p.poll(0)
    left = p.flush(60)
    assert left == 0, f"{left} records still undelivered after 60 s"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:3]}"
    return delivered


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_confluent_idempotent_compressed_with_headers(broker, compression):
    topic = f"confluent-{compression}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    sent = make_records(RECORDS, "confluent", seed=1)

    t0 = time.monotonic()
    delivered = produce_all(broker.bootstrap, topic, sent, compression)
    produce_s = time.monotonic() - t0
    expected = expected_by_partition(sent, delivered)
    assert len(expected) == PARTITIONS, f"records reached only partitions {sorted(expected)}"

    marks = watermarks(broker.bootstrap, topic, PARTITIONS)
    assert marks == {p: (0, len(expected[p])) for p in range(PARTITIONS)}, marks

    # Read every partition from offset 0 with assign() + seek(), no group.
    t0 = time.monotonic()
    c = consumer(broker.bootstrap)
    consumed = {p: [] for p in range(PARTITIONS)}
    try:
        # assign at a logical offset, then seek each partition to 0 explicitly.
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        for p in range(PARTITIONS):
            c.seek(TopicPartition(topic, p, 0))
        pending = {p for p in range(PARTITIONS) if expected[p]}
        deadline = time.monotonic() + 120
        while pending:
            assert time.monotonic() < deadline, f"partitions {pending} not read to the end"
            for m in c.consume(num_messages=10000, timeout=1.0):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(m.error())
                p = m.partition()
                consumed[p].append((m.offset(), m.key(), m.value(), tuple(m.headers() or ())))
                if m.offset() == len(expected[p]) - 1:
                    pending.discard(p)
    finally:
        c.close()
    consume_s = time.monotonic() - t0

    assert_consumed_equal(expected, consumed)
    # The batches are stored as the client compressed them. (librdkafka sends a batch
    # uncompressed when compression would not shrink it: a lone small record.)
    batches = [b for p in range(PARTITIONS)
               for b in broker.dump_batches(broker.partition_dir(topic, p))]
    assert_compressed(batches, compression, "librdkafka")
    # The idempotent producer stamped every batch with its producer id and sequence.
    assert all(b["producer_id"] >= 0 and b["base_sequence"] >= 0 for b in batches), (
        "a batch without a producer id: idempotence is off"
    )
    print(f"{compression}: produce {produce_s:.1f} s, consume {consume_s:.1f} s")

    broker.stop()
    broker.assert_all_verified(min_dirs=PARTITIONS)
