"""Audit topics (`audit.enabled=true`) through confluent-kafka's AdminClient: created
with unlimited retention and reported so by DescribeConfigs; records produce and read as
on any topic; DeleteRecords and DeleteTopics are refused with POLICY_VIOLATION (until a
seal, test_audit_seal.py), and turning the setting off with INVALID_CONFIG; a normal
topic cannot become an audit topic either. The tree
heads and proofs the admin port serves are checked by an independent RFC 9162 verifier
written here with Python's own SHA-256, against batches it reads from the segment files
itself. `strata audit witness` catches a rollback and a fork of a partition. Heads signed with
`audit.signing.key.file` check with the published key (the `cryptography` package's
Ed25519). `strata audit verify` names the first tampered batch of a copied partition
directory."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess

import crc32c
import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cluster_harness import segment_files, wait_for
from harness import Broker
from kclients import admin, create_topic
from txnkit import read_to_end

TOPIC = "audit-trail"


def _configs(a, topic: str) -> dict:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = a.describe_configs([resource])[resource].result(timeout=30)
    return {k: v.value for k, v in entries.items()}


def _set(a, topic: str, key: str, value: str) -> None:
    resource = ConfigResource(
        ResourceType.TOPIC, topic,
        incremental_configs=[ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)],
    )
    a.incremental_alter_configs([resource])[resource].result(timeout=30)


def _refused(call, code) -> str:
    with pytest.raises(KafkaException) as e:
        call()
    err = e.value.args[0]
    assert err.code() == code, err
    return err.str()


def test_an_audit_topic_keeps_every_record(broker):
    a = admin(broker.bootstrap)
    create_topic(broker.bootstrap, TOPIC, 3, config={"audit.enabled": "true"})
    conf = _configs(a, TOPIC)
    assert (conf["audit.enabled"], conf["retention.ms"], conf["retention.bytes"]) == ("true", "-1", "-1")

    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    values = [f"event-{part}-{i}".encode() for part in range(3) for i in range(50)]
    for v in values:
        p.produce(TOPIC, value=v, partition=int(v.split(b"-")[1]))
    assert p.flush(30) == 0

    futures = a.delete_records([TopicPartition(TOPIC, 0, 10)], operation_timeout=30)
    for fut in futures.values():
        _refused(lambda: fut.result(timeout=30), KafkaError.POLICY_VIOLATION)
    _refused(lambda: a.delete_topics([TOPIC], operation_timeout=30)[TOPIC].result(timeout=30),
             KafkaError.POLICY_VIOLATION)
    why = _refused(lambda: _set(a, TOPIC, "audit.enabled", "false"), KafkaError.INVALID_CONFIG)
    assert "audit.enabled" in why, why
    # Other settings may change; compaction and retention act on sealed batches only
    # (test_audit_seal.py).
    for key, value in (("segment.bytes", "1048576"), ("cleanup.policy", "compact,delete"),
                       ("retention.ms", "86400000")):
        _set(a, TOPIC, key, value)
        assert _configs(a, TOPIC)[key] == value

    assert sorted(read_to_end(broker.bootstrap, (TOPIC,), "read_uncommitted")) == sorted(values)


def test_audit_enabled_is_fixed_at_creation(broker):
    a = admin(broker.bootstrap)
    create_topic(broker.bootstrap, "plain", 1)
    _refused(lambda: _set(a, "plain", "audit.enabled", "true"), KafkaError.INVALID_CONFIG)


# -- an independent verifier: RFC 9162 with Python's own SHA-256 ---------------------

def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return _node(_mth(leaves[:k]), _mth(leaves[k:]))


def _verify_inclusion(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def _verify_consistency(first: int, second: int, proof: list[bytes], r1: bytes, r2: bytes) -> bool:
    if first == second:
        return not proof and r1 == r2
    if first == 0 or first > second or not proof:
        return first == 0 and not proof
    path = ([r1] if first & (first - 1) == 0 else []) + proof
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == r1 and sr == r2


def _batch_spans(partition_dir) -> list[tuple[object, int, int, int]]:
    """(segment file, position, length, base offset) of every batch in the partition's
    segment files, in offset order (stopping at a preallocated tail)."""
    out = []
    for seg in segment_files(partition_dir):
        data = seg.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            base, length = struct.unpack_from(">qi", data, pos)
            if length < 49 or pos + 12 + length > len(data) or (out and base <= out[-1][3]):
                break
            out.append((seg, pos, 12 + length, base))
            pos += 12 + length
    return out


def _change_batch(partition_dir, k: int) -> None:
    """Changes a byte of the `k`-th batch's last record and fixes the batch's CRC-32C,
    as a careful forger would: only the Merkle tree can tell."""
    seg, pos, length, _ = _batch_spans(partition_dir)[k]
    data = bytearray(seg.read_bytes())
    data[pos + length - 2] ^= 0x01
    struct.pack_into(">I", data, pos + 17, crc32c.crc32c(bytes(data[pos + 21:pos + length])))
    seg.write_bytes(bytes(data))


def _stored_batches(partition_dir) -> list[tuple[int, bytes]]:
    """(base offset, bytes) of every batch in the partition's segment files, read from
    disk: what the verifier hashes itself."""
    files = {}
    out = []
    for seg, pos, length, base in _batch_spans(partition_dir):
        data = files.setdefault(seg, seg.read_bytes())
        out.append((base, data[pos:pos + length]))
    return out


def _answer(broker, path: str) -> tuple[int, dict]:
    """GET `path` on the admin port: the status and the JSON body."""
    conn = broker.admin_connection(10.0)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _get(broker, path: str) -> dict:
    status, body = _answer(broker, path)
    assert status == 200, (path, status, body)
    return body


def _post_log_head(broker, topic: str) -> tuple[int, dict]:
    """`POST /audit/TOPIC/0/log-head`: the status and the JSON body."""
    conn = broker.admin_connection(30.0)
    try:
        conn.request("POST", f"/audit/{topic}/0/log-head", body="{}",
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _produce_batches(bootstrap: str, topic: str, count: int, label: str) -> None:
    """`count` batches: one record each, flushed one at a time."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(count):
        p.produce(topic, value=f"{label}-{i}".encode() * (1 + i % 5), partition=0)
        assert p.flush(30) == 0


