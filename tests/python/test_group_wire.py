"""Commit fencing on the wire, where a client library cannot blur it: hand-built
JoinGroup v1, SyncGroup v1 and OffsetCommit v2 (kwire.py frames). Kafka validates the
member and its generation before the group state, so a zombie's commit during
CompletingRebalance is UNKNOWN_MEMBER_ID, a current member's commit with an old
generation is ILLEGAL_GENERATION, an admin commit (generation -1) is UNKNOWN_MEMBER_ID,
and only a valid member's commit gets REBALANCE_IN_PROGRESS."""

from __future__ import annotations

import struct
import threading

import kwire
from groupkit import committed, gbroker  # noqa: F401
from kclients import create_topic
from kwire import frame, kstring, request_header

GROUP, TOPIC = "wire", "wire"
UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS = 25, 22, 27


def kbytes(b: bytes) -> bytes:
    return struct.pack(">i", len(b)) + b


class Reader:
    def __init__(self, payload: bytes):
        self.b, self.p = payload, 0

    def take(self, fmt: str):
        v = struct.unpack_from(fmt, self.b, self.p)
        self.p += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take(">h")
        v = self.b[self.p:self.p + n].decode() if n >= 0 else None
        self.p += max(n, 0)
        return v


class Conn:
    def __init__(self, addr):
        self.s = kwire.connect(addr, timeout=60)
        self.corr = 0

    def call(self, api: int, version: int, body: bytes) -> Reader:
        self.corr += 1
        self.s.sendall(frame(request_header(api, version, self.corr) + body))
        payload = kwire.read_response(self.s, timeout=60)
        assert payload is not None, f"no answer to api {api} v{version}"
        r = Reader(payload)
        assert r.take(">i") == self.corr
        return r

    def join(self, member_id: str, session_ms: int):
        """JoinGroup v1: (error, generation, leader, member id)."""
        meta = b"\x00\x00" + struct.pack(">i", 1) + kstring(TOPIC) + struct.pack(">i", -1)
        body = (kstring(GROUP) + struct.pack(">ii", session_ms, 10000) + kstring(member_id)
                + kstring("consumer") + struct.pack(">i", 1) + kstring("range") + kbytes(meta))
        r = self.call(11, 1, body)
        err, gen = r.take(">h"), r.take(">i")
        _protocol, leader, me = r.string(), r.string(), r.string()
        return err, gen, leader, me

    def sync(self, generation: int, member_id: str, assign_to=()) -> int:
        body = kstring(GROUP) + struct.pack(">i", generation) + kstring(member_id)
        body += struct.pack(">i", len(assign_to))
        for m in assign_to:
            body += kstring(m) + kbytes(b"")
        r = self.call(14, 1, body)
        r.take(">i")  # throttle
        return r.take(">h")

    def commit(self, generation: int, member_id: str, offset: int) -> int:
        """OffsetCommit v2 of partition 0: its error code."""
        body = (kstring(GROUP) + struct.pack(">i", generation) + kstring(member_id)
                + struct.pack(">q", -1) + struct.pack(">i", 1) + kstring(TOPIC)
                + struct.pack(">i", 1) + struct.pack(">iq", 0, offset) + kstring(None))
        r = self.call(8, 2, body)
        assert r.take(">i") == 1 and r.string() == TOPIC and r.take(">i") == 1
        assert r.take(">i") == 0
        return r.take(">h")

    def close(self):
        self.s.close()


def test_zombie_and_stale_commits_are_fenced_before_rebalance_in_progress(gbroker):
    create_topic(gbroker.bootstrap, TOPIC, 1)
    a, b = Conn(gbroker.kafka_addr), Conn(gbroker.kafka_addr)
    try:
        # a's session must outlast its sync, its commit and b's join on a loaded
        # machine (b's generation counts on a still being a member when b joins).
        err, gen_a, leader, id_a = a.join("", 6000)
        assert err == 0 and leader == id_a
        assert a.sync(gen_a, id_a, [id_a]) == 0
        assert a.commit(gen_a, id_a, 5) == 0

        # b joins; a never heartbeats again: its 6 s session expires and b's JoinGroup
        # completes a new generation with b alone, CompletingRebalance until b syncs.
        answer = {}
        t = threading.Thread(target=lambda: answer.update(b=b.join("", 30000)))
        t.start()
        t.join(30)
        assert "b" in answer, "b's JoinGroup was not answered in 30 s"
        err, gen_b, leader, id_b = answer["b"]
        assert err == 0 and leader == id_b and gen_b == gen_a + 1

        assert a.commit(gen_a, id_a, 6) == UNKNOWN_MEMBER_ID, "zombie commit"
        assert b.commit(gen_a, id_b, 6) == ILLEGAL_GENERATION, "old generation"
        assert b.commit(-1, "", 6) == UNKNOWN_MEMBER_ID, "admin commit while not Empty"
        assert b.commit(gen_b, id_b, 6) == REBALANCE_IN_PROGRESS, "valid member, unsynced"
        assert b.sync(gen_b, id_b, [id_b]) == 0
        assert a.commit(gen_a, id_a, 7) == UNKNOWN_MEMBER_ID
        assert b.commit(gen_b, id_b, 8) == 0
    finally:
        a.close()
        b.close()
    assert committed(gbroker.bootstrap, GROUP, TOPIC, 1) == {0: 8}
