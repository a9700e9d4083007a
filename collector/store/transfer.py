"""Moving a SQLite store into PostgreSQL (``worklens-collector migrate --to``).

Every row is copied as it is stored, keys included: ``agents.id`` is what every
record table calls ``agent``, so the agents keep their keys (and their credential
hashes and sequence ledger: they carry on without enrolling again), and each
record row keeps its SQLite ``rowid`` as its PostgreSQL ``id`` (the insertion
order both engines read it as). The sequences then start past the largest key.

Why it is done this way:

* The source is opened read-only and read in ONE read transaction: a consistent
  snapshot, and the file's bytes stay as they were. It must be at this version's
  schema (migrating it would write it); its lock file is held for the whole copy,
  so that a collector cannot start serving it halfway (``open_source``).
* Everything is written in ONE PostgreSQL transaction, with the row counts
  compared before COMMIT: a copy that fails or does not add up leaves the target
  as empty as it was, ready for another try. Only the day partitions covering the
  source's time range are made before, in a transaction of their own (creating a
  partition locks its parent; empty partitions are what collectors make anyway).
* Rows go in with binary COPY, table by table, read from SQLite in rowid order
  (primary key order for WITHOUT ROWID tables) in chunks.
* The per-day rollups are copied as they are with rollup_window's trigger disabled
  inside the transaction (firing it per copied row would recompute them slowly);
  before COMMIT they are checked against rollup_window, as the trigger keeps them.
* The columns copied are those of the two schemas, read from both catalogues: a
  column or table one engine has and the other has not stops the move, rather than
  being left behind without a word.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from worklens.collector.store import migrate, partitions
from worklens.collector.store.base import StoreError
from worklens.collector.store.connect import BUSY_TIMEOUT_MS
from worklens.collector.store.pgsql import PgConnection, describe, without_nul

log = logging.getLogger(__name__)

# In the order they are copied: agents and access first, then what refers to them.
TABLES = ("agents", "tokens", "token_groups", "agent_groups", "batches", "agent_live",
          "window_spans", "activity_spans", "process_blocks", "system_totals",
          "rollup_window", "rollup_window_all", "rollup_activity", "rollup_process",
          "rollup_dropped", "rollup_agent", "rollup_agent_day", "rollup_app_day",
          "rules", "rules_version", "audit_log")
# Not copied: each store keeps its own schema versions; PostgreSQL's rollups need no
# cursors (every stored row is rolled up in its own transaction).
SKIPPED = ("schema_migrations", "rollup_cursor")
# Rows the PostgreSQL schema creates itself: replaced by the source's.
PREFILLED = ("rules_version",)
CHUNK_ROWS = 10_000
_COPY_TYPES = {"bigint": "int8", "integer": "int4", "smallint": "int2", "text": "text",
               "double precision": "float8", "real": "float4", "bytea": "bytea"}
# The day rollups against rollup_window, per agent and UTC day (what the trigger keeps):
# groups whose sums differ, all-zero groups aside (the trigger tidies those away).
# rollup_agent_day's classes count active + passive time (migration 0011).
_DAY_SUMS = """
WITH w AS (SELECT agent, bucket - bucket % 86400000 AS day, sum(active_ms) AS a,
                  sum(idle_ms) AS i, sum(spans) AS s, sum(passive_ms) AS p
           FROM rollup_window GROUP BY 1, 2),
     ad AS (SELECT agent, day, sum(active_ms) AS a, sum(idle_ms) AS i, sum(spans) AS s,
                   sum(passive_ms) AS p FROM rollup_app_day GROUP BY 1, 2),
     ud AS (SELECT agent, day, sum(productive_ms + neutral_ms + unproductive_ms
                                   + unclassified_ms - passive_ms) AS a, sum(idle_ms) AS i,
                   sum(spans) AS s, sum(passive_ms) AS p FROM rollup_agent_day GROUP BY 1, 2),
     nw AS (SELECT * FROM w WHERE (a, i, s, p) <> (0, 0, 0, 0)),
     nad AS (SELECT * FROM ad WHERE (a, i, s, p) <> (0, 0, 0, 0)),
     nud AS (SELECT * FROM ud WHERE (a, i, s, p) <> (0, 0, 0, 0))
