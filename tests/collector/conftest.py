"""Fixtures that start REAL collectors on free ports (see tests/collector_harness.py).

- ``collector``: in-process, gRPC only, with ``.store`` for direct checks.
- ``collector_factory(cfg=None, http=False)``: more in-process collectors
  (TLS configs, small limits...); all stopped at teardown.
- ``collector_proc``: `worklens-collector serve` as a subprocess (gRPC + HTTP),
  with ``kill()``, ``terminate()``, ``restart()``, ``cli(...)``.
- ``collector_proc_factory`` (tests/conftest.py, shared with the e2e tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_harness import CollectorProcess, InProcessCollector


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
def col(tmp_path_factory):
    """One real `serve` process (gRPC + HTTP) shared by a test module's API tests."""
    from http_support import start_collector

    c = start_collector(tmp_path_factory.mktemp("collector"))
    yield c
    assert c.terminate() == 0, c.output


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

