"""Suite-wide rules and shared fixtures.

Real-component tests (X server, PostgreSQL, browser) are marked ``system``.
Locally they may skip when a program is missing; under CI (``CI=true``) a
skipped system test is turned into a failure, so CI cannot go green without
having really exercised them.

Real PostgreSQL (tests/pgserver.py; every test using these is marked ``system``
automatically, and under CI a missing PostgreSQL fails instead of skipping):

- ``postgres_server``: one throwaway server for the whole session
  (``PostgresServer``: ``url(db)``, ``url_with_password(db)``, ``execute(sql)``,
  ``create_database()``...). Do not stop or kill it: other tests share it.
- ``postgres_url``: a fresh empty database on it for one test, as the
  superuser's ``postgresql://postgres@127.0.0.1:PORT/DB`` (dropped afterwards).
- ``postgres_server_factory(**kwargs)``: a private, started server for tests
  that stop, kill or tune it (kwargs as ``PostgresServer``); removed at teardown.
- ``collector_proc_factory``: unstarted `worklens-collector serve` processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pgserver
import pytest
from collector_harness import CollectorProcess

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_FIXTURES = {"postgres_server", "postgres_url", "postgres_server_factory"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses a real PostgreSQL is a system test (and fails under CI
    rather than skip when there is none)."""
    for item in items:
        if POSTGRES_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.system)


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


def _require_postgres() -> None:
    """Skip (locally) or fail (CI) when no PostgreSQL can be started here. Fails
    by itself under CI too, for tests reaching the fixtures through
    ``request.getfixturevalue`` (not marked at collection)."""
    reason = pgserver.missing_reason()
    if reason and IN_CI:
        pytest.fail(f"PostgreSQL is required under CI: {reason}")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pgserver.PostgresServer]:
    _require_postgres()
    with pgserver.PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: pgserver.PostgresServer) -> Iterator[str]:
    name = pgserver.unique_database_name()
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture
def postgres_server_factory() -> Iterator:
    _require_postgres()
    made: list[pgserver.PostgresServer] = []

    def make(**kwargs) -> pgserver.PostgresServer:
        server = pgserver.PostgresServer(**kwargs)
        made.append(server)
        return server.start()

    yield make
    for server in made:
        server.cleanup()