def test_proofs_check_with_an_independent_verifier(broker):
    topic = "audit-proofs"
    create_topic(broker.bootstrap, topic, 1, config={"audit.enabled": "true",
                                                      "segment.bytes": "4096"})
    _produce_batches(broker.bootstrap, topic, 37, "first")
    head = _get(broker, f"/audit/{topic}/0/head")
    batches = _stored_batches(broker.partition_dir(topic, 0))
    leaves = [_leaf(b) for _, b in batches]
    assert head["tree_size"] == len(batches) == 37
    assert bytes.fromhex(head["root_hash"]) == _mth(leaves)

    root = bytes.fromhex(head["root_hash"])
    for index in (0, 1, 17, 36):
        offset = batches[index][0]
        proof = _get(broker, f"/audit/{topic}/0/inclusion?offset={offset}")
        path = [bytes.fromhex(h) for h in proof["path"]]
        assert proof["leaf_index"] == index and bytes.fromhex(proof["leaf_hash"]) == leaves[index]
        assert _verify_inclusion(leaves[index], index, 37, path, root), proof
        if path:
            forged = path[:]
            forged[0] = bytes(32)
            assert not _verify_inclusion(leaves[index], index, 37, forged, root)
        assert not _verify_inclusion(_leaf(b"forged"), index, 37, path, root)

    _produce_batches(broker.bootstrap, topic, 12, "later")
    later = _get(broker, f"/audit/{topic}/0/head")
    assert later["tree_size"] == 49
    proof = _get(broker, f"/audit/{topic}/0/consistency?from=37&to=49")
    path = [bytes.fromhex(h) for h in proof["proof"]]
    new_root = bytes.fromhex(later["root_hash"])
    assert proof["from_root"] == head["root_hash"] and proof["to_root"] == later["root_hash"]
    assert _verify_consistency(37, 49, path, root, new_root)
    assert not _verify_consistency(37, 49, path, _mth(leaves[1:] + leaves[:1]), new_root)
    # An older head proven against the newer one with a proof for other sizes fails.
    assert not _verify_consistency(36, 49, path, _mth(leaves[:36]), new_root)

    # `strata audit` asks the same questions and checks each proof before printing it.
    def cli(*args):
        return subprocess.run([str(broker.bin), "audit", *args, "--admin", broker.admin_addr],
                              capture_output=True, text=True, timeout=60)

    r = cli("head", f"{topic}/0")
    assert r.returncode == 0 and "tree size 49" in r.stdout and later["root_hash"] in r.stdout, r
    r = cli("prove", f"{topic}/0", "--offset", str(batches[5][0]), "--tree-size", "37")
    assert r.returncode == 0 and "verified" in r.stdout and head["root_hash"] in r.stdout, r
    r = cli("consistency", f"{topic}/0", "--from", "37", "--to", "49")
    assert r.returncode == 0 and "verified" in r.stdout, r
    r = cli("prove", f"{topic}/0", "--offset", "999999")
    assert r.returncode == 2 and "no batch holds offset" in r.stderr, r

    # Questions the tree cannot answer are refused, not guessed.
    for bad, want in ((f"/audit/{topic}/0/inclusion?offset=999999", 400),
                      (f"/audit/{topic}/0/consistency?from=3&to=999", 400),
                      (f"/audit/{TOPIC}-none/0/head", 404)):
        status, body = _answer(broker, bad)
        assert status == want and body["error"], (bad, status, body)
    create_topic(broker.bootstrap, "not-audited", 1)
    status, body = _answer(broker, "/audit/not-audited/0/head")
    assert status == 400 and "audit" in body["error"], body


