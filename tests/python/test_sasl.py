"""SASL listeners with real clients: SCRAM-SHA-512 and PLAIN over SASL_SSL (confluent-kafka),
SCRAM-SHA-256 over SASL_PLAINTEXT (kafka-python) and over SASL_SSL (kcat); users made and
removed with AlterUserScramCredentials; wrong passwords, unknown users, requests before
authentication and unoffered mechanisms refused with Kafka's errors; an address that keeps
failing is refused at once; the broker serves on throughout."""

from __future__ import annotations

import re
import shutil
import socket
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)
from kafka import KafkaConsumer

from harness import Broker, free_port, wait_until
from kwire import frame, kstring, read_response, request_header
from pki import Authority

TOPIC = "over-sasl"


@pytest.fixture
def secured(request, tmp_path):
    """A broker with PLAINTEXT (for making users), SASL_PLAINTEXT and SASL_SSL listeners."""
    ca = Authority.create(tmp_path / "pki", "strata-test-ca")
    server = ca.issue(tmp_path / "pki", "broker", server=True)
    b = Broker(tmp_path / "data", tmp_path / "strata-serve.stderr")
    ports = {"SASL_PLAINTEXT": free_port(), "SASL_SSL": free_port()}
    b.config = {
        "listeners": f"PLAINTEXT://127.0.0.1:{b.kafka_port},"
                     f"SASL_PLAINTEXT://127.0.0.1:{ports['SASL_PLAINTEXT']},"
                     f"SASL_SSL://127.0.0.1:{ports['SASL_SSL']}",
        "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
        "ssl.keystore.location": str(server.keystore),
    }
    b.config_path = b.stderr_path.parent / "strata.toml"
    request.node.strata_broker = b
    b.start()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    upserts = [
        UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                     b"alice-secret"),
        UserScramCredentialUpsertion("bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                     b"bob-secret"),
    ]
    for f in admin.alter_user_scram_credentials(upserts).values():
        f.result(30)
    yield b, ports, ca.ca_path, admin
    if b.proc is not None and b.proc.poll() is None:
        b.stop()


def sasl_conf(port: int, protocol: str, mechanism: str, user: str, password: str, ca=None) -> dict:
    conf = {
        "bootstrap.servers": f"127.0.0.1:{port}",
        "security.protocol": protocol,
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }
    if ca is not None:
        conf["ssl.ca.location"] = str(ca)
    return conf


def refusal(conf: dict) -> list[str]:
    """The errors librdkafka reports for `conf` (it must report some within 30 s)."""
    errors = []
    p = Producer({**conf, "error_cb": lambda e: errors.append(str(e))})
    wait_until(lambda: (p.poll(0.2), errors)[1], 30, "librdkafka to report the refusal")
    return errors


def test_scram_and_plain_with_real_clients(secured):
    b, ports, ca, admin = secured
    described = admin.describe_user_scram_credentials(["alice", "bob"])
    infos = {u: [(i.mechanism, i.iterations) for i in f.result(30).scram_credential_infos]
             for u, f in described.items()}
    assert infos == {"alice": [(ScramMechanism.SCRAM_SHA_512, 8192)],
                     "bob": [(ScramMechanism.SCRAM_SHA_256, 4096)]}

    alice = sasl_conf(ports["SASL_SSL"], "SASL_SSL", "SCRAM-SHA-512", "alice", "alice-secret", ca)
    a = AdminClient(alice)
    a.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(60)
    # Metadata on a SASL listener names that listener's address.
    assert [(m.host, m.port) for m in a.list_topics(timeout=30).brokers.values()] == \
        [("127.0.0.1", ports["SASL_SSL"])]
    values = [f"sasl-{i:03d}".encode() for i in range(100)]
    p = Producer({**alice, "acks": "all", "enable.idempotence": True})
    for v in values[:50]:
        p.produce(TOPIC, v)
    assert p.flush(60) == 0
    plain = sasl_conf(ports["SASL_SSL"], "SASL_SSL", "PLAIN", "alice", "alice-secret", ca)
    p = Producer({**plain, "acks": "all"})
    for v in values[50:]:
        p.produce(TOPIC, v)
    assert p.flush(60) == 0

    c = Consumer({**alice, "group.id": "sasl-readers", "auto.offset.reset": "earliest"})
    c.subscribe([TOPIC])
    got, deadline = [], time.monotonic() + 60
    while len(got) < len(values) and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    assert got == values

    kp = KafkaConsumer(TOPIC, bootstrap_servers=f"127.0.0.1:{ports['SASL_PLAINTEXT']}",
                       security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                       sasl_plain_username="bob", sasl_plain_password="bob-secret",
                       group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                       consumer_timeout_ms=10_000)
    try:
        assert [m.value for m in kp] == values
    finally:
        kp.close()

    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed (scripts/test.sh installs it with apt-get)"
    read = subprocess.run(
        [kcat, "-C", "-b", f"127.0.0.1:{ports['SASL_SSL']}", "-t", TOPIC, "-o", "beginning",
         "-e", "-q", "-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={ca}",
         "-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", "sasl.username=bob",
         "-X", "sasl.password=bob-secret"],
        capture_output=True, timeout=60,
    )
    assert read.returncode == 0, read.stderr.decode()
    assert read.stdout.split() == values
    for listener, mechanism in [("SASL_SSL", "SCRAM-SHA-512"), ("SASL_SSL", "PLAIN"),
                                ("SASL_PLAINTEXT", "SCRAM-SHA-256"), ("SASL_SSL", "SCRAM-SHA-256")]:
        assert b.metric("strata_sasl_authentications_total", listener=listener,
                      mechanism=mechanism, outcome="ok") >= 1, (listener, mechanism)


