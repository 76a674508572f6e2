"""TLS listeners (`listeners = "PLAINTEXT://…,SSL://…"`) with real clients: confluent-kafka,
kafka-python and kcat over SSL beside a PLAINTEXT listener, each listener's Metadata
naming its own addresses; client certificates with `ssl.client.auth=required` (missing,
untrusted and expired ones refused, the broker unaffected); certificates rotated without
a restart, by SIGHUP and by a file change; bad TLS settings refused at start. The test
makes every certificate itself (pki.py)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Optional

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer

from harness import Broker, free_port, strata_bin, wait_until
from kwire import frame, read_response, request_header
from pki import Authority

MESSAGES = 200


@pytest.fixture
def pki(tmp_path):
    folder = tmp_path / "pki"
    ca = Authority.create(folder, "strata-test-ca")
    other = Authority.create(folder, "other-ca")
    return {
        "folder": folder,
        "ca": ca,
        "other": other,
        "server": ca.issue(folder, "broker", server=True),
        "alice": ca.issue(folder, "alice", server=False),
        "mallory": other.issue(folder, "mallory", server=False),
        "expired": ca.issue(folder, "expired", server=False, days_valid=(-10, -1)),
    }


def start(request, tmp_path, config: dict, ssl_port: int, plaintext: bool = True) -> Broker:
    b = Broker(tmp_path / "data", tmp_path / "strata-serve.stderr")
    listeners = [f"SSL://127.0.0.1:{ssl_port}"]
    if plaintext:
        listeners.insert(0, f"PLAINTEXT://127.0.0.1:{b.kafka_port}")
    else:
        # The harness waits for a TCP accept on kafka_port: the SSL port here.
        b.kafka_port = ssl_port
    b.config = {"listeners": ",".join(listeners), **config}
    b.config_path = b.stderr_path.parent / "strata.toml"
    request.node.strata_broker = b
    # A test that fails (or ends) with the broker running must not leave it behind.
    request.addfinalizer(lambda: b.running() and b.kill())
    b.start()
    return b


def ssl_conf(port: int, ca: Path, cert=None) -> dict:
    conf = {
        "bootstrap.servers": f"127.0.0.1:{port}",
        "security.protocol": "SSL",
        "ssl.ca.location": str(ca),
    }
    if cert is not None:
        conf["ssl.certificate.location"] = str(cert.cert_path)
        conf["ssl.key.location"] = str(cert.key_path)
    return conf


def tls_api_versions(port: int, ca: Path, cert=None) -> Optional[str]:
    """None when ApiVersions v0 is answered over TLS on `port`, else why it was not."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert_path), str(cert.key_path))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(frame(request_header(18, 0, 1)))
                return None if read_response(s) is not None else "connection closed"
    except (ssl.SSLError, OSError) as e:
        return f"{type(e).__name__}: {e}"


def produce(conf: dict, topic: str, n: int) -> list[bytes]:
    values = [f"tls-{i:04d}".encode() for i in range(n)]
    p = Producer({**conf, "acks": "all", "enable.idempotence": True})
    failures = []
    for v in values:
        p.produce(topic, v, on_delivery=lambda err, _m: err and failures.append(err))
    assert p.flush(60) == 0 and not failures, failures
    return values