def test_the_witness_catches_a_rollback_and_a_fork(broker, tmp_path):
    """`strata audit witness` remembers heads; replacing the partition with an older
    copy (a rollback) or with another history of the same length (a fork) fails the
    next run, and leaves the remembered head alone."""
    topic = "witnessed"
    create_topic(broker.bootstrap, topic, 1, config={"audit.enabled": "true"})
    state = tmp_path / "witness.json"

    def witness():
        return subprocess.run([str(broker.bin), "audit", "witness", f"{topic}/0",
                               "--state", str(state), "--admin", broker.admin_addr],
                              capture_output=True, text=True, timeout=60)

    _produce_batches(broker.bootstrap, topic, 10, "a")
    r = witness()
    assert r.returncode == 0 and "first seen 10 leaves" in r.stdout, r
    part = broker.partition_dir(topic, 0)
    broker.stop()
    older = tmp_path / "older"
    shutil.copytree(part, older)
    broker.start()
    _produce_batches(broker.bootstrap, topic, 10, "b")
    r = witness()
    assert r.returncode == 0 and "10 → 20 leaves" in r.stdout, r
    seen = json.loads(state.read_text())

    # Rollback: the partition is replaced with the copy of 10 batches.
    broker.stop()
    rewritten = tmp_path / "rewritten"
    shutil.copytree(part, rewritten)
    shutil.rmtree(part)
    shutil.copytree(older, part)
    broker.start()
    r = witness()
    assert r.returncode == 1 and "ROLLBACK" in r.stderr, r
    assert json.loads(state.read_text()) == seen

    # Fork: from the older copy, 10 other batches make a tree of 20 again.
    _produce_batches(broker.bootstrap, topic, 10, "forged")
    assert _get(broker, f"/audit/{topic}/0/head")["tree_size"] == 20
    r = witness()
    assert r.returncode == 1 and "FORK" in r.stderr, r
    assert json.loads(state.read_text()) == seen

    # The history the witness saw, put back, checks again.
    broker.stop()
    shutil.rmtree(part)
    shutil.copytree(rewritten, part)
    broker.start()
    r = witness()
    assert r.returncode == 0 and "20 → 20 leaves" in r.stdout, r


