"""Hand-built Kafka wire frames for the raw-socket tests: request headers, ApiVersions,
Produce v3 with a RecordBatch v2 (CRC-32C), and response reading. Only what the tests
need; layouts follow Kafka's message specs (clients/src/main/resources/common/message)."""

from __future__ import annotations

import socket
import struct
import time
from typing import Optional

import crc32c as crc32c_package

# --- CRC-32C (Castagnoli): the RecordBatch v2 checksum ------------------------------------

def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as RecordBatch v2 uses: the `crc32c` package, not our own."""
    return crc32c_package.crc32c(data)


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


# --- varints (zigzag, as in RecordBatch v2 records) ---------------------------------------

def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(n: int) -> bytes:
    return uvarint((n << 1) ^ (n >> 63))


def kstring(s: Optional[str]) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def compact_string(s: str) -> bytes:
    b = s.encode()
    return uvarint(len(b) + 1) + b


# --- frames -------------------------------------------------------------------------------

def request_header(api_key: int, version: int, correlation_id: int,
                   client_id: Optional[str] = "strata-raw", flexible: bool = False) -> bytes:
    """Request header v1, or v2 (v1 plus an empty tagged-field section) when flexible."""
    h = struct.pack(">hhi", api_key, version, correlation_id) + kstring(client_id)
    if flexible:
        h += uvarint(0)
    return h


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def record_batch(values: list[bytes], base_timestamp: int, corrupt_crc: bool = False) -> bytes:
    """A RecordBatch v2 (magic 2), no compression, no producer id, null keys."""
    records = b""
    for i, v in enumerate(values):
        body = (
            struct.pack(">b", 0)  # attributes
            + varint(0)  # timestamp delta
            + varint(i)  # offset delta
            + varint(-1)  # key: null
            + varint(len(v)) + v
            + uvarint(0)  # headers: none (a varint count)
        )
        records += varint(len(body)) + body
    after_crc = (
        struct.pack(">h", 0)  # attributes
        + struct.pack(">i", len(values) - 1)  # last offset delta
        + struct.pack(">qq", base_timestamp, base_timestamp)
        + struct.pack(">qhi", -1, -1, -1)  # producer id, epoch, base sequence
        + struct.pack(">i", len(values))
        + records
    )
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0x5A5A5A5A
    # batchLength counts from partitionLeaderEpoch to the end.
    batch_length = 4 + 1 + 4 + len(after_crc)
    return (
        struct.pack(">qi", 0, batch_length)
        + struct.pack(">ibI", 0, 2, crc)
        + after_crc
    )


def produce_v3(correlation_id: int, topic: str, partition: int, batch: bytes,
               acks: int = -1, timeout_ms: int = 30000) -> bytes:
    """A whole ProduceRequest v3 frame (header v1) carrying one batch for one partition."""
    body = (
        kstring(None)  # transactional id
        + struct.pack(">hi", acks, timeout_ms)
        + struct.pack(">i", 1) + kstring(topic)
        + struct.pack(">i", 1) + struct.pack(">i", partition)
        + struct.pack(">i", len(batch)) + batch
    )
    return frame(request_header(0, 3, correlation_id) + body)


def parse_produce_v3_response(payload: bytes) -> tuple[int, list[tuple[str, int, int, int]]]:
    """(correlation id, [(topic, partition, error code, base offset)]); asserts the whole
    payload is consumed (throttle time last)."""
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from(fmt, payload, pos)
        pos += struct.calcsize(fmt)
        return vals

    (corr,) = take(">i")
    out = []
    (ntopics,) = take(">i")
    for _ in range(ntopics):
        (nlen,) = take(">h")
        name = payload[pos:pos + nlen].decode()
        pos += nlen
        (nparts,) = take(">i")
        for _ in range(nparts):
            index, err, base, _log_append_time = take(">ihqq")
            out.append((name, index, err, base))
    (_throttle,) = take(">i")
    assert pos == len(payload), f"{len(payload) - pos} trailing bytes in a Produce v3 response"
    return corr, out


# --- connections --------------------------------------------------------------------------

def connect(addr: tuple[str, int], timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection(addr, timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s: socket.socket, n: int, deadline: float) -> Optional[bytes]:
    """n bytes, or None if the peer closed first. Raises socket.timeout past the deadline."""
    buf = bytearray()
    while len(buf) < n:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(n - len(buf))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_response(s: socket.socket, timeout: float = 10.0) -> Optional[bytes]:
    """One response payload (after the length prefix), or None when the broker closed the
    connection. Raises socket.timeout when neither happens in time."""
    deadline = time.monotonic() + timeout
    head = recv_exact(s, 4, deadline)
    if head is None:
        return None
    (n,) = struct.unpack(">i", head)
    assert 0 <= n < 64 << 20, f"response length prefix {n}"
    body = recv_exact(s, n, deadline)
    assert body is not None, "connection closed in the middle of a response"
    return body


def wait_closed(s: socket.socket, timeout: float = 10.0) -> bool:
    """True once the peer closes (EOF or reset) within `timeout`; bytes received before
    that are discarded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        if not chunk:
            return True
    return False


def api_versions_v0(addr: tuple[str, int]) -> dict[int, tuple[int, int]]:
    """The broker's advertised ranges, through ApiVersions v0."""
    with connect(addr) as s:
        s.sendall(frame(request_header(18, 0, 1)))
        payload = read_response(s)
    assert payload is not None, "ApiVersions v0: connection closed"
    corr, err, n = struct.unpack_from(">ihi", payload, 0)
    assert (corr, err) == (1, 0), f"ApiVersions v0: correlation {corr}, error {err}"
    out = {}
    for i in range(n):
        key, lo, hi = struct.unpack_from(">hhh", payload, 10 + 6 * i)
        out[key] = (lo, hi)
    return out
