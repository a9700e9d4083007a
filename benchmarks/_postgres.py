"""A throwaway real PostgreSQL for a benchmark (``--store postgresql``): the
same server the tests start (tests/pgserver.py), re-exported here so that a
benchmark needs only ``from _postgres import start_postgres``."""

from __future__ import annotations

import sys
from collections.abc import Mapping
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

__all__ = ["PostgresServer", "PostgresStartError", "PostgresUnavailable", "start_postgres"]


def start_postgres(settings: Mapping[str, Any] | None = None) -> PostgresServer:
    """Start one for this run (``cleanup()`` it, or it goes at exit); exit with
    a one-line reason when this machine has no PostgreSQL."""
    try:
        return PostgresServer(settings=settings).start()
    except PostgresUnavailable as exc:
        raise SystemExit(f"--store postgresql: {exc}") from None
