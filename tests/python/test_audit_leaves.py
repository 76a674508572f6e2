"""An audit partition's leaves kept beside its closed segments (`NNN.leaves`): the broker
writes them, opens its tree from them after a restart, and scrubs the segments they
stand for in the background. A batch changed on disk while the broker was down (so the
open, taking the recorded leaf, cannot see it) is found by the scrub, which takes the
partition out of service: the audit endpoints answer 503 and /health names the batch."""

from __future__ import annotations

from harness import Broker, wait_until
from kclients import create_topic
from test_audit_topics import _answer, _get, _produce_batches

TOPIC = "scrubbed-trail"


def test_the_scrub_finds_a_batch_changed_behind_the_leaves(tmp_path):
    b = Broker(tmp_path / "data", tmp_path / "strata-serve.stderr",
               config={"log.retention.check.interval.ms": 100})
    b.start()
    try:
        create_topic(b.bootstrap, TOPIC, 1, config={"audit.enabled": "true",
                                                     "segment.bytes": "4096"})
        _produce_batches(b.bootstrap, TOPIC, 60, "scrubbed-batch")
        head = _get(b, f"/audit/{TOPIC}/0/head")
        d = b.partition_dir(TOPIC, 0)
        closed = sorted(d.glob("*.log"))[:-1]
        assert closed
        wait_until(lambda: all(p.with_suffix(".leaves").exists() for p in closed), 30,
                   "the closed segments' leaves")
        b.stop()

        # The last byte of the first batch: a record's value.
        data = bytearray(closed[0].read_bytes())
        data[12 + int.from_bytes(data[8:12], "big") - 1] ^= 0xFF
        closed[0].write_bytes(bytes(data))
        b.start()
        # The changed batch's leaf comes from its sidecar at open ...
        status, body = _answer(b, f"/audit/{TOPIC}/0/head")
        assert status == 503 or body["root_hash"] == head["root_hash"], body
        # ... and the scrub, hashing the segment again, finds it.
        wait_until(lambda: _answer(b, f"/audit/{TOPIC}/0/head")[0] == 503, 30,
                   "the scrub's finding")
        assert b.health() == 503
        conn = b.admin_connection(10.0)
        conn.request("GET", "/health")
        text = conn.getresponse().read().decode()
        conn.close()
        assert "changed on this disk" in text and f"{TOPIC}/0" in text, text
    finally:
        b.stop()
