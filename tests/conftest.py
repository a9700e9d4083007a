"""Suite-wide rules.

Real-component tests (X server, PostgreSQL, browser) are marked ``system``.
Locally they may skip when a program is missing; under CI (``CI=true``) a
skipped system test is turned into a failure, so CI cannot go green without
having really exercised them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_harness import CollectorProcess

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and item.get_closest_marker("system") is not None:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"system test skipped under CI (must run for real): {reason}"


@pytest.fixture
def collector_proc_factory(tmp_path: Path) -> Iterator:
    """``make(extra_args=None, config_path=None, data_dir=None)``: unstarted
    `worklens-collector serve` processes (call ``.start()``), all killed at teardown."""
    made: list[CollectorProcess] = []

    def make(extra_args: list[str] | None = None, config_path: Path | None = None,
             data_dir: Path | None = None) -> CollectorProcess:
        proc = CollectorProcess(data_dir or tmp_path / f"proc-{len(made)}",
                                extra_args=list(extra_args or []), config_path=config_path)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.kill()