SELECT (SELECT count(*) FROM ((SELECT * FROM nw EXCEPT SELECT * FROM nad)
                              UNION ALL (SELECT * FROM nad EXCEPT SELECT * FROM nw)) x),
       (SELECT count(*) FROM ((SELECT * FROM nw EXCEPT SELECT * FROM nud)
                              UNION ALL (SELECT * FROM nud EXCEPT SELECT * FROM nw)) y)
"""


@dataclass(frozen=True)
class TableCount:
    table: str
    source: int
    target: int


class CountMismatch(StoreError):
    """The copy did not add up; nothing was committed. ``counts`` says per table."""

    def __init__(self, message: str, counts: list[TableCount]) -> None:
        super().__init__(message)
        self.counts = counts


@dataclass(frozen=True)
class Moved:
    counts: list[TableCount]
    partitions: int           # day partitions made for the source's time range
    unrolled: int             # source rows its rollups had not counted yet (see copy())

    @property
    def rows(self) -> int:
        return sum(c.source for c in self.counts)


@dataclass(frozen=True)
class _Plan:
    """How one table is read from SQLite and written to PostgreSQL."""

    table: str
    select: str
    copy: str
    types: tuple[str, ...]
    texts: tuple[int, ...]        # positions of text columns (NUL cannot go in)
    serials: tuple[str, ...]      # PostgreSQL columns fed by a sequence


# -- the source -------------------------------------------------------------------------------

@contextlib.contextmanager
def open_source(path: Path) -> Iterator[sqlite3.Connection]:
    """The SQLite store at ``path``, read-only, in one read transaction, with its lock
    file held (no collector can start serving it meanwhile). Raises StoreError with one
    line: no such store, a collector serving it, a schema older or newer than this
    version's."""
    if not path.is_file():
        raise StoreError(f"no SQLite store at {path} (give it with --db sqlite:///PATH)")
    with _hold_lock(path):
        try:
            conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True,
                                   isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {path}: {exc}") from None
        try:
            conn.execute("PRAGMA query_only=ON")
            conn.execute("BEGIN")
            _check_schema(conn, path)
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {path}: {exc}") from None
        finally:
            conn.close()


@contextlib.contextmanager
def _hold_lock(path: Path) -> Iterator[None]:
    """Take the store's ``<db>.lock`` as ``serve`` does, or refuse if a collector holds
    it: what it stored after the copy began would not be in PostgreSQL."""
    fd = _open_lock(Path(f"{path}.lock"))
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise StoreError(f"a collector (pid {holder}) is serving {path}: stop it first, "
                             "then migrate (what it stored meanwhile would be left "
                             "behind)") from None
        with contextlib.suppress(OSError):   # read-only: the flock holds all the same
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def _open_lock(lock_path: Path) -> int | None:
    """The lock file's descriptor; read-only if it cannot be written (a flock holds all
    the same); None if there is none and none can be made (no collector ever served it
    from here)."""
    try:
        return os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        pass
    try:
        return os.open(lock_path, os.O_RDONLY)
    except OSError:
        return None


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    try:
        version = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] or 0
    except sqlite3.OperationalError:
        raise StoreError(f"{path} is not a Worklens store (no schema_migrations)") from None
    latest = migrate.available()[-1].version
    if version > latest:
        raise StoreError(f"{path} is at schema version {version}, newer than this "
                         f"collector's ({latest}): migrate with the collector that wrote it")
    if version != latest:
        raise StoreError(f"{path} is at schema version {version}, this collector's is "
                         f"{latest}: upgrade it first with any store command (e.g. "
                         f"worklens-collector token list --db sqlite:///{path}), then migrate")


