"""PostgreSQL connections that the rest of the collector can use like the SQLite ones.

The summary, CSV, rules, retention, access and rollup code write one SQL text for
both engines: the portable subset both accept (explicit ``ON CONFLICT (...)``
targets, table-qualified columns in upserts, ``CASE`` instead of SQLite's scalar
``max(a, b)``, ``coalesce(sum(x), 0)`` instead of ``total(x)``). What still differs
in spelling is translated here, once per statement text (cached), and nowhere else:

* ``?`` placeholders become psycopg's ``%s`` (a literal ``%`` becomes ``%%``);
* ``INSERT OR IGNORE INTO t ...`` becomes ``INSERT INTO t ... ON CONFLICT DO NOTHING``;
* ``rowid`` (SQLite's insertion order) becomes the ``id`` column every PostgreSQL
  record table has for the same purpose.

What cannot be translated (engine facts such as the database size, partitions,
advisory locks) is asked of ``dialect(conn)`` by the caller and lives with its
backend. Values come back as the sqlite3 module returns them: ``numeric`` results
(``sum`` of bigint) as ``int`` or ``float``, never ``Decimal``; booleans are stored
as the 0/1 integers the SQLite schema uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

import psycopg
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from worklens.collector.store.base import POSTGRESQL

_TOKEN = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|\?|%|\browid\b|\bINSERT\s+OR\s+IGNORE\b",
                    re.IGNORECASE)


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """SQLite-spelled ``sql`` as PostgreSQL reads it (see the module docstring). Quoted
    strings and identifiers keep their ``?`` and ``rowid`` (their ``%`` is doubled too:
    psycopg looks for placeholders everywhere)."""
    ignore = False

    def swap(match: re.Match) -> str:
        nonlocal ignore
        text = match.group(0)
        if text[0] in "'\"":
            return text.replace("%", "%%")   # psycopg reads % everywhere, quotes too
        if text == "?":
            return "%s"
        if text == "%":
            return "%%"
        if text.lower() == "rowid":
            return "id"
        ignore = True
        return "INSERT"
    out = _TOKEN.sub(swap, sql)
    if ignore:
        out = out.rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    return out


class _NumericLoader(Loader):
    """``numeric`` (what PostgreSQL's sum() of bigint returns) as int or float."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        return float(text) if any(c in text for c in ".eEN") else int(text)


class _BoolAsIntDumper(Dumper):
    """Python booleans (protobuf's ``excluded``, ``continued``) as the 0/1 integers of
    the schema, as sqlite3 stores them."""

    oid = psycopg.postgres.types["int8"].oid
    format = Format.TEXT

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


def adapt(conn: psycopg.Connection) -> None:
    """Register the loaders/dumpers that make results look like sqlite3's."""
    conn.adapters.register_loader("numeric", _NumericLoader)
    conn.adapters.register_dumper(bool, _BoolAsIntDumper)


class PgConnection:
    """A psycopg connection with the sqlite3 calls the collector's SQL code makes:
    ``execute`` and ``executemany`` (on translated SQL) returning a cursor with
    ``fetchone``/``fetchall``/iteration/``rowcount``, and ``in_transaction``."""

    dialect = POSTGRESQL

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw
        # Upserts of rows that every collector's transactions share (the fleet-wide
        # rollup), held back to just before COMMIT by the ingest transaction (see
        # ``upsert``); None: run them at once.
        self.deferred: list[tuple[str, list]] | None = None

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor:
        # always parameters (maybe none): psycopg turns the translated %% back into %
        # only when it formats the statement
        return self.raw.execute(translate(sql), params or ())

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> psycopg.Cursor:
        cur = self.raw.cursor()
        cur.executemany(translate(sql), list(rows))
        return cur

    def upsert(self, sql: str, rows: list[Sequence[Any]], *, shared: bool = False) -> None:
        """Run the one-row upsert ``sql`` (``INSERT INTO t [(cols)] VALUES (?,..)
        ON CONFLICT ...``) for all ``rows`` in ONE statement, the rows passed as one
        array per column (``unnest``): one plan, one statement-level trigger run,
        and psycopg adapts whole arrays instead of thousands of parameters.

        ``shared``: rows other transactions update too (not one agent's). Their row
        locks are held until COMMIT, so inside an ingest transaction (``deferred`` set)
        they wait to be the last statement: a concurrent transaction then waits for
        our COMMIT only, not for everything we do after them."""
        if shared and self.deferred is not None:
            self.deferred.append((sql, rows))
            return
        table, columns, tail = _upsert_parts(sql)
        types = _column_types(self.raw, table, columns)
        arrays = ", ".join(f"%s::{t}[]" for t in types)
        listed = f" ({columns})" if columns else ""
        self.raw.execute(f"INSERT INTO {table}{listed} SELECT * FROM unnest({arrays}) {tail}",
                         [_array(column, t) for column, t in zip(zip(*rows, strict=True), types,
                                                                 strict=True)])

    def run_deferred(self) -> None:
        """The held-back shared upserts, in the order they came."""
        pending, self.deferred = self.deferred or [], None
        for sql, rows in pending:
            self.upsert(sql, rows)

    def chunks(self, sql: str, params: Sequence[Any] | None = None,
               size: int = 5000) -> Iterable[list[tuple]]:
        """The rows of ``sql`` (no LIMIT of its own) in lists of at most ``size``, never
        more than ``size + 1`` rows in memory. A result that fits comes in one round
        trip (an export asks once per agent, most agents' days fit); a bigger one is
        asked again through a server-side cursor (DECLARE, FETCH..., CLOSE)."""
        params = list(params or ())
        first = self.raw.execute(f"{translate(sql)} LIMIT %s", [*params, size + 1]).fetchall()
        if len(first) <= size:
            if first:
                yield first
            return
        del first
        with self.raw.cursor(name=f"wl_stream_{id(self)}") as cur:
            cur.execute(translate(sql), params)
            while rows := cur.fetchmany(size):
                yield rows

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


def _array(column: tuple, sql_type: str) -> list | str:
    """One column of an upsert as its array parameter. Integers go as the array's text
    form, made at C speed (``{1,2,3}``, which PostgreSQL casts): psycopg adapts a list
    one element at a time in Python, a measured 5-7 % of an ingest writer's CPU."""
    if sql_type == "bigint":
        return "{" + ",".join(map(str, map(int, column))) + "}"
    return list(column)


_UPSERT = re.compile(r"INSERT INTO (\w+)(?: \(([^)]*)\))? VALUES \([?,\s]+\) (ON CONFLICT .*)",
                     re.S)
_TYPES: dict[tuple[str, str], tuple[str, ...]] = {}


@lru_cache(maxsize=64)
def _upsert_parts(sql: str) -> tuple[str, str, str]:
    match = _UPSERT.fullmatch(sql.strip())
    if match is None:
        raise ValueError(f"not a one-row upsert: {sql[:80]!r}")
    return match.group(1), match.group(2) or "", translate(match.group(3))


def _column_types(raw: psycopg.Connection, table: str, columns: str) -> tuple[str, ...]:
    """The SQL types of ``columns`` (all, in order, when empty) of ``table``."""
    key = (table, columns)
    if key not in _TYPES:
        rows = raw.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                           "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
                           "ORDER BY attnum", (table,)).fetchall()
        types = dict(rows)
        names = [c.strip().strip('"') for c in columns.split(",")] if columns else list(types)
        _TYPES[key] = tuple(types[name] for name in names)
    return _TYPES[key]


def without_nul(rows: list[tuple], texts: Sequence[int]) -> list[tuple]:
    """``rows`` with NUL in their text columns ``texts`` replaced by U+FFFD: PostgreSQL
    text cannot hold NUL, SQLite can (the replacement keeps the place visible). NUL is
    rare, so the columns are searched whole at C speed first and rows copied only then."""
    if not any("\x00" in "".join(map(itemgetter(i), rows)) for i in texts):
        return rows
    return [tuple(v.replace("\x00", "\ufffd") if i in texts else v for i, v in enumerate(row))
            for row in rows]


def describe(exc: BaseException, url: str) -> str:
    """One line for a PostgreSQL failure, without the password of ``url``."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"PostgreSQL at {redact(url)}: {text}"


def redact(url: str) -> str:
    """``url`` without its password (logs and error lines name the database)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
