"""ListOffsets through confluent-kafka: offsets_for_times (first offset whose timestamp is
≥ T), earliest/latest watermarks, both after DeleteRecords moved the log start."""

from __future__ import annotations

import time

from confluent_kafka import Producer, TopicPartition

from kclients import admin, consumer, create_topic, read_partitions, watermarks

TOPIC = "timestamps"
RECORDS = 60
STEP_MS = 1000
#: Partition 0 gets all records in a few large batches (lookup inside a batch);
#: partition 1 one batch per record (lookup across batches).
BATCHED, ONE_PER_BATCH = 0, 1


def offset_for_time(c, partition: int, ts: int) -> int:
    [tp] = c.offsets_for_times([TopicPartition(TOPIC, partition, ts)], timeout=10)
    assert tp.error is None, f"offsets_for_times({partition}, {ts}): {tp.error}"
    return tp.offset


def test_offsets_for_times_and_watermarks(broker):
    # retention.ms=-1: the timestamps lie an hour in the past, and time retention must not
    # take them away mid-test.
    create_topic(broker.bootstrap, TOPIC, 2, config={"retention.ms": "-1"})
    t0 = (int(time.time()) - 3600) * 1000
    stamps = [t0 + i * STEP_MS for i in range(RECORDS)]

    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                  "enable.idempotence": True, "linger.ms": 50})
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)

    for i, ts in enumerate(stamps):
        p.produce(TOPIC, value=b"b%d" % i, partition=BATCHED, timestamp=ts, on_delivery=report)
    assert p.flush(30) == 0
    for i, ts in enumerate(stamps):
        p.produce(TOPIC, value=b"s%d" % i, partition=ONE_PER_BATCH, timestamp=ts, on_delivery=report)
        assert p.flush(30) == 0
    assert not errors, errors

    batches = {part: broker.dump_batches(broker.partition_dir(TOPIC, part)) for part in (0, 1)}
    assert len(batches[ONE_PER_BATCH]) == RECORDS, "expected one batch per record in partition 1"
    assert len(batches[BATCHED]) < RECORDS // 4, "expected few, large batches in partition 0"

    assert watermarks(broker.bootstrap, TOPIC, 2) == {0: (0, RECORDS), 1: (0, RECORDS)}
    # The stored timestamps are the ones sent (CreateTime).
    log = read_partitions(broker.bootstrap, TOPIC, {0: RECORDS, 1: RECORDS})
    for part in (0, 1):
        assert [r.timestamp for r in log[part]] == stamps, f"partition {part}: timestamps differ"

    c = consumer(broker.bootstrap)
    try:
        for part in (BATCHED, ONE_PER_BATCH):
            assert offset_for_time(c, part, 0) == 0
            assert offset_for_time(c, part, t0 - 1) == 0
            for k, ts in enumerate(stamps):
                assert offset_for_time(c, part, ts) == k, f"partition {part}: T = t0 + {k} s"
                if k > 0:
                    assert offset_for_time(c, part, ts - STEP_MS // 2) == k, (
                        f"partition {part}: T = t0 + {k - 0.5} s"
                    )
                want = k + 1 if k + 1 < RECORDS else -1  # past the last timestamp: -1
                assert offset_for_time(c, part, ts + 1) == want, (
                    f"partition {part}: T = t0 + {k} s + 1 ms"
                )
            assert offset_for_time(c, part, stamps[-1] + 3_600_000) == -1

        # DeleteRecords moves the log start: earliest and the time lookup follow it.
        cut = 10
        a = admin(broker.bootstrap)  # keep a reference: the futures die with the client
        futures = a.delete_records(
            [TopicPartition(TOPIC, part, cut) for part in (0, 1)], operation_timeout=30
        )
        for tp, fut in futures.items():
            res = fut.result(timeout=30)
            assert res.low_watermark == cut, f"{tp}: DeleteRecords low watermark {res.low_watermark}"
        assert watermarks(broker.bootstrap, TOPIC, 2) == {0: (cut, RECORDS), 1: (cut, RECORDS)}
        # Kafka searches from the log start: never an offset below it.
        wrong = []
        for part in (BATCHED, ONE_PER_BATCH):
            for ts, want in ((t0 - 1, cut), (stamps[cut // 2], cut), (stamps[cut], cut),
                             (stamps[cut + 5], cut + 5), (stamps[-1], RECORDS - 1)):
                got = offset_for_time(c, part, ts)
                if got != want:
                    wrong.append(f"partition {part}, T = t0 + {(ts - t0) / 1000:g} s: {got}, want {want}")
        assert not wrong, "after DeleteRecords to offset %d:\n  %s" % (cut, "\n  ".join(wrong))
    finally:
        c.close()

    # Reading from the new log start gives the records from the cut on.
    log = read_partitions(broker.bootstrap, TOPIC, {0: RECORDS, 1: RECORDS}, start={0: cut, 1: cut})
    for part, prefix in ((0, b"b"), (1, b"s")):
        assert [r.offset for r in log[part]] == list(range(cut, RECORDS))
        assert [r.value for r in log[part]] == [prefix + b"%d" % i for i in range(cut, RECORDS)]

    # The watermarks survive a restart.
    broker.restart()
    assert watermarks(broker.bootstrap, TOPIC, 2) == {0: (cut, RECORDS), 1: (cut, RECORDS)}
    broker.stop()
    broker.assert_all_verified(min_dirs=2)
