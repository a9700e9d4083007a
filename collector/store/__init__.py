"""The collector's store: one small interface the gRPC and HTTP layers use,
without seeing SQL. See collector/store/STORE.md.

The store knows nothing of rollups, rules or summaries: whoever serves ingest
registers the rollup hook (``worklens.collector.rollup.open_with_rollups``).

``open_store(url)`` picks the backend from the URL scheme. Pass
``serving=True`` from ``serve`` only: it takes the exclusive lock that makes
a second collector process on the same database fail at start; maintenance
commands (``token``, ``purge``...) open the store without it and can run
while the collector serves.
"""

from __future__ import annotations

from pathlib import Path

from worklens.collector.store.base import (
    AgentRow,
    Connection,
    IngestResult,
    StoreBusy,
    StoreError,
    StoreUnavailable,
)
from worklens.collector.store.sqlite import SqliteStore, StoredBatch

Store = SqliteStore   # the interface; PostgresStore (store.postgresql) has the same

__all__ = ["AgentRow", "Connection", "IngestResult", "Store", "StoreBusy", "StoreError",
           "StoreUnavailable",
           "StoredBatch", "open_store", "sqlite_path"]


def sqlite_path(url: str) -> Path:
    """``sqlite:///abs/path.db`` (any number of slashes) -> /abs/path.db;
    ``sqlite:relative.db`` -> a path relative to the working directory."""
    rest = url[len("sqlite:"):]
    if rest.startswith("//"):
        rest = "/" + rest.lstrip("/")
    if rest in ("", "/") or "?" in rest:
        raise StoreError(f"bad store URL {url!r}: expected sqlite:///ABSOLUTE/PATH.db")
    return Path(rest).expanduser().absolute()


def open_store(url: str, *, serving: bool = False) -> Store:
    """Open (creating and migrating as needed) the store at ``url``.

    Raises StoreError with a one-line message for an unknown scheme, a database
    another collector is serving (``serving=True``), a read-only or corrupt file.
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        # serving: group commits in a writer process of their own (collector.store.writerproc)
        return SqliteStore(sqlite_path(url), serving=serving, writer_process=serving)
    if scheme in ("postgresql", "postgres"):
        from worklens.collector.store.postgresql import PostgresStore

        return PostgresStore(url, serving=serving)
    raise StoreError(f"bad store URL {url!r}: expected sqlite:///PATH.db or postgresql://...")
