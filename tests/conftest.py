"""Suite-wide rules.

Real-component tests (X server, PostgreSQL, browser) are marked ``system``.
Locally they may skip when a program is missing; under CI (``CI=true``) a
skipped system test is turned into a failure, so CI cannot go green without
having really exercised them.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and item.get_closest_marker("system") is not None:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"system test skipped under CI (must run for real): {reason}"