def sasl_handshake(s: socket.socket, mechanism: str, correlation: int = 1) -> tuple[int, list[str]]:
    """SaslHandshake v1 on a raw socket: (error code, mechanisms offered)."""
    s.sendall(frame(request_header(17, 1, correlation) + kstring(mechanism)))
    payload = read_response(s)
    assert payload is not None, "SaslHandshake: connection closed"
    _, code, n = struct.unpack_from(">ihi", payload, 0)
    at, names = 10, []
    for _ in range(n):
        (length,) = struct.unpack_from(">h", payload, at)
        names.append(payload[at + 2:at + 2 + length].decode())
        at += 2 + length
    return code, names


def plain_attempt(port: int, user: str, password: str) -> tuple[int, str]:
    """PLAIN over raw SaslHandshake v1 + SaslAuthenticate v0: (error code, message)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        assert sasl_handshake(s, "PLAIN")[0] == 0
        token = b"\0" + user.encode() + b"\0" + password.encode()
        s.sendall(frame(request_header(36, 0, 2) + struct.pack(">i", len(token)) + token))
        payload = read_response(s)
        assert payload is not None, "SaslAuthenticate: connection closed without an answer"
        _, code, mlen = struct.unpack_from(">ihh", payload, 0)
        text = payload[8:8 + mlen].decode() if mlen > 0 else ""
        return code, text


def test_failures_are_clear_and_harmless(secured):
    b, ports, ca, admin = secured
    port = ports["SASL_SSL"]
    wrong = refusal(sasl_conf(port, "SASL_SSL", "SCRAM-SHA-512", "alice", "nope", ca))
    assert any("Authentication failed" in e for e in wrong), wrong
    unknown = refusal(sasl_conf(port, "SASL_SSL", "SCRAM-SHA-512", "mallory", "x", ca))
    assert any("Authentication failed" in e for e in unknown), unknown

    raw = ports["SASL_PLAINTEXT"]
    # A request before authentication closes the connection unanswered.
    with socket.create_connection(("127.0.0.1", raw), timeout=10) as s:
        s.sendall(frame(request_header(3, 1, 1) + struct.pack(">i", -1)))
        assert read_response(s) is None
    # An unoffered mechanism: UNSUPPORTED_SASL_MECHANISM (33) with the offered list.
    with socket.create_connection(("127.0.0.1", raw), timeout=10) as s:
        code, offered = sasl_handshake(s, "GSSAPI")
        assert (code, offered) == (33, ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
    assert plain_attempt(raw, "bob", "bob-secret") == (0, "")
    code, text = plain_attempt(raw, "bob", "wrong")
    assert code == 58 and "invalid user name or password" in text, (code, text)

    # A removed credential no longer authenticates.
    deletion = UserScramCredentialDeletion("alice", ScramMechanism.SCRAM_SHA_512)
    admin.alter_user_scram_credentials([deletion])["alice"].result(30)
    gone = refusal(sasl_conf(port, "SASL_SSL", "SCRAM-SHA-512", "alice", "alice-secret", ca))
    assert any("Authentication failed" in e for e in gone), gone
    assert b.health() == 200

    # An address that keeps failing is refused at once, even with the right password.
    for _ in range(25):
        if "too many" in plain_attempt(raw, "bob", "guess")[1]:
            break
    code, text = plain_attempt(raw, "bob", "bob-secret")
    assert code == 58 and "too many failed authentications" in text, (code, text)
    # Every failure from the address counts, whatever the listener or mechanism.
    failed = sum(float(v) for v in re.findall(
        r'^strata_sasl_authentications_total\{[^}]*outcome="failed"\} (\S+)$', b.metrics(), re.M))
    assert failed >= 20, failed
    b.assert_alive()
