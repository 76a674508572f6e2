"""Bad input over raw TCP: truncated frames, random bytes, oversized length prefixes,
every API key 0..=80 with garbage bodies, a RecordBatch with a wrong CRC, ApiVersions at
an unknown version. After each, the broker still runs, a real client (confluent-kafka)
works, the topic's log is unchanged and `strata log verify` passes."""

from __future__ import annotations

import random
import selectors
import socket
import struct
import time

import pytest
from confluent_kafka import Producer

from harness import Broker
from kclients import admin, create_topic, read_partitions, watermarks
from kwire import (
    api_versions_v0, compact_string, connect, frame, parse_produce_v3_response,
    produce_v3, read_response, record_batch, request_header, wait_closed,
)

TOPIC = "fuzz"
SEEDED = 20  # records written by a real client before the bad input
CORRUPT_MESSAGE = 2
UNSUPPORTED_VERSION = 35


@pytest.fixture
def seeded(broker: Broker):
    """The broker with topic `fuzz` (1 partition) holding SEEDED records."""
    create_topic(broker.bootstrap, TOPIC, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(SEEDED):
        p.produce(TOPIC, key=b"k%d" % i, value=b"seed-%d" % i)
    assert p.flush(30) == 0
    assert watermarks(broker.bootstrap, TOPIC, 1) == {0: (0, SEEDED)}
    return broker


def assert_unharmed(broker: Broker, end: int = SEEDED) -> None:
    """The process runs, /health answers, a real client lists the topic, the log ends at
    `end`, holds what the real clients wrote, and verifies clean."""
    broker.assert_alive()
    assert broker.health() == 200
    md = admin(broker.bootstrap).list_topics(timeout=10)
    assert TOPIC in md.topics and md.topics[TOPIC].error is None, md.topics
    assert len(md.brokers) == 1
    assert watermarks(broker.bootstrap, TOPIC, 1) == {0: (0, end)}
    log = read_partitions(broker.bootstrap, TOPIC, {0: end})[0]
    assert [r.value for r in log[:SEEDED]] == [b"seed-%d" % i for i in range(SEEDED)]
    broker.assert_verified(broker.partition_dir(TOPIC, 0))


def drain(socks: dict[socket.socket, int], timeout: float) -> dict[str, int]:
    """Waits until every socket got a response or was closed, or `timeout` passed.
    Responses must carry the request's correlation id. Returns outcome counts."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    outcome = {"response": 0, "closed": 0, "no answer": 0}
    deadline = time.monotonic() + timeout
    while sel.get_map() and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.01, deadline - time.monotonic())):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, BlockingIOError) as e:
                chunk = b"" if isinstance(e, ConnectionResetError) else None
            if chunk is None:
                continue
            if not chunk:
                sel.unregister(s)
                outcome["closed"] += 1
                continue
            bufs[s] += chunk
            buf = bufs[s]
            if len(buf) >= 8:
                (n,) = struct.unpack_from(">i", buf, 0)
                (corr,) = struct.unpack_from(">i", buf, 4)
                assert corr == socks[s], f"response with correlation id {corr}, sent {socks[s]}"
                if len(buf) >= 4 + n:
                    sel.unregister(s)
                    outcome["response"] += 1
    outcome["no answer"] = len(sel.get_map())
    sel.close()
    for s in socks:
        s.close()
    return outcome


def test_truncated_frames(seeded):
    addr = seeded.kafka_addr
    header = request_header(3, 1, 7)  # Metadata v1
    cases = [
        b"\x00\x00",  # half a length prefix
        struct.pack(">i", 100),  # a length prefix, then nothing
        struct.pack(">i", 100) + b"\x00" * 50,  # half the promised bytes
        struct.pack(">i", len(header) + 4) + header,  # a header, the body missing
        frame(header)[:-3],  # cut inside the client id
    ]
    for data in cases:
        with connect(addr) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            assert wait_closed(s), f"broker kept a connection open after EOF mid-frame: {data!r}"
        assert_unharmed(seeded)

    # A connection stalled mid-frame does not hold up anyone else.
    with connect(addr) as stalled:
        stalled.sendall(struct.pack(">i", 1000) + b"\x00" * 10)
        assert_unharmed(seeded)


def test_random_bytes(seeded):
    rng = random.Random(1234)
    socks = {}
    for i in range(60):
        s = connect(seeded.kafka_addr)
        if i % 3 == 0:
            # A plausible length prefix around random bytes: a random "request".
            body = rng.randbytes(rng.randint(8, 300))
            s.sendall(frame(body))
            socks[s] = struct.unpack_from(">i", body, 4)[0]
        else:
            s.sendall(rng.randbytes(rng.randint(1, 4096)))
            s.close()
    outcome = drain(socks, timeout=10)
    print(f"random frames: {outcome}")
    assert_unharmed(seeded)


@pytest.mark.parametrize("length", [100 * 1024 * 1024 + 1, 2**31 - 1, -1, -(2**31)])
def test_oversized_length_prefix_closes_connection(seeded, length):
    with connect(seeded.kafka_addr) as s:
        s.sendall(struct.pack(">i", length) + b"\x00" * 64)
        assert wait_closed(s, timeout=10), f"length prefix {length}: connection left open"
    assert_unharmed(seeded)


def test_every_api_key_with_garbage_bodies(seeded):
    ranges = api_versions_v0(seeded.kafka_addr)
    rng = random.Random(80)
    corr = 1000
    requests = []  # (key, version, flexible header, body)
    for key in range(0, 81):
        lo, hi = ranges.get(key, (0, 3))
        for version in sorted({0, lo, (lo + hi) // 2, hi}):
            for body in (b"", rng.randbytes(8), rng.randbytes(200), b"\xff" * 64, b"\x7f" * 64):
                requests.append((key, version, rng.random() < 0.5, body))
    tally = {"response": 0, "closed": 0, "no answer": 0}
    for start in range(0, len(requests), 100):
        socks = {}
        for key, version, flexible, body in requests[start:start + 100]:
            corr += 1
            s = connect(seeded.kafka_addr)
            s.sendall(frame(request_header(key, version, corr, flexible=flexible) + body))
            socks[s] = corr
        for k, v in drain(socks, timeout=10).items():
            tally[k] += v
        seeded.assert_alive()
    print(f"{len(requests)} garbage requests: {tally}")
    assert tally["response"] + tally["closed"] > 0
    assert_unharmed(seeded)


def test_produce_with_wrong_crc_is_corrupt_message(seeded):
    now = int(time.time() * 1000)
    with connect(seeded.kafka_addr) as s:
        # Control: the same hand-built batch with its CRC intact is accepted.
        s.sendall(produce_v3(11, TOPIC, 0, record_batch([b"hand-built"], now)))
        resp = read_response(s)
        assert resp is not None, "the broker closed the connection on a valid Produce v3"
        assert parse_produce_v3_response(resp) == (11, [(TOPIC, 0, 0, SEEDED)])

        # The CRC is wrong: CORRUPT_MESSAGE, nothing appended, the connection stays usable.
        s.sendall(produce_v3(12, TOPIC, 0, record_batch([b"garbage-1", b"garbage-2"], now,
                                                        corrupt_crc=True)))
        resp = read_response(s)
        assert resp is not None, "the broker closed the connection on a wrong CRC"
        corr, parts = parse_produce_v3_response(resp)
        assert corr == 12 and len(parts) == 1 and parts[0][:3] == (TOPIC, 0, CORRUPT_MESSAGE), (
            f"wrong CRC answered {parts}"
        )

        # acks=0: no answer, and still nothing appended: the next good batch lands at 21.
        s.sendall(produce_v3(13, TOPIC, 0, record_batch([b"garbage-3"], now, corrupt_crc=True),
                             acks=0))
        s.sendall(produce_v3(14, TOPIC, 0, record_batch([b"hand-built-2"], now)))
        resp = read_response(s)
        assert resp is not None
        assert parse_produce_v3_response(resp) == (14, [(TOPIC, 0, 0, SEEDED + 1)])

    assert_unharmed(seeded, end=SEEDED + 2)
    log = read_partitions(seeded.bootstrap, TOPIC, {0: SEEDED + 2})[0]
    assert [r.value for r in log[SEEDED:]] == [b"hand-built", b"hand-built-2"]
    seeded.stop()
    seeded.assert_all_verified()


def test_api_versions_unknown_version_answers_v0_layout(seeded):
    body_v3 = compact_string("strata-raw") + compact_string("0") + b"\x00"
    for flexible in (True, False):
        with connect(seeded.kafka_addr) as s:
            s.sendall(frame(request_header(18, 99, 21, flexible=flexible) + body_v3))
            resp = read_response(s)
            assert resp is not None, f"ApiVersions v99 (flexible header: {flexible}): closed"
            corr, err, n = struct.unpack_from(">ihi", resp, 0)
            assert (corr, err) == (21, UNSUPPORTED_VERSION), (corr, err)
            assert n >= 0 and len(resp) == 10 + 6 * n, (
                f"not the v0 layout: {len(resp)} bytes for {n} api keys"
            )
            keys = {k: (lo, hi) for k, lo, hi in
                    (struct.unpack_from(">hhh", resp, 10 + 6 * i) for i in range(n))}
            assert 18 in keys and keys[18][0] == 0 and keys[18][1] < 99, keys.get(18)

            # The client retries at a version the broker has, on the same connection.
            s.sendall(frame(request_header(18, keys[18][1], 22, flexible=keys[18][1] >= 3) + body_v3))
            resp = read_response(s)
            assert resp is not None, "closed after the retry at a supported version"
            corr, err = struct.unpack_from(">ih", resp, 0)
            assert (corr, err) == (22, 0), (corr, err)
    assert_unharmed(seeded)
