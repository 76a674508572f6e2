"""Client quotas with confluent-kafka (librdkafka honours throttle_time_ms, KIP-219).
A producer over its `producer_byte_rate` is throttled and its rate converges to the quota
(within 20 %, measured after the first 11 s, once the 10 s burst a new client may send
has been paid for); a consumer over `consumer_byte_rate` is throttled too.
Quotas are set with AlterClientQuotas on the wire (kafka-python and confluent-kafka have
no client-quota API) and read back with DescribeClientQuotas; each client's usage and
throttle time are in /metrics."""

from __future__ import annotations

import json
import socket
import struct
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from harness import wait_until
from kwire import frame, kstring, read_response, request_header

TOPIC = "quoted"
QUOTA = 512 * 1024
#: Kafka's quota window: 11 samples of 1 s, judged over at least 10 s.
WINDOW_S = 11
MEASURE_S = 12


def alter_quota(bootstrap: str, entity: list[tuple[str, str | None]], key: str, value: float) -> None:
    """AlterClientQuotas v0 with one entity and one key set."""
    body = request_header(49, 0, 7) + struct.pack(">i", 1)
    body += struct.pack(">i", len(entity)) + b"".join(kstring(t) + kstring(n) for t, n in entity)
    body += struct.pack(">i", 1) + kstring(key) + struct.pack(">d?", value, False)
    body += struct.pack(">?", False)
    host, port = bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(frame(body))
        reply = read_response(s)
    assert reply is not None
    _corr, _throttle, n, code = struct.unpack(">iiih", reply[:14])
    assert (n, code) == (1, 0), f"AlterClientQuotas answered {n} entries, error {code}"


def described_quota(bootstrap: str, client_id: str) -> list[tuple[str, float]]:
    """DescribeClientQuotas v0 for one client id: its (key, value) pairs."""
    body = request_header(48, 0, 8) + struct.pack(">i", 1)
    body += kstring("client-id") + struct.pack(">b", 0) + kstring(client_id) + struct.pack(">?", True)
    host, port = bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(frame(body))
        reply = read_response(s)
    assert reply is not None
    pos = 8
    code, msg_len = struct.unpack(">hh", reply[pos:pos + 4])
    assert code == 0
    pos += 4 + max(msg_len, 0)
    (entries,) = struct.unpack(">i", reply[pos:pos + 4])
    pos += 4
    values = []
    for _ in range(entries):
        (n_entity,) = struct.unpack(">i", reply[pos:pos + 4])
        pos += 4
        for _ in range(n_entity):
            for _ in range(2):
                (ln,) = struct.unpack(">h", reply[pos:pos + 2])
                pos += 2 + max(ln, 0)
        (n_values,) = struct.unpack(">i", reply[pos:pos + 4])
        pos += 4
        for _ in range(n_values):
            (ln,) = struct.unpack(">h", reply[pos:pos + 2])
            key = reply[pos + 2:pos + 2 + ln].decode()
            pos += 2 + ln
            (value,) = struct.unpack(">d", reply[pos:pos + 8])
            pos += 8
            values.append((key, value))
    return values


def test_a_producer_over_its_byte_rate_converges_to_the_quota(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(60)
    alter_quota(broker.bootstrap, [("client-id", "throttled")], "producer_byte_rate", QUOTA)
    assert described_quota(broker.bootstrap, "throttled") == [("producer_byte_rate", QUOTA)]

    throttles: list[float] = []

    def stats(text: str) -> None:
        for b in json.loads(text)["brokers"].values():
            throttles.append(b["throttle"]["max"])

    delivered: list[tuple[float, int]] = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "client.id": "throttled",
                  # Small batches: the measured span's edges cut few bytes.
                  "acks": 1, "linger.ms": 5, "batch.size": 65536, "statistics.interval.ms": 500,
                  "stats_cb": stats, "queue.buffering.max.kbytes": 4096})
    value = b"q" * 1000
    started = time.monotonic()
    end = started + WINDOW_S + MEASURE_S
    while time.monotonic() < end:
        try:
            p.produce(TOPIC, value, on_delivery=lambda err, m: err is None and
                      delivered.append((time.monotonic(), len(m.value()))))
        except BufferError:
            p.poll(0.05)
        p.poll(0)
    p.flush(60)
    measured_from = started + WINDOW_S
    in_window = sum(n for t, n in delivered if measured_from <= t <= end)
    rate = in_window / (end - measured_from)
    print(f"produce rate after the first window: {rate / 1024:.0f} KiB/s against a quota of "
          f"{QUOTA / 1024:.0f} KiB/s")
    # Value bytes are a little less than the request bytes the quota counts.
    assert 0.8 * QUOTA <= rate <= 1.2 * QUOTA
    assert max(throttles) > 0, "librdkafka never saw throttle_time_ms"
    labels = {"quota": "producer_byte_rate", "user": "", "client_id": "throttled"}
    assert broker.metric("strata_client_quota_throttle_seconds_total", **labels) > 0
    assert broker.metric("strata_client_quota_usage_total", **labels) >= sum(n for _, n in delivered)

    # A consumer over consumer_byte_rate is throttled too.
    alter_quota(broker.bootstrap, [("client-id", "slow-reader")], "consumer_byte_rate", QUOTA)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "client.id": "slow-reader",
                  "group.id": "slow", "auto.offset.reset": "earliest"})
    c.subscribe([TOPIC])
    labels = {"quota": "consumer_byte_rate", "user": "", "client_id": "slow-reader"}

    def throttled() -> bool:
        c.poll(0.2)
        return broker.metric("strata_client_quota_throttle_seconds_total", **labels) > 0

    wait_until(throttled, 60, "the consumer to be throttled")
    c.close()
