"""Fixtures for the real-client tests: a `strata serve` process per test.

The `broker` fixture starts a broker on a fresh data directory (see harness.Broker) and,
at teardown, stops it with SIGTERM and asserts exit status 0 within a deadline. When a
test fails, the broker's stderr is attached to its report.

Run (scripts/test.sh does this after building the binary and the venv):

    STRATA_BIN=target/debug/strata .venv/bin/python -m pytest tests/python -x -q
"""

from __future__ import annotations

import pytest

from harness import Broker


@pytest.fixture
def broker(request, tmp_path):
    b = Broker(tmp_path / "data", tmp_path / "strata-serve.stderr")
    request.node.strata_broker = b
    b.start()
    yield b
    if b.proc is not None and b.proc.poll() is None:
        b.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    b = getattr(item, "strata_broker", None)
    if b is not None and report.failed:
        report.sections.append(
            (f"strata serve stderr ({report.when}; {b.stderr_path})", b.stderr_text())
        )
