"""The admin HTTP port with `admin.api.require.auth`: over HTTPS (`ADMIN:SSL`, certificates
made by the test) `/health` needs nothing, every other endpoint HTTP Basic with a SCRAM
user's password or the bearer token of `admin.api.token.file`, and the changes a super
user (`super.users`) or the token; missing or wrong credentials answer 401, a user who is
not a super user 403, each counted. With `super.users` set only a super user may manage
SCRAM users (whose passwords open the admin port). Over plain HTTP with `admin.api.public.metrics`, the
`strata cluster` commands pass the credentials of STRATA_ADMIN_TOKEN or
STRATA_ADMIN_USER/STRATA_ADMIN_PASSWORD. Over HTTPS (`--admin https://…`, `--admin-tls`,
STRATA_ADMIN_TLS) they verify the broker's certificate against `--admin-ca` (or the
public CAs) and fail with a certificate error when it does not vouch for it."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
import subprocess

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

from harness import Broker, strata_bin, wait_until
from pki import Authority

TOKEN = "t0ken-for-the-admin-port-tests"


def upsert(bootstrap: str, users: tuple[str, ...]) -> list:
    """AlterUserScramCredentials for `users`: per user None, or the KafkaError."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    upserts = [UserScramCredentialUpsertion(u, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                            f"{u}-secret".encode()) for u in users]
    outcomes = []
    for f in admin.alter_user_scram_credentials(upserts).values():
        try:
            f.result(30)
            outcomes.append(None)
        except KafkaException as e:
            outcomes.append(e.args[0])
    return outcomes


def make_users(b: Broker) -> None:
    """The documented bootstrap: users made while `super.users` is unset, then the broker
    restarted with it; from then on only a super user may manage users (an anonymous
    client gets CLUSTER_AUTHORIZATION_FAILED), and the users survived the restart."""
    assert upsert(b.bootstrap, ("root", "bob")) == [None, None]
    b.config["super.users"] = "User:root"
    b.restart()
    [refused] = upsert(b.bootstrap, ("root",))
    assert refused is not None and refused.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED


def start(request, tmp_path, settings: dict) -> Broker:
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN + "\n")
    b = Broker(tmp_path / "data", tmp_path / "strata-serve.stderr", config={
        "admin.api.require.auth": True,
        "admin.api.token.file": str(token_file),
        **settings,
    })
    request.node.strata_broker = b
    # A test that fails (or ends) with the broker running must not leave it behind.
    request.addfinalizer(lambda: b.running() and b.kill())
    return b


