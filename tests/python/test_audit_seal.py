"""Exporting and sealing an audit topic's partition: until its batches are exported and
sealed, DeleteRecords answers POLICY_VIOLATION and a retention limit removes nothing;
`strata audit export --seal` archives them with the signed head and proofs they check
against, and from then on DeleteRecords and retention remove the sealed batches (and
only those), while the tree goes on across the removed prefix, through a restart. The
exports verify with no broker (`strata audit verify DIR`, the head's signature with the
published key), a second export chains onto the first's seal, and a changed batch in an
export fails its check."""

from __future__ import annotations

import json
import subprocess
import time

import crc32c
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness import Broker, wait_until
from kclients import admin, create_topic
from test_audit_topics import _get, _produce_batches

TOPIC = "sealed-trail"


def _strata(b: Broker, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(b.bin), *args], capture_output=True, text=True, timeout=120)


def _audit(b: Broker, *args: str) -> subprocess.CompletedProcess:
    return _strata(b, "audit", *args, "--admin", b.admin_addr)


def _export(b: Broker, *args: str) -> subprocess.CompletedProcess:
    return _audit(b, "export", f"{TOPIC}/0", *args, "--brokers", b.bootstrap)


def _low_watermark(b: Broker) -> int:
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "watermarks"})
    try:
        low, _ = c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=30)
        return low
    finally:
        c.close()


def _delete_records(b: Broker, offset: int) -> int:
    """DeleteRecords before `offset`: the new low watermark, or raises the Kafka error."""
    a = admin(b.bootstrap)  # kept alive until its future is done
    fut = a.delete_records([TopicPartition(TOPIC, 0, offset)], operation_timeout=30)
    return next(iter(fut.values())).result(timeout=30).low_watermark


def _set(b: Broker, key: str, value: str) -> None:
    resource = ConfigResource(
        ResourceType.TOPIC, TOPIC,
        incremental_configs=[ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)],
    )
    a = admin(b.bootstrap)
    a.incremental_alter_configs([resource])[resource].result(timeout=30)


def _refused(call) -> None:
    with pytest.raises(KafkaException) as e:
        call()
    assert e.value.args[0].code() == KafkaError.POLICY_VIOLATION, e.value.args[0]


def _fix_crc(batch: bytearray) -> None:
    batch[17:21] = crc32c.crc32c(bytes(batch[21:])).to_bytes(4, "big")


def test_export_and_seal_before_removal(tmp_path):
    key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "audit-signing.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw).hex()
    b = Broker(tmp_path / "data", tmp_path / "strata-serve.stderr",
               config={"audit.signing.key.file": str(key_file),
                       "log.retention.check.interval.ms": 100})
    b.start()
    try:
        create_topic(b.bootstrap, TOPIC, 1, config={"audit.enabled": "true",
                                                     "segment.bytes": "4096"})
        _produce_batches(b.bootstrap, TOPIC, 40, "before-seal")
        segments = sorted(b.partition_dir(TOPIC, 0).glob("*.log"))
        assert len(segments) >= 2

        # Unsealed: DeleteRecords is refused, and a retention limit (accepted) removes
        # nothing. Nothing to poll for an absence: a few retention passes go by.
        _refused(lambda: _delete_records(b, 5))
        _set(b, "retention.ms", "1")
        time.sleep(0.6)
        assert _low_watermark(b) == 0
        assert sorted(b.partition_dir(TOPIC, 0).glob("*.log")) == segments

        # An export without --seal seals nothing.
        first = tmp_path / "export-1"
        r = _export(b, "--to", str(first), "--before", "10",
                   "--public-key", public)
        assert r.returncode == 0, r
        assert _get(b, f"/audit/{TOPIC}/0/seal")["tree_size"] == 0
        _refused(lambda: _delete_records(b, 5))

        head = _get(b, f"/audit/{TOPIC}/0/head")
        sealed = tmp_path / "export-2"
        r = _export(b, "--to", str(sealed), "--seal",
                   "--public-key", public)
        assert r.returncode == 0, r
        assert "sealed the first 40 leaves" in r.stdout, r.stdout
        seal = _get(b, f"/audit/{TOPIC}/0/seal")
        assert (seal["tree_size"], seal["next_offset"]) == (40, head["last_offset"] + 1)
        assert seal["root_hash"] == head["root_hash"]
        manifest = json.loads((sealed / "export.json").read_text())
        assert (manifest["first_leaf"], manifest["tree_size"]) == (0, 40)
        assert manifest["head"]["signature"] is not None

        # Now retention removes the sealed segments (never the active one), and
        # DeleteRecords works up to the seal, not past it.
        wait_until(lambda: _low_watermark(b) > 0, 30, "retention of the sealed segments")
        assert _low_watermark(b) <= seal["next_offset"]
        _produce_batches(b.bootstrap, TOPIC, 5, "after-seal")
        assert _delete_records(b, seal["next_offset"]) == seal["next_offset"]
        _refused(lambda: _delete_records(b, seal["next_offset"] + 1))

        # The tree goes on across the removed prefix, and through a restart.
        grown = _get(b, f"/audit/{TOPIC}/0/head")
        assert grown["tree_size"] == 45
        b.kill()
        b.start()
        assert _get(b, f"/audit/{TOPIC}/0/head")["root_hash"] == grown["root_hash"]
        r = _audit(b, "consistency", f"{TOPIC}/0", "--from", "40", "--to", "45")
        assert r.returncode == 0 and "verified" in r.stdout, r
        r = _audit(b, "prove", f"{TOPIC}/0", "--offset", str(seal["next_offset"] + 2))
        assert r.returncode == 0 and "verified" in r.stdout, r
        r = _audit(b, "prove", f"{TOPIC}/0", "--offset", "3")
        assert r.returncode != 0 and "sealed" in r.stderr, r

        # A second export starts at the seal and chains onto the first's tree.
        chained = tmp_path / "export-3"
        r = _export(b, "--to", str(chained), "--seal")
        assert r.returncode == 0, r
        manifest = json.loads((chained / "export.json").read_text())
        assert (manifest["first_leaf"], manifest["tree_size"]) == (40, 45)
    finally:
        b.stop()

    # The broker's own directory verifies from its seal on.
    r = _strata(b, "audit", "verify", str(b.partition_dir(TOPIC, 0)), "--public-key", public)
    assert r.returncode == 0 and "verified" in r.stdout and "sealed" in r.stdout, r

    # Every export verifies with no broker; a changed batch (its CRC fixed) does not.
    for d in (first, sealed, chained):
        r = _strata(b, "audit", "verify", str(d), "--public-key", public)
        assert r.returncode == 0 and "verified" in r.stdout, r
    log = next(sealed.glob("*.log"))
    data = bytearray(log.read_bytes())
    length = int.from_bytes(data[8:12], "big")
    first_batch = data[:12 + length]
    first_batch[-1] ^= 0x01
    _fix_crc(first_batch)
    data[:12 + length] = first_batch
    log.write_bytes(bytes(data))
    r = _strata(b, "audit", "verify", str(sealed), "--public-key", public)
    assert r.returncode == 1 and "do not hash" in r.stderr, r