def _signing_broker(tmp_path) -> tuple[Broker, Ed25519PrivateKey]:
    """A started broker with an `audit.signing.key.file` made here, and its key."""
    key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "audit-signing.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    b = Broker(tmp_path / "data", tmp_path / "strata-serve.stderr",
               config={"audit.signing.key.file": str(key_file)})
    b.start()
    return b, key


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _statement(head: dict, size: int | None = None) -> bytes:
    """The signed statement of a head, laid out here from the documentation."""
    name = head["topic"].encode()
    last = -1 if head["last_offset"] is None else head["last_offset"]
    return (b"strata-audit-tree-head-v1" + struct.pack(">H", len(name)) + name
            + struct.pack(">iQ", head["partition"], head["tree_size"] if size is None else size)
            + bytes.fromhex(head["root_hash"]) + struct.pack(">qq", last, head["timestamp_ms"]))


def test_heads_are_signed_with_the_published_key(tmp_path):
    """With `audit.signing.key.file`, each head carries an Ed25519 signature over the
    documented statement, which checks with the key `GET /audit/key` and
    `strata audit key` publish (the `cryptography` package's Ed25519) and fails for any
    other statement."""
    b, key = _signing_broker(tmp_path)
    try:
        topic = "signed-trail"
        create_topic(b.bootstrap, topic, 1, config={"audit.enabled": "true"})
        _produce_batches(b.bootstrap, topic, 5, "s")
        public = _raw_public(key)
        assert _get(b, "/audit/key") == {"algorithm": "Ed25519", "public_key": public.hex()}
        r = subprocess.run([str(b.bin), "audit", "key", "--admin", b.admin_addr],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.strip() == public.hex(), r

        head = _get(b, f"/audit/{topic}/0/head")
        assert head["tree_size"] == 5
        verifier = Ed25519PublicKey.from_public_bytes(public)
        verifier.verify(bytes.fromhex(head["signature"]), _statement(head))
        with pytest.raises(InvalidSignature):
            verifier.verify(bytes.fromhex(head["signature"]), _statement(head, 6))
    finally:
        b.stop()


def _logged_heads(b, topic: str) -> list[dict]:
    return _get(b, f"/audit/{topic}/0/heads")["heads"]


def test_signed_heads_are_logged_and_checked(tmp_path):
    """The leader logs a signed head every `audit.head.interval.ms` once the tree grew
    (and on demand, `POST …/log-head`): each checks with the published key in Python, and
    the committed tree extends each by a consistency proof checked here. `strata audit
    heads` checks them online; `strata audit verify DIR` checks every head logged in the
    segment files, and names the heads a changed batch contradicts."""
    b, key = _signing_broker(tmp_path)
    topic = "logged-trail"
    try:
        create_topic(b.bootstrap, topic, 1, config={"audit.enabled": "true",
                                                     "audit.head.interval.ms": "200",
                                                     "segment.bytes": "4096"})
        _produce_batches(b.bootstrap, topic, 20, "l")
        wait_for(lambda: (any(h["tree_size"] == 20 for h in _logged_heads(b, topic)), ""),
                 30, "a logged head of all 20 batches")
        _produce_batches(b.bootstrap, topic, 10, "m")
        wait_for(lambda: (any(h["tree_size"] == 30 for h in _logged_heads(b, topic)), ""),
                 30, "a logged head of all 30 batches")
        # From here on heads are logged on demand only.
        a = admin(b.bootstrap)
        _set(a, topic, "audit.head.interval.ms", "3600000")
        wait_for(lambda: (_configs(a, topic)["audit.head.interval.ms"] == "3600000", ""), 30,
                 "the new interval in force")
        heads = _logged_heads(b, topic)
        sizes = [h["tree_size"] for h in heads]
        assert sizes == sorted(set(sizes)) and sizes[-1] == 30, sizes

        verifier = Ed25519PublicKey.from_public_bytes(_raw_public(key))
        leaves = [_leaf(d) for _, d in _stored_batches(b.partition_dir(topic, 0))]
        for h in heads:
            verifier.verify(bytes.fromhex(h["signature"]), _statement(h))
            assert bytes.fromhex(h["root_hash"]) == _mth(leaves[:h["tree_size"]])
            proof = _get(b, f"/audit/{topic}/0/consistency?from={h['tree_size']}&to=30")
            assert _verify_consistency(h["tree_size"], 30, [bytes.fromhex(p) for p in proof["proof"]],
                                       bytes.fromhex(h["root_hash"]), _mth(leaves))

        status, body = _post_log_head(b, topic)
        assert status == 409 and "already covers" in body["error"], body
        _produce_batches(b.bootstrap, topic, 1, "n")
        status, body = _post_log_head(b, topic)
        assert status == 200 and body["tree_size"] == 31, body
        verifier.verify(bytes.fromhex(body["signature"]), _statement(body))
        assert _logged_heads(b, topic)[-1]["tree_size"] == 31

        def cli(*args):
            return subprocess.run([str(b.bin), "audit", *args], capture_output=True, text=True,
                                  timeout=60)

        _produce_batches(b.bootstrap, topic, 1, "o")
        count = len(_logged_heads(b, topic)) + 1
        r = cli("heads", f"{topic}/0", "--log", "--public-key", _raw_public(key).hex(),
                "--admin", b.admin_addr)
        assert r.returncode == 0 and '"tree_size":32' in r.stdout, r
        assert f"{count} logged heads checked" in r.stdout, r
        other = _raw_public(Ed25519PrivateKey.generate()).hex()
        r = cli("heads", f"{topic}/0", "--public-key", other, "--admin", b.admin_addr)
        assert r.returncode == 1 and "not signed by the key" in r.stderr, r
    finally:
        b.stop()

    part = b.partition_dir(topic, 0)
    public = _raw_public(key).hex()
    r = cli("verify", str(part), "--public-key", public)
    assert r.returncode == 0 and f"{count} logged heads checked" in r.stdout, r
    r = cli("verify", str(part), "--public-key", other)
    assert r.returncode == 1 and "is not signed by that key" in r.stderr, r

    # Batch 3's bytes changed (its CRC fixed): every head of 4 batches or more disagrees.
    copy = tmp_path / "changed"
    shutil.copytree(part, copy)
    _change_batch(copy, 3)
    r = cli("verify", str(copy), "--public-key", public)
    assert r.returncode == 1 and "do not hash to its root" in r.stderr, r
    assert "the head logged at raft index" in r.stderr, r


def test_heads_are_unsigned_without_a_key(broker):
    create_topic(broker.bootstrap, "unsigned-trail", 1, config={"audit.enabled": "true"})
    assert _get(broker, "/audit/unsigned-trail/0/head")["signature"] is None
    status, body = _answer(broker, "/audit/key")
    assert status == 404 and "audit.signing.key.file" in body["error"], body


def test_audit_verify_names_the_first_tampered_batch(broker, tmp_path):
    """`strata audit verify` recomputes the tree of a partition directory: an untouched
    copy verifies against a saved head and the broker's tree; a byte changed with its
    CRC fixed, a deleted batch and two swapped batches are each named by offset, and a
    cut tail is reported as such."""
    topic = "verified-trail"
    create_topic(broker.bootstrap, topic, 1, config={"audit.enabled": "true",
                                                      "segment.bytes": "4096"})
    _produce_batches(broker.bootstrap, topic, 40, "v")
    head_file = tmp_path / "head.json"
    r = subprocess.run([str(broker.bin), "audit", "head", f"{topic}/0", "--json",
                        "--admin", broker.admin_addr], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r
    head_file.write_text(r.stdout)
    original = tmp_path / "original"
    shutil.copytree(broker.partition_dir(topic, 0), original)
    spans = _batch_spans(original)
    assert len(spans) == 40

    def verify(copy):
        return subprocess.run([str(broker.bin), "audit", "verify", str(copy), "--head", str(head_file),
                               "--against", f"{topic}/0", "--admin", broker.admin_addr],
                              capture_output=True, text=True, timeout=60)

    r = verify(original)
    assert r.returncode == 0 and "verified" in r.stdout, r

    def tampered(name: str, change) -> subprocess.CompletedProcess:
        copy = tmp_path / name
        shutil.copytree(original, copy)
        change(copy)
        return verify(copy)

    k = 7
    seg_k, pos_k, len_k, base_k = spans[k]

    r = tampered("flipped", lambda copy: _change_batch(copy, k))
    assert r.returncode == 1 and f"batch {k} (offset {base_k})" in r.stderr, r
    assert "do not hash to the head's root" in r.stderr, r

    def delete(copy):
        f = copy / seg_k.name
        data = f.read_bytes()
        f.write_bytes(data[:pos_k] + data[pos_k + len_k:])

    r = tampered("deleted", delete)
    assert r.returncode == 1 and f"batch {k} (offset {spans[k + 1][3]})" in r.stderr, r

    seg_n, pos_n, len_n, _ = spans[k + 1]
    assert seg_n == seg_k, "two batches of one segment"

    def swap(copy):
        f = copy / seg_k.name
        data = f.read_bytes()
        a, b = data[pos_k:pos_k + len_k], data[pos_n:pos_n + len_n]
        f.write_bytes(data[:pos_k] + b + a + data[pos_n + len_n:])

    r = tampered("swapped", swap)
    assert r.returncode == 1 and f"batch {k} (offset {spans[k + 1][3]})" in r.stderr, r

    def cut(copy):
        last_seg, last_pos, _, _ = spans[-3]
        f = copy / last_seg.name
        f.write_bytes(f.read_bytes()[:last_pos])
        for seg in {s for s, _, _, _ in spans[-3:]} - {last_seg}:
            (copy / seg.name).write_bytes(b"")

    r = tampered("cut", cut)
    assert r.returncode == 1 and "the tail was cut" in r.stderr, r


def test_consume_proves_every_batch(tmp_path):
    """`strata consume --audit-key` proves each batch against a signed head before it
    prints its records; with `--trusted-head` (a head kept from before) a batch changed
    on the broker's disk, and re-signed by the broker's own key, is refused: no batch of
    the changed tree can be proven in the trusted one."""
    b, key = _signing_broker(tmp_path)
    topic = "consumed-trail"
    public = _raw_public(key).hex()
    try:
        create_topic(b.bootstrap, topic, 1, config={"audit.enabled": "true",
                                                     "audit.head.interval.ms": "3600000",
                                                     "segment.bytes": "4096"})
        _produce_batches(b.bootstrap, topic, 1, "first")
        wait_for(lambda: (_logged_heads(b, topic), ""), 30, "the first logged head")
        _produce_batches(b.bootstrap, topic, 19, "later")

        def cli(*args):
            return subprocess.run([str(b.bin), *args], capture_output=True, text=True, timeout=60)

        r = cli("audit", "head", f"{topic}/0", "--json", "--admin", b.admin_addr)
        assert r.returncode == 0, r
        kept = tmp_path / "kept-head.json"
        kept.write_text(r.stdout)
        assert json.loads(r.stdout)["tree_size"] == 20

        def consume(*flags):
            return cli("consume", topic, "--partition", "0", "--count", "20", "--brokers",
                       b.bootstrap, "--admin", b.admin_addr, *flags)

        r = consume("--audit-key", public, "--trusted-head", str(kept))
        assert r.returncode == 0 and len(r.stdout.splitlines()) == 20, r
        other = _raw_public(Ed25519PrivateKey.generate()).hex()
        r = consume("--audit-key", other)
        assert r.returncode == 1 and "not signed by the key" in r.stderr, r

        b.stop()
        _change_batch(b.partition_dir(topic, 0), 15)
        b.start()
        # Only the first batch had a logged head: the broker serves and signs the change.
        r = consume("--audit-key", public)
        assert r.returncode == 0, r
        r = consume("--audit-key", public, "--trusted-head", str(kept))
        assert r.returncode == 1 and "differs from the trusted head" in r.stderr, r
        assert len(r.stdout.splitlines()) < 20, r
    finally:
        b.stop()