def _source_tables(src: sqlite3.Connection) -> dict[str, bool]:
    """Table name -> whether it has a rowid, for the source's own tables."""
    rows = src.execute("SELECT name, wr FROM pragma_table_list WHERE schema = 'main' "
                       "AND type = 'table' AND name NOT LIKE 'sqlite%'").fetchall()
    return {name: not without_rowid for name, without_rowid in rows}


def _time_range(src: sqlite3.Connection) -> tuple[int, int] | None:
    """[first, last] time of any record, per agent through the (agent, time) indexes
    (a whole-table min() would read every row)."""
    agents = [key for (key,) in src.execute("SELECT id FROM agents")]
    first = last = None
    for table, column in partitions.PARTITIONED.items():
        for key in agents:
            lo = src.execute(f"SELECT min({column}) FROM {table} WHERE agent = ?",
                             (key,)).fetchone()[0]
            if lo is None:
                continue
            hi = src.execute(f"SELECT max({column}) FROM {table} WHERE agent = ?",
                             (key,)).fetchone()[0]
            first = lo if first is None else min(first, lo)
            last = hi if last is None else max(last, hi)
    return None if first is None else (first, last)


def _unrolled(src: sqlite3.Connection) -> int:
    """Source rows above its rollup cursors: stored without their rollups, which a
    SQLite collector would add at its next ingest, and PostgreSQL never will."""
    behind = 0
    for name, cursor in src.execute("SELECT name, last_rowid FROM rollup_cursor").fetchall():
        behind += src.execute(f"SELECT count(*) FROM {name} WHERE rowid > ?",
                              (cursor,)).fetchone()[0]
    return behind


# -- the target -------------------------------------------------------------------------------

def held_rows(conn: PgConnection) -> dict[str, int]:
    """Target tables that hold rows already (the schema's own rows aside)."""
    held = {}
    for table in TABLES:
        if table not in PREFILLED:
            count = conn.raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            if count:
                held[table] = count
    return held


def refuse_unless_empty(conn: PgConnection, where: str) -> None:
    held = held_rows(conn)
    if held:
        what = ", ".join(f"{count} {table}" for table, count in list(held.items())[:3])
        if len(held) > 3:
            what += f" and {len(held) - 3} more tables"
        raise StoreError(f"PostgreSQL at {where} already holds data ({what}): migrate moves "
                         "a store into "
                         "an empty database only (create a new one, or drop this one's "
                         "tables)")


def _plans(src: sqlite3.Connection, dst: PgConnection) -> list[_Plan]:
    tables = _source_tables(src)
    unknown = sorted(set(tables) - set(TABLES) - set(SKIPPED))
    if unknown:
        raise StoreError(f"the SQLite store has tables this migrate does not know how to "
                         f"move: {', '.join(unknown)}")
    return [_plan(src, dst, table, tables.get(table)) for table in TABLES]


def _plan(src: sqlite3.Connection, dst: PgConnection, table: str, rowid: bool | None
          ) -> _Plan:
    if rowid is None:
        raise StoreError(f"the SQLite store has no table {table}")
    target = dst.raw.execute(
        "SELECT column_name, data_type, column_default FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        (table,)).fetchall()
    if not target:
        raise StoreError(f"the PostgreSQL database has no table {table}")
    source = {row[1] for row in src.execute(f"SELECT * FROM pragma_table_info('{table}')")}
    extra = source - {name for name, _type, _default in target}
    if extra:
        raise StoreError(f"{table}: column(s) {', '.join(sorted(extra))} only in SQLite")
    reads = []
    for name, _type, _default in target:
        if name in source:
            reads.append(f'"{name}"')
        elif name == "id" and rowid:    # record tables: the insertion order
            reads.append("rowid")
        else:
            raise StoreError(f"{table}: column {name} only in PostgreSQL")
    types = []
    for name, data_type, _default in target:
        if data_type not in _COPY_TYPES:
            raise StoreError(f"{table}.{name}: cannot copy PostgreSQL type {data_type}")
        types.append(_COPY_TYPES[data_type])
    columns = ", ".join(f'"{name}"' for name, _type, _default in target)   # "overlaps"
    order = " ORDER BY rowid" if rowid else ""
    return _Plan(table, f"SELECT {', '.join(reads)} FROM {table}{order}",
                 f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)", tuple(types),
                 tuple(i for i, t in enumerate(types) if t == "text"),
                 tuple(name for name, _type, default in target
                       if (default or "").startswith("nextval(")))


