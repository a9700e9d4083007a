"""WAL checkpoints beside the group commits instead of between them.

A checkpoint copies the pages committed to the WAL into the database file and
fsyncs it. Run by the writer between two of its transactions (as SQLite's
auto-checkpoint would, inside COMMIT), it holds up every batch queued behind it:
at ~300,000 events/s that was a ~100 ms stall once a second, the whole p99 tail
of the ingest benchmark. SQLite lets one checkpointer copy frames while one
writer appends new ones, so the writer process runs ``Checkpointer``: a thread
with its own connection that checkpoints every ``EVERY_S`` (the sqlite3 module
releases the interpreter lock while SQLite works).

What that thread cannot do is start the WAL over: SQLite reuses the WAL from its
beginning only when a write transaction begins while every frame is already in
the database file, and the writer goes from one commit straight on to the next.
So about once a second the writer itself copies what is left (little: the thread
is at most one pass behind) with the thread paused (``paused()``; if the thread
is in the middle of a pass, the writer does not wait for it but tries again after
its next commit); its next transaction then writes from the start of the WAL
instead of growing it.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

# Between two passes of the thread; each pass copies what was committed since the last.
# Short, so that what the writer copies itself (since the last pass began) is little:
# at 0.05 s its once-a-second stall was ~25 ms, at 0.01 s ~12 ms, at 0.2 s ~40 ms.
EVERY_S = 0.01


def passive_checkpoint(conn: sqlite3.Connection) -> None:
    """One PASSIVE checkpoint (never waits for readers or the writer). Errors are
    logged, not raised: the next checkpoint tries again, and the WAL keeps everything
    meanwhile."""
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error as exc:
        log.warning("WAL checkpoint failed (will retry): %s", exc)


class Checkpointer:
    """The checkpoint thread of the writer process (see the module docstring)."""

    def __init__(self, path: Path, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @contextlib.contextmanager
    def paused(self, wait: bool = True) -> Iterator[bool]:
        """While inside, the thread runs no checkpoint: SQLite allows one checkpointer
        at a time, and a second one would just give up. Yields False without pausing
        if the thread is in the middle of one and ``wait`` is False."""
        if not self._lock.acquire(blocking=wait):
            yield False
            return
        try:
            yield True
        finally:
            self._lock.release()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            # FULL: the database file is fsynced before SQLite counts frames as copied
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        except sqlite3.Error as exc:
            log.warning("no background WAL checkpoints (the writer still checkpoints): %s",
                        exc)
            return
        try:
            while not self._stop.wait(EVERY_S):
                with self._lock:
                    passive_checkpoint(conn)
        finally:
            conn.close()
