"""pytest hooks for the cluster tests, loaded by test_cluster.py's `pytest_plugins`
(pytest.ini and conftest.py stay as they are).

- Registers the `cluster` marker and puts it on every test of test_cluster.py, so
  `-m cluster` selects them and `-m "not cluster"` leaves them out.
- When a test with a cluster fails, attaches the tail of every node's log to its report:
  the test sets `request.node.strata_cluster` (or the module's `strata_cluster`).
"""

from __future__ import annotations

import pytest

CLUSTER_TEST_FILE = "test_cluster.py"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cluster: multi-broker cluster fault tests (real processes, several minutes)"
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name == CLUSTER_TEST_FILE:
            item.add_marker("cluster")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    cluster = getattr(item, "strata_cluster", None) or getattr(item.module, "strata_cluster", None)
    if cluster is not None and report.failed:
        report.sections.append((f"strata cluster logs ({report.when})", cluster.log_tails()))