# -- the move ---------------------------------------------------------------------------------

def copy(src: sqlite3.Connection, store: Any, progress: Any) -> Moved:
    """Copy everything of ``src`` (from ``open_source``) into the PostgreSQL ``store``,
    which must hold no data; ``progress`` (cli.progress.Progress) counts rows. Raises
    StoreError (one line) or CountMismatch, with nothing committed but partitions."""
    try:
        with store.reader() as conn:
            refuse_unless_empty(conn, store.path)
            plans = _plans(src, conn)
        counts = {plan.table: src.execute(f"SELECT count(*) FROM {plan.table}").fetchone()[0]
                  for plan in plans}
        progress.set_total(sum(counts.values()))
        span = _time_range(src)
        made = 0
        if span is not None:
            made = store.write(lambda conn: partitions.ensure(conn, span[0], span[1] + 1))
        checked = store.write(lambda conn: _copy_all(src, conn, store.path, plans, counts,
                                                     progress))
    except psycopg.Error as exc:
        raise StoreError(describe(exc, store.url)) from None
    return Moved(checked, made, _unrolled(src))


def _copy_all(src: sqlite3.Connection, dst: PgConnection, where: str, plans: list[_Plan],
              counts: dict[str, int], progress: Any) -> list[TableCount]:
    """The one transaction: lock, check empty, copy, set sequences, verify."""
    dst.raw.execute(f"LOCK TABLE {', '.join(TABLES)} IN EXCLUSIVE MODE")
    refuse_unless_empty(dst, where)   # again, now that nobody else can write
    for table in PREFILLED:
        dst.raw.execute(f"DELETE FROM {table}")
    dst.raw.execute("ALTER TABLE rollup_window DISABLE TRIGGER USER")
    for plan in plans:
        _copy_table(src, dst, plan, progress)
        for column in plan.serials:
            dst.raw.execute(f"SELECT setval(pg_get_serial_sequence('{plan.table}', "
                            f"'{column}'), coalesce(max({column}), 0) + 1, false) "
                            f"FROM {plan.table}")
    dst.raw.execute("ALTER TABLE rollup_window ENABLE TRIGGER USER")
    return _verify(dst, counts)


def _copy_table(src: sqlite3.Connection, dst: PgConnection, plan: _Plan,
                progress: Any) -> None:
    rows = src.execute(plan.select)
    with dst.raw.cursor().copy(plan.copy) as copy:
        copy.set_types(plan.types)
        while chunk := rows.fetchmany(CHUNK_ROWS):
            for row in without_nul(chunk, plan.texts):   # as ingest does
                copy.write_row(row)
            progress.add(len(chunk), plan.table)


def _verify(dst: PgConnection, counts: dict[str, int]) -> list[TableCount]:
    """Per-table counts of both sides, and the day rollups against rollup_window;
    raises CountMismatch (the transaction then rolls back) if anything differs."""
    checked = [TableCount(table, count, dst.raw.execute(
        f"SELECT count(*) FROM {table}").fetchone()[0]) for table, count in counts.items()]
    differ = [c for c in checked if c.source != c.target]
    if differ:
        what = ", ".join(f"{c.table} {c.source} in SQLite, {c.target} in PostgreSQL"
                         for c in differ)
        raise CountMismatch(f"row counts differ ({what}); nothing was committed", checked)
    by_app, by_user = dst.raw.execute(_DAY_SUMS).fetchone()
    if by_app or by_user:
        raise CountMismatch(f"the day rollups disagree with rollup_window on {by_app + by_user}"
                            " agent-days (in the SQLite store already: run `worklens-collector "
                            "rollups rebuild` on it first); nothing was committed", checked)
    return checked
