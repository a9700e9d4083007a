"""Fixtures that start REAL collectors on free ports (see tests/collector_harness.py).

- ``collector``: in-process, gRPC only, with ``.store`` for direct checks.
- ``collector_factory(cfg=None, http=False)``: more in-process collectors
  (TLS configs, small limits...); all stopped at teardown.
- ``collector_proc``: `worklens-collector serve` as a subprocess (gRPC + HTTP),
  with ``kill()``, ``terminate()``, ``restart()``, ``cli(...)``.
- ``collector_proc_factory`` (tests/conftest.py, shared with the e2e tests).

Both engines: a module marked ``pytestmark = pytest.mark.both_engines`` (or a test
so marked) runs each of its tests that use ``engine`` - directly or through
``store_url``, ``store_urls`` or ``col`` - once on SQLite and once on a real
PostgreSQL (the session's server from tests/conftest.py; a ``system`` test there).
Elsewhere ``engine`` is "sqlite".

- ``store_url``: a fresh, empty store of the engine; ``store_urls()`` another one.
- PostgreSQL databases are clones of one migrated once per session, with an ICU
  (en-US) collation: text sorts unlike SQLite's byte order there, so an output
  order that leans on the engine's sort shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pgserver
import pytest
from collector_harness import CollectorProcess, InProcessCollector

ENGINES = (pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.system))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_engines: run the tests using the engine fixture "
                                       "on SQLite and on a real PostgreSQL")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames and \
            metafunc.definition.get_closest_marker("both_engines") is not None:
        metafunc.parametrize("engine", ENGINES, indirect=True, scope="module")


@pytest.fixture(scope="module")
def engine(request: pytest.FixtureRequest) -> str:
    """"sqlite" or "postgresql" (see the module docstring)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def pg_databases(request: pytest.FixtureRequest) -> Iterator[Callable[[], tuple[str, str]]]:
    """``make()`` -> (name, url): a fresh migrated database on the session's server."""
    server = request.getfixturevalue("postgres_server")
    template = pgserver.unique_database_name()
    server.execute(f'CREATE DATABASE "{template}" OWNER "{server.password_user}" TEMPLATE '
                   "template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'")
    from worklens.collector.store import open_store

    open_store(server.url(template)).close()   # migrated once; clones skip it
    # a template must have no session left: the closed pool's may take a moment to go
    deadline = time.monotonic() + 30
    while server.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                         (template,))[0][0] and time.monotonic() < deadline:
        time.sleep(0.05)

    def make() -> tuple[str, str]:
        name = pgserver.unique_database_name()
        return name, server.create_database(name, template=template)

    yield make
    server.drop_database(template)


class _Stores:
    """Fresh stores of one engine for one test (or module); PostgreSQL ones dropped after."""

    def __init__(self, engine: str, directory: Path, request: pytest.FixtureRequest) -> None:
        self.engine, self.directory, self.request = engine, directory, request
        self.databases: list[str] = []
        self.server = None
        self.made = 0

    def __call__(self) -> str:
        self.made += 1
        if self.engine == "sqlite":
            name = "worklens.db" if self.made == 1 else f"worklens-{self.made}.db"
            return f"sqlite:///{self.directory / name}"
        self.server = self.request.getfixturevalue("postgres_server")
        name, url = self.request.getfixturevalue("pg_databases")()
        self.databases.append(name)
        return url

    def drop(self) -> None:
        for name in self.databases:
            self.server.drop_database(name)


@pytest.fixture
def store_urls(engine: str, tmp_path: Path, request: pytest.FixtureRequest
               ) -> Iterator[Callable[[], str]]:
    stores = _Stores(engine, tmp_path, request)
    yield stores
    stores.drop()


@pytest.fixture
def store_url(store_urls: Callable[[], str]) -> str:
    return store_urls()


@pytest.fixture(scope="module")
def module_store_url(engine: str, tmp_path_factory: pytest.TempPathFactory,
                     request: pytest.FixtureRequest) -> Iterator[str]:
    """``store_url`` for a whole module (a dataset loaded once)."""
    stores = _Stores(engine, tmp_path_factory.mktemp("store"), request)
    yield stores()
    stores.drop()


@pytest.fixture
def collector_factory(tmp_path: Path) -> Iterator:
    started: list[InProcessCollector] = []

    def start(cfg=None, http: bool = False, name: str = "collector") -> InProcessCollector:
        instance = InProcessCollector(tmp_path / f"{name}-{len(started)}", cfg, http=http)
        started.append(instance)
        return instance

    yield start
    for instance in reversed(started):
        instance.stop()


@pytest.fixture
def collector(collector_factory) -> InProcessCollector:
    return collector_factory()


@pytest.fixture
def collector_proc(collector_proc_factory) -> CollectorProcess:
    proc = collector_proc_factory()
    proc.start()
    return proc


@pytest.fixture(scope="module")
def col(tmp_path_factory, engine, request):
    """One real `serve` process (gRPC + HTTP) shared by a test module's API tests, on
    the module's engine."""
    from http_support import start_collector

    directory = tmp_path_factory.mktemp("collector")
    stores = _Stores(engine, directory, request)
    c = start_collector(directory, stores() if engine != "sqlite" else "")
    yield c
    assert c.terminate() == 0, c.output
    stores.drop()


@pytest.fixture
def bystander(collector):
    """Another agent streaming on the same collector throughout a test: it must
    still be served after whatever the test did."""
    from ingest_support import Bystander

    other = Bystander(collector)
    other.roundtrip()
    yield other
    other.roundtrip()
    other.close()

