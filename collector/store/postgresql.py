"""The PostgreSQL store: the same interface as the SQLite one (collector/store/STORE.md)
for a collector tier of any number of stateless ``serve`` processes sharing one database.

Why it differs from the SQLite store inside:

* No single writer, no lock file: PostgreSQL takes concurrent writers. Each collector
  still groups the batches that wait at once into one transaction (one COMMIT, one
  WAL flush, for many acks) on ``WRITERS`` threads with connections of their own.
  One per collector measured best: two collectors on a 2-core machine stored 133k
  events/s with two writer threads each (smaller groups, and three threads taking
  turns for one interpreter lock) and 144-163k with one. More collector processes,
  not more threads, is how the tier grows.
* Across collectors, an agent's transactions are serialised by an advisory lock per
  agent (``locks.take_agents``, ascending order): a batch resent through collector B
  while A still commits it waits for A and is then a duplicate, stored once.
* The group hooks (rollups) run BEFORE the group's raw rows are inserted, in the same
  transaction: under the agents' locks, every span a hook reads was stored by an
  earlier transaction, which is what SQLite's rowid cursors establish there.
* Rows go in with binary COPY. Rollup upserts are sorted by key (``rollup.buckets``),
  so two collectors adding to the same fleet-wide row wait for each other in one
  order and never deadlock; the upserts add, so no increment is lost.
* A database that is down or restarting makes ingest fail with StoreUnavailable (the
  agent keeps the batch and retries, the gRPC status is UNAVAILABLE); the pool
  reconnects by itself when it is back. Too much waiting gives StoreBusy. While it
  is down, requests give up after ``DOWN_GETCONN_TIMEOUT_S`` instead of the normal
  wait, and the outage is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import chain
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from worklens.collector.store import locks, partitions
from worklens.collector.store.base import (
    AgentRow,
    IngestResult,
    StoreError,
    StoreUnavailable,
)
from worklens.collector.store.commit import (
    GroupHook,
    GroupItem,
    IngestHook,
    StoredBatch,
    admit,
    agent_row,
    agent_updates,
    find_agent,
    now_ms,
    prepare,
    split_new,
)
from worklens.collector.store.migrate import apply_postgresql
from worklens.collector.store.pgsql import PgConnection, adapt, describe, redact, without_nul
from worklens.collector.store.records import Records, Rows
from worklens.v1 import agent_pb2

log = logging.getLogger(__name__)

WRITERS = 1
POOL_MAX = 12
GROUP_MAX_EVENTS = 100_000
MAX_PENDING_EVENTS = 1_000_000
RETRY_AFTER_MS = 1_000
CONNECT_TIMEOUT_S = 10.0
# How long a write waits for a pooled connection before the database counts as down.
GETCONN_TIMEOUT_S = 5.0
# ... and, once it is down, how long each request waits for it to be back.
DOWN_GETCONN_TIMEOUT_S = 1.0
# psycopg_pool retries a lost server with a delay that doubles (1 s, 2 s, 4 s...) until
# this timeout, then gives up until the next request starts a fresh attempt at once. With
# its default (5 minutes) a server back after two minutes would be noticed two minutes
# later; with 5 s, up to 2 s later (the gap between its third and fourth attempts). One
# second keeps a single retry, so a collector with requests coming in stores again about
# a second after the database is back.
RECONNECT_GIVE_UP_S = 1.0
PARTITIONS_EVERY_S = 3600.0
# A database host that vanishes without closing its connections (power loss, a cut
# network) is noticed within about a minute instead of the system's TCP timeouts
# (libpq keepalives; the URL may override them).
CONNECTION_KWARGS = {"connect_timeout": int(CONNECT_TIMEOUT_S), "keepalives": 1,
                     "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
# An ingest transaction waits at most this long for an agent's lock (held by another
# collector that froze mid-transaction): then UNAVAILABLE, and the agent retries.
INGEST_LOCK_TIMEOUT = "30s"

# text columns of the records' tuples (collector.store.records) and of process totals
WINDOW_TEXTS, ACTIVITY_TEXTS, TOTALS_TEXTS = (3, 4, 6, 8), (8,), (2,)
PER_BATCH_ERRORS = (psycopg.DataError, psycopg.IntegrityError, OverflowError, ValueError,
                    TypeError)
# column order of collector.store.records' tuples, per table (COPY needs them named)
COPY_COLUMNS = {
    "window_spans": ("agent, start_ms, duration_ms, app, title, pid, exe, excluded, username, "
                     "continued", ("int8", "int8", "int8", "text", "text", "int8", "text",
                                   "int8", "text", "int8")),
    "activity_spans": ("agent, start_ms, duration_ms, state, key_presses, clicks, mouse_moves, "
                       "scrolls, username, continued, reason", ("int8",) * 8 + (
                           "text", "int8", "int8")),
    "process_blocks": ("agent, bucket, samples, data", ("int8", "int8", "int8", "bytea")),
    "system_totals": ("agent, time_ms, cpu_percent, mem_total_bytes, mem_used_bytes, "
                      "process_count, cpu_count", ("int8", "int8", "float8", "int8", "int8",
                                                   "int8", "int8")),
}
INSERT_BATCHES = ("INSERT INTO batches (agent, sequence, received_ms, events, dropped_events) "
                  "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], "
                  "%s::bigint[], %s::bigint[]) ON CONFLICT DO NOTHING RETURNING agent, sequence")
UPDATE_AGENTS = (
    "UPDATE agents a SET last_seen_ms = %s, "
    "last_sequence = greatest(a.last_sequence, u.seq), "
    "dropped_events = a.dropped_events + u.dropped, "
    "hostname = coalesce(nullif(u.hostname, ''), a.hostname), "
    "os = coalesce(nullif(u.os, ''), a.os), "
    "os_version = coalesce(nullif(u.os_version, ''), a.os_version), "
    "username = coalesce(nullif(u.username, ''), a.username), "
    "agent_version = coalesce(nullif(u.agent_version, ''), a.agent_version) "
    "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::text[], "
    "%s::text[], %s::text[], %s::text[]) AS u(id, seq, dropped, hostname, os, os_version, "
    "username, agent_version) WHERE a.id = u.id")
_STOP = object()


@dataclass
class _Ingest(GroupItem):
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    events: int = 0


def _storable(rows: Rows) -> Rows:
    """``rows`` as PostgreSQL can hold them (``pgsql.without_nul``), done once per batch
    before anything uses them: the rollups (app names, process names) and the COPY."""
    return replace(rows, windows=without_nul(rows.windows, WINDOW_TEXTS),
                   activity=without_nul(rows.activity, ACTIVITY_TEXTS),
                   process_totals=without_nul(rows.process_totals, TOTALS_TEXTS))


class _PoolNoise(logging.Filter):
    """psycopg_pool logs every failed reconnection attempt (several lines a minute
    while the database is down); the store logs the outage once instead, with the
    latest failure kept here (``last``, by pool name) for that line."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("error connecting in") and len(record.args or ()) == 2:
            self.last[str(record.args[0])] = " ".join(str(record.args[1]).split())
            return False
        return not message.startswith("reconnection attempt in pool")


