"""kafka-python (a pure-Python client with its own protocol code): admin CreateTopics, an
idempotent acks=all producer with compression and headers, then assign()+seek reads of
every partition from offset 0, and ListOffsets through end_offsets()."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from records import assert_compressed, assert_consumed_equal, expected_by_partition, make_records

PARTITIONS = 4
RECORDS = 30_000


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        resp = a.create_topics([NewTopic(topic, partitions, 1)], timeout_ms=30000)
        # kafka-python raises on a topic error; check the answer names our topic anyway.
        errors = getattr(resp, "topic_errors", None) or getattr(resp, "topics", None)
        if errors is not None:
            for entry in errors:
                name, code = entry[0], entry[1]
                assert name == topic and code == 0, f"CreateTopics answered {entry}"
    finally:
        a.close()


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_kafka_python_idempotent_compressed_with_headers(broker, compression):
    topic = f"kafka-python-{compression}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    sent = make_records(RECORDS, "kafka-python", seed=2, null_header_values=False,
                        null_key_and_value=False)

    delivered: dict[int, tuple[int, int]] = {}
    errors = []
    t0 = time.monotonic()
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        # kafka-python 3.0 implements the idempotent producer (InitProducerId, sequences).
        enable_idempotence=True,
        acks="all",
        compression_type=compression,
        linger_ms=5,
        batch_size=256 * 1024,
    )
    try:
        # kafka-python reports what it decided; idempotence must really be on.
        assert producer.config["enable_idempotence"] is True
        for s in sent:
            fut = producer.send(topic, key=s.key, value=s.value, headers=list(s.headers))
            fut.add_callback(lambda md, i=s.index: delivered.__setitem__(i, (md.partition, md.offset)))
            fut.add_errback(lambda e, i=s.index: errors.append((i, e)))
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=30)
    produce_s = time.monotonic() - t0
    assert not errors, f"{len(errors)} send errors, first: {errors[:3]}"
    expected = expected_by_partition(sent, delivered)
    assert len(expected) == PARTITIONS, f"records reached only partitions {sorted(expected)}"

    t0 = time.monotonic()
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=None,  # no group: assign() + seek(), nothing committed
        enable_auto_commit=False,
        auto_offset_reset="none",
    )
    consumed = {p: [] for p in range(PARTITIONS)}
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        ends = consumer.end_offsets(tps)
        assert ends == {tp: len(expected[tp.partition]) for tp in tps}, ends
        begins = consumer.beginning_offsets(tps)
        assert begins == {tp: 0 for tp in tps}, begins

        pending = {p for p in range(PARTITIONS) if expected[p]}
        deadline = time.monotonic() + 180
        while pending:
            assert time.monotonic() < deadline, f"partitions {pending} not read to the end"
            for tp, msgs in consumer.poll(timeout_ms=1000, max_records=20000).items():
                for m in msgs:
                    consumed[tp.partition].append((m.offset, m.key, m.value, tuple(m.headers)))
                if consumed[tp.partition] and consumed[tp.partition][-1][0] >= len(expected[tp.partition]) - 1:
                    pending.discard(tp.partition)
    finally:
        consumer.close(autocommit=False)
    consume_s = time.monotonic() - t0

    assert_consumed_equal(expected, consumed)
    batches = [b for p in range(PARTITIONS)
               for b in broker.dump_batches(broker.partition_dir(topic, p))]
    assert_compressed(batches, compression, "kafka-python")
    # The idempotent producer stamped every batch with its producer id.
    assert all(b["producer_id"] >= 0 for b in batches), "a batch without a producer id"
    print(f"{compression}: produce {produce_s:.1f} s, consume {consume_s:.1f} s")

    broker.stop()
    broker.assert_all_verified(min_dirs=PARTITIONS)
