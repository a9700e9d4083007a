"""A throwaway real PostgreSQL for a benchmark (``--store postgresql``): the
same server the tests start (tests/pgserver.py), re-exported here so that a
benchmark needs only ``from _postgres import start_postgres``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if TESTS not in sys.path:
    sys.path.append(TESTS)   # appended: benchmark modules keep precedence

from pgserver import (  # noqa: E402
    PostgresServer,
    PostgresStartError,
    PostgresUnavailable,
)

__all__ = ["PostgresServer", "PostgresStartError", "PostgresUnavailable", "postgres_bytes",
           "postgres_for", "start_postgres"]


def start_postgres(settings: Mapping[str, Any] | None = None) -> PostgresServer:
    """Start one for this run (``cleanup()`` it, or it goes at exit); exit with
    a one-line reason when this machine has no PostgreSQL."""
    try:
        return PostgresServer(settings=settings).start()
    except PostgresUnavailable as exc:
        raise SystemExit(f"--store postgresql: {exc}") from None


@contextlib.contextmanager
def postgres_for(store: str, pg_url: str = "") -> Iterator[tuple[str | None, Callable]]:
    """For a benchmark's ``--store``/``--pg-url``: (the store URL, a function giving the
    database server's pids for CPU figures). None for SQLite (the collector's data dir);
    ``pg_url`` as given (pids unknown); else a database on a throwaway server."""
    if store == "sqlite":
        yield None, list
        return
    if pg_url:
        yield pg_url, list
        return
    server = start_postgres()
    try:
        url = server.create_database("worklens_bench")

        def pids() -> list[int]:
            import psutil

            root = server.postmaster_pid()
            return [root, *(p.pid for p in psutil.Process(root).children())] if root else []
        yield url, pids
    finally:
        server.cleanup()


def postgres_bytes(url: str) -> int:
    """What the benchmark's database takes on the server."""
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
