"""Retention: delete raw records and rollups older than ``[retention] keep``
(SPEC "Configuration"), on a schedule inside ``serve`` and on
``worklens-collector purge --older-than DURATION``.

The cut is made on whole 15-minute buckets (the cutoff is rounded down to a
bucket start) so a bucket's rollup and the raw records behind it go together:
raw records are deleted by their start time, rollups by their bucket. The
batch ledger (``batches``, the idempotency keys) goes by receive time: no agent
re-sends a batch that old (its spool expires long before).

Raw tables are purged agent by agent through their (agent, time) index: it is
their only time index (migration 0004 dropped the global ones, which cost every
ingested row a third B-tree), and each per-agent DELETE is a range at the
start of that agent's part of the index.

On PostgreSQL the record tables are partitioned by UTC day: the days wholly
before the cutoff are dropped as partitions first (no row by row delete, no
table bloat), then the same per-agent deletes take what is left before the
cutoff (the day it falls in and the DEFAULT partition). Collectors sharing the
database purge one at a time: the scheduled purge runs on the collector that gets
the ``maintenance_turn``, and every purge transaction holds the partition lock
(``drop_before``) to its COMMIT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from worklens.collector.rollup.buckets import floor_bucket
from worklens.collector.store import Connection, locks, partitions
from worklens.collector.store.base import (
    POSTGRESQL,
    SQLITE,
    StoreError,
    StoreUnavailable,
    dialect,
)

log = logging.getLogger(__name__)

PURGE_EVERY_S = 3600.0
# The first scheduled purge waits a little: not while the collector is starting up.
FIRST_RUN_S = 60.0
_RAW = (("window_spans", "start_ms"), ("activity_spans", "start_ms"),
        ("process_blocks", "bucket"), ("system_totals", "time_ms"))
_ROLLUPS = ("rollup_window", "rollup_window_all", "rollup_activity", "rollup_dropped",
            "rollup_process")
_CURSORS = ("window_spans", "activity_spans", "process_blocks")


@dataclass(frozen=True)
class PurgeResult:
    cutoff_ms: int
    deleted: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def agents_in(conn: Connection, table: str) -> Iterator[int]:
    """Each distinct ``agent`` of a raw table, in order: one seek on its (agent, time)
    index per agent, however many rows each has."""
    agent = conn.execute(f"SELECT min(agent) FROM {table}").fetchone()[0]
    while agent is not None:
        yield agent
        agent = conn.execute(f"SELECT min(agent) FROM {table} WHERE agent > ?",
                             (agent,)).fetchone()[0]


def purge_in(conn: Connection, cutoff_ms: int) -> dict[str, int]:
    """Delete everything before ``cutoff_ms`` (a bucket start) in the caller's
    transaction. On PostgreSQL whole days go first, as partitions (``drop_before``);
    the rows left to delete are then those of the day the cutoff falls in and of the
    default partition."""
    deleted = dict.fromkeys((table for table, _column in _RAW), 0)
    postgresql = dialect(conn) == POSTGRESQL
    if postgresql:   # (drop_before's partition lock also makes purges take turns)
        for table, rows in partitions.drop_before(conn, cutoff_ms).items():
            deleted[table] += rows
    for table, column in _RAW:
        deleted[table] += sum(conn.execute(f"DELETE FROM {table} WHERE agent = ? AND "
                                           f"{column} < ?", (agent, cutoff_ms)).rowcount
                              for agent in agents_in(conn, table))
    deleted["batches"] = conn.execute("DELETE FROM batches WHERE received_ms < ?",
                                      (cutoff_ms,)).rowcount
    for table in _ROLLUPS:
        deleted[table] = conn.execute(f"DELETE FROM {table} WHERE bucket < ?",
                                      (cutoff_ms,)).rowcount
    if not postgresql:
        # SQLite may hand a deleted top rowid out again: never leave a rollup cursor
        # above the highest remaining row, or new rows under it would be skipped.
        for name in _CURSORS:
            conn.execute("UPDATE rollup_cursor SET last_rowid = min(last_rowid, "
                         f"(SELECT coalesce(max(rowid), 0) FROM {name})) WHERE name = ?",
                         (name,))
    return deleted


def purge(store: Any, older_than_s: float, now_ms: int | None = None) -> PurgeResult:
    """Delete raw records and rollups older than ``older_than_s`` seconds."""
    if older_than_s <= 0:
        raise ValueError("older_than_s must be positive")
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    cutoff = floor_bucket(now_ms - int(older_than_s * 1000))
    deleted = store.write(lambda conn: purge_in(conn, cutoff))
    result = PurgeResult(cutoff, deleted)
    log.info("retention: deleted %d rows older than %s", result.total,
             time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(cutoff / 1000)))
    return result


@contextlib.contextmanager
def maintenance_turn(store: Any) -> Iterator[bool]:
    """Whether this collector may run a scheduled maintenance job now: yields False
    while another collector sharing the PostgreSQL database runs one.

    The turn is the session-level advisory lock ``locks.MAINTENANCE`` on a connection
    of its own, outside the pool: it is released when the block ends, and by the
    server if this process dies holding it (its connection drops), never left behind
    on a pooled connection that an error returned to the pool. On SQLite one
    collector serves a database (the store's lock file): always its turn."""
    if getattr(store, "dialect", SQLITE) != POSTGRESQL:
        yield True
        return
    import psycopg
    from worklens.collector.store.pgsql import PgConnection, describe

    try:
        raw = psycopg.connect(store.url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise StoreUnavailable(describe(exc, store.url)) from None
    with raw, locks.try_hold(PgConnection(raw), locks.MAINTENANCE) as mine:
        yield mine


def _purge_quietly(store: Any, keep_s: float) -> None:
    try:
        with maintenance_turn(store) as mine:
            if not mine:
                log.info("retention: another collector is running maintenance; this "
                         "run is skipped")
                return
            purge(store, keep_s)
    except StoreError as exc:   # e.g. closed while shutting down; the next run retries
        log.warning("retention purge skipped: %s", exc)
    except Exception:   # a failed run must not stop the scheduler; the next one retries
        log.exception("retention purge failed")


def schedule_retention(scheduler_or_loop: Any, store: Any, keep_s: float,
                       every_s: float | None = None) -> Any:
    """Purge after FIRST_RUN_S, then every ``every_s`` seconds (default PURGE_EVERY_S);
    returns the scheduler. With several collectors on one database, each run is
    skipped on every collector but the one that gets its ``maintenance_turn``.

    Pass a running APScheduler scheduler (the job is added to it) or an asyncio loop:
    then a BackgroundScheduler is started — its own thread and pool, so a purge never
    blocks the loop — and the caller stops it with ``shutdown()`` (which waits for a
    running purge; from a coroutine: ``await asyncio.to_thread(scheduler.shutdown)``)
    BEFORE closing the store.
    """
    from datetime import datetime, timedelta

    logging.getLogger("apscheduler").setLevel(logging.WARNING)   # no per-run INFO lines
    if scheduler_or_loop is None or isinstance(scheduler_or_loop, asyncio.AbstractEventLoop):
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(daemon=True)
        start = True
    else:
        scheduler, start = scheduler_or_loop, False
    first = datetime.now() + timedelta(seconds=FIRST_RUN_S)
    every_s = PURGE_EVERY_S if every_s is None else every_s
    scheduler.add_job(_purge_quietly, "interval", args=(store, keep_s), seconds=every_s,
                      next_run_time=first, id="worklens-retention", replace_existing=True,
                      coalesce=True, max_instances=1)
    if start:
        scheduler.start()
    return scheduler
