"""`strata dev-cluster --secure` with one broker: it writes a CA and certificates,
`client.properties` and `env.sh` (mode 0600) into its folder, makes its administrator
over mutual TLS, and says so. Through the CLI with `--command-config` a topic is created,
written and read back over SASL_SSL; `strata cluster status` works over HTTPS with the
generated CA and the administrator's credentials (and through `env.sh`), and is refused
without credentials; a plaintext Kafka client gets no answer. The password is on no
process's command line and in no broker log. SIGTERM stops the cluster with status 0."""

from __future__ import annotations

import os
import signal
import socket
import stat
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import free_port, strata_bin, wait_until

#: A debug build makes its certificates, starts a broker and elects within this.
READY_DEADLINE_S = 90
COMMAND_DEADLINE_S = 60
STOP_DEADLINE_S = 30
RECORDS = 20
#: Node 1's ports from the base: Kafka, Raft, admin HTTP, mutual-TLS listener.
PORT_OFFSETS = (0, 100, 200, 300)


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def base_port() -> int:
    """A base port with every port of node 1 free."""
    for _ in range(100):
        base = free_port()
        if all(bindable(base + offset) for offset in PORT_OFFSETS[1:]):
            return base
    raise RuntimeError("no base port with free Raft, admin and mTLS ports")


@dataclass
class DevCluster:
    proc: subprocess.Popen
    folder: Path
    stderr_path: Path
    base: int

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.base}"

    @property
    def admin(self) -> str:
        return f"127.0.0.1:{self.base + 200}"

    @property
    def properties(self) -> Path:
        return self.folder / "client.properties"

    def password(self) -> str:
        for line in self.properties.read_text().splitlines():
            if line.startswith("sasl.password="):
                return line.split("=", 1)[1]
        raise AssertionError("no sasl.password in client.properties")

    def stderr_text(self) -> str:
        """dev-cluster's stderr, then the broker's log (for failure reports)."""
        parts = [self.stderr_path.read_text(errors="replace")]
        log = self.folder / "node-1.log"
        if log.exists():
            parts.append(f"----- {log}\n{log.read_text(errors='replace')}")
        return "\n".join(parts)


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_") or k == "STRATA_BIN"}
    env.pop("RUST_LOG", None)
    return {**env, **extra}


@pytest.fixture
def dev(request, tmp_path):
    folder, stderr_path, base = tmp_path / "dev", tmp_path / "dev-cluster.stderr", base_port()
    cmd = [str(strata_bin()), "dev-cluster", "--secure", "--nodes", "1", "--dir", str(folder),
           "--base-port", str(base)]
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                env=clean_env())
    cluster = DevCluster(proc, folder, stderr_path, base)
    # conftest.py attaches stderr_text() to the report of a failed test.
    request.node.strata_broker = cluster

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"dev-cluster exited with {proc.returncode} while starting")
        return "try: strata topic list" in stderr_path.read_text(errors="replace")

    try:
        wait_until(ready, READY_DEADLINE_S, "dev-cluster --secure to make its administrator", 0.2)
        yield cluster
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    assert proc.wait(STOP_DEADLINE_S) == 0, "dev-cluster did not stop cleanly on SIGTERM"


def strata(*args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(strata_bin()), *args], input=stdin, capture_output=True,
                          text=True, timeout=COMMAND_DEADLINE_S, env=env or clean_env())


def ok(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 0, f"{run.args}\nexit {run.returncode}\n{run.stderr}"
    return run.stdout


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def command_lines(root_pid: int) -> list[str]:
    """The command lines of `root_pid` and its children."""
    pids = [root_pid]
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == root_pid:
                pids.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    lines = []
    for pid in pids:
        try:
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return lines


def test_files_are_private_and_the_password_stays_in_them(dev):
    for private in ("client.properties", "env.sh", "tls/node-1.keystore.pem", "tls/admin.key.pem"):
        assert mode(dev.folder / private) == 0o600, private
    assert mode(dev.folder / "tls") == 0o700
    password = dev.password()
    assert len(password) >= 32
    lines = command_lines(dev.proc.pid)
    assert len(lines) >= 2, lines  # dev-cluster and its broker
    assert not any(password in line for line in lines)
    assert password not in (dev.folder / "node-1.log").read_text(errors="replace")
    assert password not in dev.stderr_path.read_text(errors="replace")


def test_clients_use_the_written_settings_and_plaintext_is_refused(dev):
    props = str(dev.properties)
    kafka = ["--brokers", dev.kafka, "--command-config", props]
    ok(strata("topic", "create", "secured", "--partitions", "2", *kafka))
    values = [f"secured-{i:03d}" for i in range(RECORDS)]
    ok(strata("produce", "secured", *kafka, stdin="\n".join(values) + "\n"))
    out = ok(strata("consume", "secured", "--from", "earliest", "--count", str(RECORDS),
                    "--format", "{value}", *kafka))
    assert sorted(out.split()) == values

    ca = str(dev.folder / "tls" / "ca.pem")
    admin = clean_env(STRATA_ADMIN_USER="admin", STRATA_ADMIN_PASSWORD=dev.password())
    status = ok(strata("cluster", "status", "--admin", f"https://{dev.admin}", "--admin-ca", ca,
                       env=admin))
    assert "secured" in status and "unreachable" not in status, status
    denied = strata("cluster", "status", "--admin", f"https://{dev.admin}", "--admin-ca", ca)
    assert denied.returncode == 2 and "answered 401" in denied.stderr, denied.stderr

    # env.sh points every command at the cluster as its administrator.
    sourced = subprocess.run(
        ["sh", "-c", '. "$1" && "$2" cluster status --json && "$2" topic list', "sh",
         str(dev.folder / "env.sh"), str(strata_bin())],
        capture_output=True, text=True, timeout=COMMAND_DEADLINE_S, env=clean_env())
    assert sourced.returncode == 0, sourced.stderr
    assert "secured" in sourced.stdout.split()

    # No plaintext Kafka: the CLI without the settings fails, a raw ApiVersions gets
    # no Kafka answer (the TLS listener closes, at most after an alert).
    plain = strata("topic", "list", "--brokers", dev.kafka)
    assert plain.returncode == 2, plain.stdout
    api_versions = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
    with socket.create_connection(("127.0.0.1", dev.base), timeout=15) as s:
        s.sendall(struct.pack(">i", len(api_versions)) + api_versions)
        try:
            answer = b"".join(iter(lambda: s.recv(4096), b""))
        except (socket.timeout, ConnectionResetError):
            answer = b""
    assert answer[:1] in (b"", b"\x15"), answer[:16]
