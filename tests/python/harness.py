"""A real `strata serve` process for the real-client tests, and helpers around it.

`Broker` starts the binary named by $STRATA_BIN (default: target/debug/strata) on free
loopback ports, waits until the Kafka port accepts TCP and the admin port answers
`GET /health` with 200, and stops it with SIGTERM (asserting exit status 0) or SIGKILL.
A restart reuses the same data directory and the same ports, so clients that were
connected before reconnect to the same address. The broker's stderr goes to a file that
conftest.py attaches to the report of a failed test. Broker settings (docs/broker.md's
table) can be given as a dict: they are written to a TOML file passed with `--config`.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[2]

#: How long a debug-build broker may take to start or to stop.
START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 30.0
VERIFY_DEADLINE_S = 120.0


def strata_bin() -> Path:
    path = Path(os.environ.get("STRATA_BIN", REPO / "target" / "debug" / "strata"))
    if not path.is_absolute():
        path = REPO / path
    if not os.access(path, os.X_OK):
        raise RuntimeError(
            f"strata binary {path} is missing: run `cargo build --bin strata` "
            "or set STRATA_BIN"
        )
    return path


_PORT_LOW, _PORT_SPAN = 20000, 12000
_next_port = (os.getpid() * 7919) % _PORT_SPAN


def free_port() -> int:
    """A loopback port that nothing listens on right now, below Linux's ephemeral range
    (32768-60999): a port from that range may be taken by an outgoing connection before
    the broker binds it. Handed out in turn, so one run never gets the same port twice."""
    global _next_port
    for _ in range(_PORT_SPAN):
        port = _PORT_LOW + _next_port % _PORT_SPAN
        _next_port += 1
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {_PORT_LOW}..{_PORT_LOW + _PORT_SPAN}")


def wait_until(cond: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Polls `cond` until it returns a truthy value (returned), or fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def toml_text(settings: dict) -> str:
    """`"key" = value` lines (quoted keys, so dotted Kafka names stay one key)."""
    lines = []
    for key, value in settings.items():
        if isinstance(value, bool):
            v = "true" if value else "false"
        elif isinstance(value, (int, float)):
            v = repr(value)
        elif isinstance(value, str):
            v = json.dumps(value)
        else:
            raise TypeError(f"setting {key}: unsupported value {value!r}")
        lines.append(f"{json.dumps(key)} = {v}")
    return "\n".join(lines) + "\n"


class Broker:
    """One `strata serve` on a data directory; restartable."""

    def __init__(self, data_dir: Path, stderr_path: Path, extra_args: tuple[str, ...] = (),
                 config: Optional[dict] = None):
        self.bin = strata_bin()
        self.data_dir = Path(data_dir)
        self.stderr_path = Path(stderr_path)
        self.extra_args = tuple(extra_args)
        #: Settings written to `<stderr dir>/strata.toml` and passed with `--config`.
        self.config = dict(config) if config else None
        self.config_path = self.stderr_path.parent / "strata.toml" if config else None
        self.kafka_port = free_port()
        self.admin_port = free_port()
        while self.admin_port == self.kafka_port:
            self.admin_port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0

    # -- addresses ---------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def kafka_addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.kafka_port)

    @property
    def admin_addr(self) -> str:
        return f"127.0.0.1:{self.admin_port}"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        assert not self.running(), "broker already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        # A config naming `listeners` replaces the `--kafka-addr` shorthand (the test
        # lists kafka_port among them).
        listen = [] if self.config and "listeners" in self.config else ["--kafka-addr", self.bootstrap]
        cmd = [
            str(self.bin), "serve",
            "--data-dir", str(self.data_dir),
            *listen,
            "--admin-addr", self.admin_addr,
            "--log-level", "info",
            *self.extra_args,
        ]
        if self.config is not None:
            self.config_path.write_text(toml_text(self.config))
            cmd += ["--config", str(self.config_path)]
        env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
        with open(self.stderr_path, "ab") as err:
            err.write(f"\n===== start #{self.starts}: {' '.join(cmd)}\n".encode())
            err.flush()
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env
            )
        try:
            wait_until(self._ready, START_DEADLINE_S, "strata serve to accept TCP and answer /health 200")
        except BaseException:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            raise

    def _ready(self) -> bool:
        code = self.proc.poll()
        if code is not None:
            raise AssertionError(f"strata serve exited with status {code} while starting")
        try:
            with socket.create_connection(self.kafka_addr, timeout=1.0):
                pass
        except OSError:
            return False
        return self.health() == 200

    def admin_connection(self, timeout: float) -> http.client.HTTPConnection:
        """A connection to the admin port: HTTPS when the test set `admin_tls` (an
        `ssl.SSLContext` trusting the broker's certificate), else HTTP."""
        tls = getattr(self, "admin_tls", None)
        if tls is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.admin_port, timeout=timeout,
                                               context=tls)
        return http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)

    def health(self) -> Optional[int]:
        """Status of GET /health, or None when the admin port does not answer."""
        conn = self.admin_connection(2.0)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status
        except OSError:
            return None
        finally:
            conn.close()

    def metrics(self, headers: Optional[dict] = None) -> str:
        conn = self.admin_connection(5.0)
        try:
            conn.request("GET", "/metrics", headers=headers or {})
            resp = conn.getresponse()
            assert resp.status == 200, f"/metrics answered {resp.status}"
            return resp.read().decode()
        finally:
            conn.close()

    def metric(self, name: str, **labels) -> float:
        """One series of /metrics with exactly these labels (0 when absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        series = f"{name}{{{want}}}" if labels else name
        line = re.search(rf"^{re.escape(series)} (\S+)$", self.metrics(), re.M)
        return float(line.group(1)) if line else 0.0

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = STOP_DEADLINE_S) -> None:
        """SIGTERM; asserts a clean exit (status 0) within `timeout`."""
        assert self.running(), "broker is not running"
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"strata serve did not exit within {timeout:.0f} s of SIGTERM")
        assert code == 0, f"strata serve exited with status {code} after SIGTERM"

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown code runs."""
        assert self.running(), "broker is not running"
        self.proc.send_signal(signal.SIGKILL)
        code = self.proc.wait(timeout=STOP_DEADLINE_S)
        assert code == -signal.SIGKILL, f"expected death by SIGKILL, got status {code}"

    def restart(self) -> None:
        """Clean stop (exit 0 asserted), then start on the same data dir and ports."""
        self.stop()
        self.start()

    def assert_alive(self) -> None:
        code = self.proc.poll() if self.proc else "never started"
        assert code is None, f"strata serve is not running (exit status {code})"

    # -- logs on disk ------------------------------------------------------------------

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"

    def partition_dirs(self) -> list[Path]:
        """Every `<topic>-<n>` directory in the data directory."""
        out = []
        for p in sorted(self.data_dir.iterdir()):
            topic, sep, n = p.name.rpartition("-")
            if p.is_dir() and sep and topic and n.isdigit():
                out.append(p)
        return out

    def verify(self, partition_dir: Path) -> subprocess.CompletedProcess:
        """`strata log verify DIR`; the completed process (exit 0 = clean)."""
        return subprocess.run(
            [str(self.bin), "log", "verify", str(partition_dir)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=VERIFY_DEADLINE_S,
        )

    def assert_verified(self, partition_dir: Path) -> None:
        r = self.verify(partition_dir)
        assert r.returncode == 0, (
            f"strata log verify {partition_dir} exited {r.returncode}\n"
            f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
        )

    def assert_all_verified(self, min_dirs: int = 1) -> list[Path]:
        dirs = self.partition_dirs()
        assert len(dirs) >= min_dirs, f"expected ≥ {min_dirs} partition dirs, found {dirs}"
        for d in dirs:
            self.assert_verified(d)
        return dirs

    def dump_batches(self, partition_dir: Path) -> list[dict]:
        """`strata log dump DIR --json`: one dict per batch (offsets, compression, …)."""
        r = subprocess.run(
            [str(self.bin), "log", "dump", str(partition_dir), "--json"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=VERIFY_DEADLINE_S,
        )
        assert r.returncode == 0, f"strata log dump {partition_dir} exited {r.returncode}:\n{r.stderr}"
        rows = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        return [row for row in rows if row.get("type") == "batch"]

    def stderr_text(self, max_lines: int = 300) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no stderr file)"
        if len(lines) > max_lines:
            lines = [f"... ({len(lines) - max_lines} earlier lines in {self.stderr_path})"] + lines[-max_lines:]
        return "\n".join(lines)