def basic(user: str, password: str) -> dict:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def call(b: Broker, method: str, path: str, headers: dict) -> tuple[int, str]:
    conn = b.admin_connection(30)
    try:
        body = b"{}" if method == "POST" else None
        conn.request(method, path, body=body, headers={"Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def refused(b: Broker, reason: str) -> float:
    m = re.search(rf'^strata_admin_requests_refused_total{{outcome="{reason}"}} (\S+)$',
                  b.metrics(basic("root", "root-secret")), re.M)
    return float(m.group(1)) if m else 0.0


def test_https_admin_needs_credentials_and_changes_a_super_user(request, tmp_path):
    ca = Authority.create(tmp_path / "pki", "admin-ca")
    server = ca.issue(tmp_path / "pki", "broker", server=True)
    b = start(request, tmp_path, {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,ADMIN:SSL",
        "listener.name.admin.ssl.keystore.location": str(server.keystore),
    })
    b.admin_tls = ssl.create_default_context(cafile=str(ca.ca_path))
    b.start()
    make_users(b)

    assert call(b, "GET", "/health", {})[0] == 200
    status, text = call(b, "GET", "/metrics", {})
    assert status == 401 and "credentials needed" in text, (status, text)
    assert call(b, "GET", "/cluster", basic("bob", "wrong"))[0] == 401
    assert call(b, "GET", "/cluster", {"Authorization": "Bearer not-the-token"})[0] == 401
    assert call(b, "GET", "/cluster", basic("bob", "bob-secret"))[0] == 200
    assert call(b, "GET", "/metrics", {"Authorization": f"Bearer {TOKEN}"})[0] == 200

    status, text = call(b, "POST", "/cluster/rebalance-leaders", basic("bob", "bob-secret"))
    assert status == 403 and "super.users" in text, (status, text)
    assert call(b, "POST", "/cluster/rebalance-leaders", {})[0] == 401
    assert call(b, "POST", "/cluster/rebalance-leaders", basic("root", "root-secret"))[0] == 200
    assert call(b, "POST", "/cluster/rebalance-leaders", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert refused(b, "unauthenticated") >= 4 and refused(b, "forbidden") == 1

    # Plain HTTP on the HTTPS port gets no HTTP answer (at most a TLS alert).
    with socket.create_connection(("127.0.0.1", b.admin_port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b"".join(iter(lambda: s.recv(4096), b""))
    assert not answer.startswith(b"HTTP"), answer[:40]


def cli(args: list[str], **env) -> subprocess.CompletedProcess:
    """`strata ARGS` with only the STRATA_ADMIN* variables of `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_ADMIN")}
    return subprocess.run([str(strata_bin()), *args], capture_output=True, text=True,
                          timeout=60, env={**clean, **env})


def test_cli_passes_admin_credentials(request, tmp_path):
    b = start(request, tmp_path, {"admin.api.public.metrics": True})
    b.start()
    make_users(b)
    assert call(b, "GET", "/metrics", {})[0] == 200, "public metrics"
    assert call(b, "GET", "/cluster", {})[0] == 401

    def strata(args: list[str], **env) -> subprocess.CompletedProcess:
        return cli([*args, "--admin", b.admin_addr], **env)

    denied = strata(["cluster", "status"])
    assert denied.returncode != 0 and "401" in denied.stderr, denied.stderr
    bob = {"STRATA_ADMIN_USER": "bob", "STRATA_ADMIN_PASSWORD": "bob-secret"}
    assert strata(["cluster", "status", "--json"], **bob).returncode == 0
    forbidden = strata(["cluster", "rebalance-leaders"], **bob)
    assert forbidden.returncode != 0 and "403" in forbidden.stderr, forbidden.stderr
    ok = strata(["cluster", "rebalance-leaders", "--json"], STRATA_ADMIN_TOKEN=TOKEN)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["transfers"] == []


def test_cli_over_https_verifies_the_admin_certificate(request, tmp_path):
    ca = Authority.create(tmp_path / "pki", "admin-ca")
    other = Authority.create(tmp_path / "pki", "other-ca")
    server = ca.issue(tmp_path / "pki", "broker", server=True)
    b = start(request, tmp_path, {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,ADMIN:SSL",
        "listener.name.admin.ssl.keystore.location": str(server.keystore),
    })
    b.admin_tls = ssl.create_default_context(cafile=str(ca.ca_path))
    b.start()
    make_users(b)
    https = f"https://{b.admin_addr}"
    bob = {"STRATA_ADMIN_USER": "bob", "STRATA_ADMIN_PASSWORD": "bob-secret"}

    status = cli(["cluster", "status", "--admin", https, "--admin-ca", str(ca.ca_path)], **bob)
    assert status.returncode == 0, status.stderr
    # Broker 1 answered its own /cluster too, over HTTPS with the same CA.
    assert "BROKER" in status.stdout and "unreachable" not in status.stdout, status.stdout
    # HOST:PORT with STRATA_ADMIN_TLS=1 and STRATA_ADMIN_CA; the token for a change.
    by_env = cli(["cluster", "rebalance-leaders", "--json", "--admin", b.admin_addr],
                 STRATA_ADMIN_TLS="1", STRATA_ADMIN_CA=str(ca.ca_path), STRATA_ADMIN_TOKEN=TOKEN)
    assert by_env.returncode == 0, by_env.stderr
    assert json.loads(by_env.stdout)["transfers"] == []
    denied = cli(["cluster", "status", "--admin", https, "--admin-ca", str(ca.ca_path)])
    assert denied.returncode == 2 and "answered 401" in denied.stderr, denied.stderr

    # Only the public CAs: the private CA's certificate is refused, with what to do.
    public = cli(["cluster", "status", "--admin", https], **bob)
    assert public.returncode == 2, public.stderr
    assert "certificate is not signed by a public CA" in public.stderr, public.stderr
    assert "--admin-ca" in public.stderr and "invalid peer certificate" in public.stderr, public.stderr
    wrong = cli(["cluster", "status", "--admin", https, "--admin-ca", str(other.ca_path)], **bob)
    assert wrong.returncode == 2, wrong.stderr
    assert f"not signed by a CA in --admin-ca {other.ca_path}" in wrong.stderr, wrong.stderr
    # Plain HTTP to the HTTPS port gets no answer, and a hint.
    plain = cli(["cluster", "status", "--admin", b.admin_addr], **bob)
    assert plain.returncode == 2 and "--admin-tls" in plain.stderr, plain.stderr


def test_admin_connections_are_capped_per_address(broker):
    """One address holds at most 16 admin connections: the next is closed at once and
    counted; once they close, the port answers again."""
    held = [socket.create_connection(("127.0.0.1", broker.admin_port), timeout=10)
            for _ in range(16)]
    try:
        extra = socket.create_connection(("127.0.0.1", broker.admin_port), timeout=10)
        extra.settimeout(10)
        try:
            assert extra.recv(1) == b"", "the connection over the cap was not closed"
        except ConnectionResetError:
            pass  # a reset is a close too
        finally:
            extra.close()
    finally:
        for s in held:
            s.close()
    wait_until(lambda: broker.health() == 200, 30, "the admin port to answer again")
    refused = re.search(r'^strata_admin_requests_refused_total\{outcome="too_many_connections"\} (\S+)$',
                        broker.metrics(), re.M)
    assert refused and float(refused.group(1)) >= 1
