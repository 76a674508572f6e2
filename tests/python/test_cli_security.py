"""The `strata` client commands over TLS and SASL, configured as Kafka's tools are: a
`--command-config` properties file (or STRATA_COMMAND_CONFIG) with `security.protocol`,
`ssl.*` and `sasl.*` keys. Over an SSL listener a topic is created, written and read
back; a CA that did not sign the broker's certificate, a missing client certificate and
an unknown key fail at once with a message naming the setting and a non-zero status;
with `ssl.client.auth=required` the certificate of `ssl.certificate.location` works.
`strata user create|list|delete` manages SCRAM users, who then use the commands over
SASL_SSL and SASL_PLAINTEXT (the password from STRATA_SASL_PASSWORD or the file); a wrong
password is refused with the broker's message. Certificates are made by the test
(pki.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness import Broker, free_port, strata_bin
from pki import Authority

#: A debug-build command against a local broker finishes well within this.
COMMAND_DEADLINE_S = 60
RECORDS = 20


@pytest.fixture
def pki(tmp_path):
    folder = tmp_path / "pki"
    ca = Authority.create(folder, "strata-test-ca")
    other = Authority.create(folder, "other-ca")
    return {
        "ca": ca.ca_path,
        "other": other.ca_path,
        "server": ca.issue(folder, "broker", server=True),
        "alice": ca.issue(folder, "alice", server=False),
    }


@pytest.fixture
def start(request, tmp_path):
    """Starts a broker with `listeners` (`{port}` in them is the harness's Kafka port,
    or `kafka_port` when given: the port the harness waits for) and `settings`; stops it
    at teardown."""
    started = []

    def run(listeners: str, settings: dict, kafka_port: int | None = None) -> Broker:
        b = Broker(tmp_path / "data", tmp_path / "strata-serve.stderr")
        if kafka_port is not None:
            b.kafka_port = kafka_port
        b.config = {"listeners": listeners.format(port=b.kafka_port), **settings}
        b.config_path = b.stderr_path.parent / "strata.toml"
        request.node.strata_broker = b
        started.append(b)
        b.start()
        return b

    yield run
    for b in started:
        if b.running():
            b.stop()


def properties(tmp_path: Path, name: str, settings: dict) -> Path:
    path = tmp_path / name
    lines = ["# written by test_cli_security.py"]
    lines += [f"{k}={v}" for k, v in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def strata(port: int, config, *args: str, stdin: str = "", env: dict | None = None):
    """Runs `strata ARGS --brokers 127.0.0.1:PORT [--command-config CONFIG]`."""
    cmd = [str(strata_bin()), *args, "--brokers", f"127.0.0.1:{port}"]
    if config is not None:
        cmd += ["--command-config", str(config)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")
             or k == "STRATA_BIN"}
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True,
                          timeout=COMMAND_DEADLINE_S, env={**clean, **(env or {})})


def ok(run) -> str:
    assert run.returncode == 0, f"{run.args}\nexit {run.returncode}\n{run.stderr}"
    return run.stdout


def failed(run, *needles: str) -> str:
    """The stderr of a run that must have failed with status 2, naming every needle."""
    assert run.returncode == 2, f"{run.args}\nexit {run.returncode}\n{run.stdout}{run.stderr}"
    for needle in needles:
        assert needle in run.stderr, f"{needle!r} not in:\n{run.stderr}"
    return run.stderr


def round_trip(port: int, config, topic: str, env: dict | None = None) -> None:
    """topic create, produce RECORDS lines, consume them back."""
    ok(strata(port, config, "topic", "create", topic, "--partitions", "2", env=env))
    values = [f"{topic}-{i:03d}" for i in range(RECORDS)]
    ok(strata(port, config, "produce", topic, stdin="\n".join(values) + "\n", env=env))
    out = ok(strata(port, config, "consume", topic, "--from", "earliest",
                    "--count", str(RECORDS), "--format", "{value}", env=env))
    assert sorted(out.split()) == values


def test_ssl_round_trip_and_clear_refusals(tmp_path, pki, start):
    ssl_port = free_port()
    b = start(f"PLAINTEXT://127.0.0.1:{{port}},SSL://127.0.0.1:{ssl_port}",
              {"ssl.keystore.location": str(pki["server"].keystore)})
    tls = properties(tmp_path, "client.properties", {
        "security.protocol": "SSL", "ssl.ca.location": pki["ca"]})
    round_trip(ssl_port, tls, "over-tls")
    # STRATA_COMMAND_CONFIG instead of the flag; Metadata names the SSL listener.
    listed = ok(strata(ssl_port, None, "topic", "list",
                       env={"STRATA_COMMAND_CONFIG": str(tls)}))
    assert "over-tls" in listed.split()
    described = ok(strata(ssl_port, tls, "topic", "describe", "over-tls"))
    assert "PartitionCount: 2" in described

    # `key: value` lines, comments, and no host name check: the same broker.
    relaxed = tmp_path / "relaxed.properties"
    relaxed.write_text(f"! librdkafka names\nsecurity.protocol: ssl\nssl.ca.location: {pki['ca']}\n"
                       "ssl.endpoint.identification.algorithm=none\n")
    ok(strata(ssl_port, relaxed, "topic", "list"))

    # A CA that did not sign the broker's certificate.
    wrong = properties(tmp_path, "wrong-ca.properties", {
        "security.protocol": "SSL", "ssl.ca.location": pki["other"]})
    failed(strata(ssl_port, wrong, "topic", "list"), "TLS with", "not signed by a CA in ssl.ca.location")

    # No TLS against the TLS listener: refused at once, not a hang (Strata's listener
    # answers with a TLS alert, which the client recognises).
    failed(strata(ssl_port, None, "topic", "list"), f"127.0.0.1:{ssl_port}")

    # Mistakes in the file name the file, the line and the key.
    typo = properties(tmp_path, "typo.properties", {
        "security.protocol": "SSL", "ssl.ca.locaton": pki["ca"]})
    failed(strata(ssl_port, typo, "topic", "list"),
           "typo.properties line 3: ssl.ca.locaton: unknown setting")
    no_ca = properties(tmp_path, "no-ca.properties", {"security.protocol": "SSL"})
    failed(strata(ssl_port, no_ca, "produce", "over-tls"), "no-ca.properties", "ssl.ca.location")
    failed(strata(ssl_port, tmp_path / "absent.properties", "topic", "list"),
           "reading --command-config")

    # The plaintext listener is untouched by all this.
    assert "over-tls" in ok(strata(b.kafka_port, None, "topic", "list")).split()
    b.assert_alive()


def test_required_client_certificate_from_the_settings(tmp_path, pki, start):
    ssl_port = free_port()
    b = start("SSL://127.0.0.1:{port}", {
        "ssl.keystore.location": str(pki["server"].keystore),
        "ssl.truststore.location": str(pki["ca"]),
        "ssl.client.auth": "required",
    }, kafka_port=ssl_port)
    anonymous = properties(tmp_path, "anonymous.properties", {
        "security.protocol": "SSL", "ssl.ca.location": pki["ca"]})
    failed(strata(ssl_port, anonymous, "topic", "list"), "ssl.certificate.location")

    alice = properties(tmp_path, "alice.properties", {
        "security.protocol": "SSL",
        "ssl.ca.location": pki["ca"],
        "ssl.certificate.location": pki["alice"].cert_path,
        "ssl.key.location": pki["alice"].key_path,
    })
    round_trip(ssl_port, alice, "mtls")
    half = properties(tmp_path, "half.properties", {
        "security.protocol": "SSL", "ssl.ca.location": pki["ca"],
        "ssl.certificate.location": pki["alice"].cert_path})
    failed(strata(ssl_port, half, "topic", "list"), "ssl.key.location")
    b.assert_alive()


def test_scram_users_from_the_cli_over_sasl(tmp_path, pki, start):
    ports = {"SASL_PLAINTEXT": free_port(), "SASL_SSL": free_port()}
    b = start("PLAINTEXT://127.0.0.1:{port},"
              f"SASL_PLAINTEXT://127.0.0.1:{ports['SASL_PLAINTEXT']},"
              f"SASL_SSL://127.0.0.1:{ports['SASL_SSL']}", {
                  "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
                  "ssl.keystore.location": str(pki["server"].keystore),
              })
    admin = b.kafka_port
    # Users: the password from stdin or from the environment, never the command line.
    out = ok(strata(admin, None, "user", "create", "alice", "--mechanism", "SCRAM-SHA-256",
                    "--iterations", "4096", "--password-stdin", stdin="alice-secret\n"))
    assert "SCRAM-SHA-256" in out and "alice" in out
    ok(strata(admin, None, "user", "create", "bob",
              env={"STRATA_NEW_USER_PASSWORD": "bob-secret"}))
    failed(strata(admin, None, "user", "create", "carol"), "STRATA_NEW_USER_PASSWORD")
    failed(strata(admin, None, "user", "create", "carol", "--password-stdin", stdin="\n"), "empty")
    rows = [json.loads(line) for line in
            ok(strata(admin, None, "user", "list", "--format", "json")).splitlines()]
    assert rows == [
        {"user": "alice", "mechanism": "SCRAM-SHA-256", "iterations": 4096},
        {"user": "bob", "mechanism": "SCRAM-SHA-512", "iterations": 4096},
    ]
    table = ok(strata(admin, None, "user", "list", "bob")).splitlines()
    assert table[0].split() == ["USER", "MECHANISM", "ITERATIONS"]
    assert table[1].split() == ["bob", "SCRAM-SHA-512", "4096"]

    # alice over SASL_SSL, her password in the environment; bob over SASL_PLAINTEXT,
    # his in the file, with librdkafka's `sasl.mechanisms`.
    alice = properties(tmp_path, "alice.properties", {
        "security.protocol": "SASL_SSL", "ssl.ca.location": pki["ca"],
        "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "alice"})
    secret = {"STRATA_SASL_PASSWORD": "alice-secret"}
    round_trip(ports["SASL_SSL"], alice, "over-sasl", env=secret)
    failed(strata(ports["SASL_SSL"], alice, "topic", "list"), "sasl.password", "STRATA_SASL_PASSWORD")
    bob = properties(tmp_path, "bob.properties", {
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "bob", "sasl.password": "bob-secret"})
    assert "over-sasl" in ok(strata(ports["SASL_PLAINTEXT"], bob, "topic", "list")).split()
    plain = properties(tmp_path, "plain.properties", {
        "security.protocol": "SASL_SSL", "ssl.ca.location": pki["ca"],
        "sasl.mechanism": "PLAIN", "sasl.username": "bob", "sasl.password": "bob-secret"})
    ok(strata(ports["SASL_SSL"], plain, "topic", "list"))

    # Refusals: a wrong password, then a deleted user; each names SASL and the mechanism.
    failed(strata(ports["SASL_SSL"], alice, "topic", "list", env={"STRATA_SASL_PASSWORD": "nope"}),
           "SASL SCRAM-SHA-256 authentication with")
    ok(strata(admin, None, "user", "delete", "alice", "--mechanism", "SCRAM-SHA-256"))
    failed(strata(ports["SASL_SSL"], alice, "topic", "list", env=secret), "authentication")
    failed(strata(admin, None, "user", "delete", "alice", "--mechanism", "SCRAM-SHA-256"),
           "RESOURCE_NOT_FOUND")
    failed(strata(admin, None, "user", "create", "dave", "--iterations", "100",
                  env={"STRATA_NEW_USER_PASSWORD": "x"}), "100")
    names = [json.loads(line)["user"] for line in
             ok(strata(admin, None, "user", "list", "--format", "json")).splitlines()]
    assert names == ["bob"]
    b.assert_alive()
