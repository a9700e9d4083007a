"""The SQLite writer connection, apart from the store that uses it: both the
store (in the collector's process) and its writer process (``writerproc``)
open one, and neither should import the other for it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from worklens.collector.store import migrate
from worklens.collector.store.base import StoreError
from worklens.collector.store.commit import describe_sqlite_error

BUSY_TIMEOUT_MS = 10_000
CACHE_KIB = 64 * 1024
PAGE_SIZE = 8192


def connect_writer(path: Path, *, migrate_schema: bool = True) -> sqlite3.Connection:
    """The writer connection: WAL, ``synchronous=FULL`` (an ack means durable), the
    schema migrated. Raises StoreError with one line."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise StoreError(describe_sqlite_error(exc, path)) from None
    try:
        # Only takes effect when the file is created. Each group commit dirties about one
        # index page per agent and table, all of which go to the WAL (and again to the
        # file at the checkpoint): 32 KiB pages made the writer process write ~1.3 KB per
        # event; 8 KiB measured 5-10 % more events/s, summaries and exports no slower.
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"{path}: cannot switch to WAL mode (got {mode})")
        for pragma in ("synchronous=FULL", "foreign_keys=ON",
                       f"busy_timeout={BUSY_TIMEOUT_MS}", f"cache_size=-{CACHE_KIB}",
                       "temp_store=MEMORY"):
            conn.execute(f"PRAGMA {pragma}")
        if migrate_schema:
            migrate.apply(conn)
        conn.execute("PRAGMA wal_autocheckpoint=0")  # see GroupCommitter.checkpoint()
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(describe_sqlite_error(exc, path)) from None
    except BaseException:
        conn.close()
        raise
    return conn