_POOL_NOISE = _PoolNoise()
logging.getLogger("psycopg.pool").addFilter(_POOL_NOISE)
_pool_names = itertools.count(1)


class PostgresStore:
    """See collector/store/STORE.md for the interface; the module docstring for why."""

    dialect = "postgresql"

    def __init__(self, url: str, *, serving: bool = False) -> None:
        self.url = url
        self.path = redact(url)   # what logs and the rules cache call the database
        self._serving = serving
        self._hooks: list[IngestHook] = []
        self._group_hooks: list[GroupHook] = []
        self._failure_callbacks: list[Callable[[BaseException], None]] = []
        self._state = threading.Lock()
        self._pending_events = 0
        self._closed = False
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._prepare()
        self._down_since: float | None = None   # monotonic time the database was lost
        self._pool = ConnectionPool(url, min_size=1, max_size=POOL_MAX, open=False,
                                    configure=adapt, check=ConnectionPool.check_connection,
                                    kwargs=CONNECTION_KWARGS,
                                    reconnect_timeout=RECONNECT_GIVE_UP_S,
                                    name=f"worklens-{next(_pool_names)}")
        self._pool.open(wait=False)
        self._stopping = threading.Event()
        threading.Thread(target=self._keep_partitions, name="store-partitions",
                         daemon=True).start()
        self._writers = [threading.Thread(target=self._run, name=f"store-writer-{i}",
                                          daemon=True) for i in range(WRITERS)]
        for writer in self._writers:
            writer.start()
        self._executor = concurrent.futures.ThreadPoolExecutor(4, "store-write")

    def _prepare(self) -> None:
        """Connect once (a one-line StoreError at once if the database cannot be
        reached), migrate the schema and make the coming days' partitions."""
        try:
            with psycopg.connect(self.url, connect_timeout=int(CONNECT_TIMEOUT_S)) as raw:
                adapt(raw)
                conn = PgConnection(raw)
                apply_postgresql(conn)
                with raw.transaction():
                    partitions.ensure(conn)
        except psycopg.Error as exc:
            raise StoreError(describe(exc, self.url)) from None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[PgConnection]:
        if self._closed and not self._writers_running():
            raise StoreError("the store is closed")
        timeout = GETCONN_TIMEOUT_S if self._down_since is None else DOWN_GETCONN_TIMEOUT_S
        try:
            with self._pool.connection(timeout=timeout) as raw:
                if self._down_since is not None:
                    self._outage(ended=True)
                yield PgConnection(raw)
        except PoolTimeout:
            self._outage(ended=False)
            raise StoreUnavailable(f"PostgreSQL at {self.path} is not reachable "
                                   "(nothing of this was stored; retry later)") from None
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(describe(exc, self.url)) from None

    def _outage(self, ended: bool) -> None:
        """Log the start and the end of a time the database could not be reached."""
        with self._state:
            if ended == (self._down_since is None):
                return
            if ended:
                lasted, self._down_since = time.monotonic() - self._down_since, None
            else:
                self._down_since = time.monotonic()
        if ended:
            log.info("PostgreSQL at %s is reachable again (after %.0f s)", self.path, lasted)
        else:
            why = _POOL_NOISE.last.get(self._pool.name, "no connection within the timeout")
            log.warning("PostgreSQL at %s is not reachable (%s): ingest answers UNAVAILABLE "
                        "and /healthz 503 until it is back", self.path, why)

    def _writers_running(self) -> bool:
        return any(w.is_alive() for w in getattr(self, "_writers", ()))

    # -- reading -------------------------------------------------------------------------

    @contextlib.contextmanager
    def reader(self) -> Iterator[PgConnection]:
        """A connection in one read-only transaction for the ``with`` block: every
        query inside sees the same snapshot, as with SQLite's readers."""
        local = getattr(_reading, "conn", None)
        if local is not None and local[0] is self:
            yield local[1]
            return
        with self._connection() as conn, conn.raw.transaction():
            conn.raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            _reading.conn = (self, conn)
            try:
                yield conn
            finally:
                _reading.conn = None

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[PgConnection]:
        """A connection of its own (not the pool's: an export may last minutes) in one
        REPEATABLE READ, READ ONLY transaction for the ``with`` block, closed after it.
        Read big results with ``conn.chunks``."""
        try:
            raw = psycopg.connect(self.url, connect_timeout=int(CONNECT_TIMEOUT_S))
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(describe(exc, self.url)) from None
        try:
            adapt(raw)
            raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PgConnection(raw)
        finally:
            raw.close()

    def size_bytes(self) -> int:
        """Bytes the database uses on the server (``pg_database_size``)."""
        with self.reader() as conn:
            return int(conn.raw.execute(
                "SELECT pg_database_size(current_database())").fetchone()[0])

    def agent(self, key: int) -> AgentRow | None:
        with self.reader() as conn:
            return find_agent(conn, key)

    # -- writing -------------------------------------------------------------------------

    def add_ingest_hook(self, hook: IngestHook) -> None:
        """``hook(conn, agent, head)`` per new batch, in its transaction, after its rows."""
        self._hooks.append(hook)

    def add_group_hook(self, hook: GroupHook) -> None:
        """``hook(conn, [StoredBatch...])`` once per group transaction, with the group's
        new batches, BEFORE their raw rows are inserted (see the module docstring)."""
        self._group_hooks.append(hook)

    def on_writer_failure(self, callback: Callable[[BaseException], None]) -> None:
        self._failure_callbacks.append(callback)

    def write(self, fn: Callable[[PgConnection], Any]) -> Any:
        """Run ``fn(conn)`` in one transaction on a pooled connection; its result once
        committed. Writes from several threads and collectors run concurrently."""
        with self._connection() as conn, conn.raw.transaction():
            return fn(conn)

    def submit(self, fn: Callable[[PgConnection], Any]) -> concurrent.futures.Future:
        if self._closed:
            raise StoreError("the store is closed")
        return self._executor.submit(self.write, fn)

    async def write_async(self, fn: Callable[[PgConnection], Any]) -> Any:
        return await asyncio.wrap_future(self.submit(fn))

    async def ingest(self, agent: AgentRow | int, batch: agent_pb2.Batch,
                     records: Records | None = None, *, consume: bool = False) -> IngestResult:
        return await self.ingest_nowait(agent, batch, records, consume=consume)

    def ingest_nowait(self, agent: AgentRow | int, batch: agent_pb2.Batch,
                      records: Records | None = None, *, consume: bool = False
                      ) -> asyncio.Future:
        """Queue ``batch``; its future resolves after the COMMIT that stored it (or
        finds it stored already). Raises StoreBusy or StoreUnavailable."""
        head, rows = prepare(agent, batch, records, consume)
        rows = _storable(rows)
        events = rows.count
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._state:
            admit(self._closed, self._pending_events, events, MAX_PENDING_EVENTS,
                  RETRY_AFTER_MS, "the database is behind")
            self._pending_events += events
            self._queue.put(_Ingest(agent, head, rows, future, loop, events))
        return future

    # -- the writer threads --------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                group, events = [item], item.events
                while events < GROUP_MAX_EVENTS:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        self._queue.put(_STOP)
                        break
                    group.append(more)
                    events += more.events
                self._answer(group, events, self._commit(group))
        except BaseException as exc:  # pragma: no cover - a bug: say it and stop serving
            log.exception("the store writer stopped")
            for callback in self._failure_callbacks:
                callback(exc)

    def _keep_partitions(self) -> None:
        """Make the coming days' partitions every PARTITIONS_EVERY_S, on a thread of its
        own: creating one waits for the partition lock (another collector's purge may
        hold it for a while) and for the parent table's lock, never a writer's business."""
        while not self._stopping.wait(PARTITIONS_EVERY_S):
            try:
                self.write(partitions.ensure)
            except Exception as exc:  # they exist days ahead: the next hour will do
                log.warning("could not create the next days' partitions (next try in an "
                            "hour): %s", exc)

    def _commit(self, group: list[_Ingest]) -> list[Any]:
        try:
            return self._transaction(group)
        except StoreUnavailable as exc:
            return [exc] * len(group)
        except psycopg.OperationalError as exc:
            return [StoreUnavailable(describe(exc, self.url))] * len(group)
        except Exception as exc:
            if not isinstance(exc, (*PER_BATCH_ERRORS, psycopg.Error)):
                log.exception("ingest of %d batches failed", len(group))
            if len(group) == 1:
                return [self._batch_failure(group[0], exc)]
            return [self._alone(item) for item in group]

    def _alone(self, item: _Ingest) -> Any:
        try:
            return self._transaction([item])[0]
        except StoreUnavailable as exc:
            return exc
        except psycopg.OperationalError as exc:
            return StoreUnavailable(describe(exc, self.url))
        except Exception as exc:
            return self._batch_failure(item, exc)

    def _batch_failure(self, item: _Ingest, exc: Exception) -> Exception:
        if isinstance(exc, PER_BATCH_ERRORS):
            return exc
        log.error("batch %s not stored: %s", item.batch.sequence, exc)
        return StoreUnavailable(f"batch not stored: {' '.join(str(exc).split())}")

    def _transaction(self, group: list[_Ingest]) -> list[IngestResult]:
        received = now_ms()
        with self._connection() as conn, conn.raw.transaction():
            return self._insert_group(conn, group, received)

    def _insert_group(self, conn: PgConnection, group: list[_Ingest],
                      received: int) -> list[IngestResult]:
        conn.raw.execute(f"SET LOCAL lock_timeout = '{INGEST_LOCK_TIMEOUT}'")
        locks.take_agents(conn, (item.key for item in group))
        columns = list(zip(*[(item.key, item.batch.sequence, received, item.records.count,
                              item.batch.dropped_events) for item in group], strict=True))
        stored = set(map(tuple, conn.raw.execute(INSERT_BATCHES, list(map(list, columns)))
                         .fetchall()))
        results, new = split_new(group, stored)
        if not new:
            return results
        conn.deferred = []   # fleet-wide rollup rows: last, see PgConnection.upsert
        if self._group_hooks:
            batches = [StoredBatch(item.key, item.batch, item.records, received)
                       for item in new]
            for hook in self._group_hooks:
                hook(conn, batches)
        self._copy_rows(conn, new)
        _update_agents(conn, new, received)
        for item in new if self._hooks else ():
            agent = item.agent if isinstance(item.agent, AgentRow) else agent_row(
                conn, item.key)
            for hook in self._hooks:
                hook(conn, agent, item.batch)
        conn.run_deferred()
        return results

    @staticmethod
    def _copy_rows(conn: PgConnection, items: list[_Ingest]) -> None:
        tables = (("window_spans", "windows"), ("activity_spans", "activity"),
                  ("process_blocks", "process_blocks"), ("system_totals", "system"))
        for table, attr in tables:
            rows = list(chain.from_iterable(getattr(item.records, attr) for item in items))
            if rows:
                copy_rows(conn, table, rows)

    def _answer(self, group: list[_Ingest], events: int, outcomes: list[Any]) -> None:
        with self._state:
            self._pending_events -= events
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for item, outcome in zip(group, outcomes, strict=True):
            by_loop.setdefault(item.loop, []).append((item.future, outcome))
        for loop, pairs in by_loop.items():
            with contextlib.suppress(RuntimeError):   # its loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, pairs)

    # -- shutting down -------------------------------------------------------------------

    def close(self) -> None:
        """Finish what is queued, then close every connection."""
        with self._state:
            if self._closed:
                return
            self._closed = True
        self._stopping.set()
        for _ in self._writers:
            self._queue.put(_STOP)
        for writer in self._writers:
            writer.join(timeout=30)
        self._executor.shutdown(wait=True)
        self._pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_reading = threading.local()


def _settle(pairs: list) -> None:
    for future, outcome in pairs:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def copy_rows(conn: PgConnection, table: str, rows: Iterable[tuple]) -> None:
    """Binary COPY of ``rows`` (records' column order, text PostgreSQL can hold) into
    ``table``."""
    columns, types = COPY_COLUMNS[table]
    with conn.raw.cursor().copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        write = copy.write_row
        for row in rows:
            write(row)


def _update_agents(conn: PgConnection, items: list[GroupItem], received: int) -> None:
    """One row per agent (ascending key): last seen, highest sequence, dropped total,
    latest host facts, in one statement."""
    rows = agent_updates(items)
    conn.raw.execute(UPDATE_AGENTS, [received, *map(list, zip(*rows, strict=True))])
