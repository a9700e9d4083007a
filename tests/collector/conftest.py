"""Fixtures that start REAL collectors on free ports (see tests/collector_harness.py).

- ``collector``: in-process, gRPC only, with ``.store`` for direct checks.
- ``collector_factory(cfg=None, http=False)``: more in-process collectors
  (TLS configs, small limits...); all stopped at teardown.
- ``collector_proc``: `worklens-collector serve` as a subprocess (gRPC + HTTP),
  with ``kill()``, ``terminate()``, ``restart()``, ``cli(...)``.
- ``collector_proc_factory(extra_args=[], config_path=None)``: unstarted
  CollectorProcess objects (call ``.start()``), all stopped at teardown.
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
def collector_proc_factory(tmp_path: Path) -> Iterator:
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