def consume_all(conf: dict, topic: str, n: int) -> list[bytes]:
    c = Consumer({**conf, "group.id": "tls-readers", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got, deadline = [], time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    return got


def test_ssl_listener_serves_real_clients_beside_plaintext(request, tmp_path, pki):
    ssl_port = free_port()
    b = start(request, tmp_path, {"ssl.keystore.location": str(pki["server"].keystore)}, ssl_port)
    ca = pki["ca"].ca_path
    tls = ssl_conf(ssl_port, ca)

    # Each listener's Metadata names that listener's address.
    brokers = AdminClient(tls).list_topics(timeout=30).brokers
    assert [(m.host, m.port) for m in brokers.values()] == [("127.0.0.1", ssl_port)]
    brokers = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=30).brokers
    assert [(m.host, m.port) for m in brokers.values()] == [("127.0.0.1", b.kafka_port)]

    topic = "over-tls"
    admin = AdminClient(tls)
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(60)
    values = produce(tls, topic, MESSAGES)
    assert sorted(consume_all(tls, topic, MESSAGES)) == values

    kp = KafkaConsumer(topic, bootstrap_servers=f"127.0.0.1:{ssl_port}", security_protocol="SSL",
                       ssl_cafile=str(ca), group_id=None, enable_auto_commit=False,
                       auto_offset_reset="earliest", consumer_timeout_ms=10_000)
    try:
        assert sorted(m.value for m in kp) == values
    finally:
        kp.close()

    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed (scripts/test.sh installs it with apt-get)"
    read = subprocess.run(
        [kcat, "-C", "-b", f"127.0.0.1:{ssl_port}", "-t", topic, "-o", "beginning", "-e", "-q",
         "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={ca}"],
        capture_output=True, timeout=60,
    )
    assert read.returncode == 0, read.stderr.decode()
    assert sorted(read.stdout.split()) == values

    # Plaintext on the TLS port and TLS on the plaintext port: closed, nothing served.
    with socket.create_connection(("127.0.0.1", ssl_port), timeout=10) as s:
        s.sendall(frame(request_header(18, 0, 1)))
        answer = b"".join(iter(lambda: s.recv(4096), b""))
        # At most a TLS alert record (content type 21), then the end of the stream.
        assert answer[:1] in (b"", b"\x15"), f"a plaintext request answered: {answer[:16]!r}"
    assert tls_api_versions(b.kafka_port, ca) is not None
    assert tls_api_versions(ssl_port, ca) is None
    assert b.metric("strata_tls_handshakes_total", listener="SSL", outcome="failed") >= 1
    assert b.metric("strata_tls_handshakes_total", listener="SSL", outcome="ok") >= 3
    b.assert_alive()


def test_client_certificates_required(request, tmp_path, pki):
    ssl_port = free_port()
    ca = pki["ca"].ca_path
    b = start(request, tmp_path, {
        "ssl.keystore.location": str(pki["server"].keystore),
        "ssl.truststore.location": str(ca),
        "ssl.client.auth": "required",
        # The subject is "CN=alice,O=Strata tests"; other names match no rule.
        "ssl.principal.mapping.rules": "RULE:^CN=(alice),O=Strata tests$/$1-cert/U",
    }, ssl_port, plaintext=False)

    # Refused: no certificate, one from another authority, an expired one.
    for who in (None, "mallory", "expired"):
        why = tls_api_versions(ssl_port, ca, pki[who] if who else None)
        assert why is not None, f"{who or 'no certificate'}: served"
    failed = b.metric("strata_tls_handshakes_total", listener="SSL", outcome="failed")
    assert failed >= 3, failed
    # A trusted certificate whose subject no principal rule maps is refused too.
    carol = pki["ca"].issue(pki["folder"], "carol", server=False)
    assert tls_api_versions(ssl_port, ca, carol) is not None
    assert b.metric("strata_tls_handshakes_total", listener="SSL", outcome="refused") == 1

    # librdkafka without a certificate gets a clear error, not a hang.
    errors = []
    p = Producer({**ssl_conf(ssl_port, ca), "error_cb": lambda e: errors.append(str(e))})
    wait_until(lambda: (p.poll(0.2), errors)[1], 30, "librdkafka to report the refusal")
    assert any("certificate required" in e for e in errors), errors

    # A trusted certificate works, and the refusals left the broker serving.
    alice = ssl_conf(ssl_port, ca, pki["alice"])
    admin = AdminClient(alice)
    admin.create_topics([NewTopic("mtls", 1, 1)])["mtls"].result(60)
    values = produce(alice, "mtls", 50)
    assert consume_all(alice, "mtls", 50) == values
    assert "principal=User:ALICE-CERT" in b.stderr_text(2000)
    assert b.health() == 200
    b.assert_alive()


def test_certificates_reload_without_restart(request, tmp_path, pki):
    ssl_port = free_port()
    keystore = tmp_path / "live.keystore.pem"
    shutil.copy(pki["server"].keystore, keystore)
    b = start(request, tmp_path, {"ssl.keystore.location": str(keystore)}, ssl_port)
    ca, other = pki["ca"].ca_path, pki["other"].ca_path
    assert tls_api_versions(ssl_port, ca) is None

    # SIGHUP: a certificate from the other authority is served from the next connection.
    rotated = pki["other"].issue(pki["folder"], "broker-rotated", server=True)
    shutil.copy(rotated.keystore, keystore)
    os.kill(b.proc.pid, signal.SIGHUP)
    wait_until(lambda: tls_api_versions(ssl_port, other) is None, 30, "the rotated certificate")
    assert tls_api_versions(ssl_port, ca) is not None
    assert b.metric("strata_tls_certificate_reloads_total", listener="SSL", outcome="ok") >= 1

    # A broken file is reported and the certificate in use stays.
    keystore.write_text("not a PEM file\n")
    os.kill(b.proc.pid, signal.SIGHUP)
    wait_until(lambda: b.metric("strata_tls_certificate_reloads_total", listener="SSL",
                              outcome="failed") >= 1, 30, "the failed reload to be counted")
    assert tls_api_versions(ssl_port, other) is None

    # No signal: a changed file is picked up by itself.
    shutil.copy(pki["server"].keystore, keystore)
    wait_until(lambda: tls_api_versions(ssl_port, ca) is None, 30, "the file change to be seen")
    assert b.proc.poll() is None


def test_bad_tls_settings_stop_the_start_with_the_reason(tmp_path, pki):
    keyless = tmp_path / "cert-only.pem"
    keyless.write_bytes(pki["server"].cert_path.read_bytes())
    cases = [
        ({"ssl.keystore.location": str(tmp_path / "missing.pem")}, "missing.pem"),
        ({"ssl.keystore.location": str(keyless)}, "cert-only.pem"),
        ({}, "ssl.keystore.location is not set"),
        ({"ssl.keystore.location": str(pki["server"].keystore), "ssl.client.auth": "required"},
         "ssl.truststore.location"),
        ({"ssl.keystore.location": str(pki["server"].keystore), "ssl.keystore.type": "JKS"},
         "PEM"),
    ]
    for i, (settings, reason) in enumerate(cases):
        config = tmp_path / f"bad-{i}.toml"
        lines = [f'listeners = "SSL://127.0.0.1:{free_port()}"']
        lines += [f'"{k}" = "{v}"' for k, v in settings.items()]
        config.write_text("\n".join(lines) + "\n")
        run = subprocess.run(
            [str(strata_bin()), "serve", "--config", str(config), "--data-dir",
             str(tmp_path / f"data-{i}"), "--admin-addr", f"127.0.0.1:{free_port()}"],
            capture_output=True, text=True, timeout=60,
        )
        assert run.returncode != 0 and reason in run.stderr, (settings, run.stderr[-2000:])
