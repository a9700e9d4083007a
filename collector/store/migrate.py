"""Versioned schema migrations: ``migrations/NNNN_name.sql`` applied in order,
each in its own transaction, recorded in ``schema_migrations``. A version may
also have a data step (``DATA_STEPS``): Python run in the same transaction after
its statements, for conversions SQL cannot express.

Statements are executed one by one (not ``executescript``, which commits
first) so a failing migration leaves nothing half-applied. Two processes
opening a fresh database at once are serialised by ``BEGIN IMMEDIATE`` and
the applied set is re-read after taking the lock.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from worklens.collector.store import blocks

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
DATA_STEPS: dict[int, Callable[[sqlite3.Connection], None]] = {
    5: blocks.convert_samples,
}
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def available(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), path))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number in {directory}")
    return found


def statements(sql: str) -> list[str]:
    """Split a script into complete statements (triggers with BEGIN..END included)."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf)
            buf = ""
    if buf.strip() and not all(ln.strip().startswith("--") or not ln.strip()
                               for ln in buf.splitlines()):
        raise RuntimeError(f"incomplete SQL statement at the end of a migration: {buf[:80]!r}")
    return out


def apply(conn: sqlite3.Connection, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply pending migrations on an autocommit connection; return the versions applied."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                 "name TEXT, applied_ms INTEGER)")
    fresh = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 0
    applied_now = []
    for migration in available(directory):
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?",
                                (migration.version,)).fetchone()
            if not done:
                for statement in statements(migration.path.read_text(encoding="utf-8")):
                    conn.execute(statement)
                if migration.version in DATA_STEPS and directory == MIGRATIONS_DIR:
                    DATA_STEPS[migration.version](conn)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                             (migration.version, migration.name, int(time.time() * 1000)))
                applied_now.append(migration.version)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    if applied_now:  # upgrading an existing database is news; creating one is not
        log.log(logging.DEBUG if fresh else logging.INFO, "applied schema migrations %s",
                applied_now)
    return applied_now


POSTGRESQL_DIR = MIGRATIONS_DIR / "postgresql"


def apply_postgresql(conn, directory: Path = POSTGRESQL_DIR) -> list[int]:
    """The same for a PostgreSQL store (``conn`` a ``pgsql.PgConnection``): its files
    (``migrations/postgresql/``) carry the numbers of the SQLite versions they match,
    the first being the whole schema at 0010. All pending ones run in ONE transaction
    that first takes the migration advisory lock, so that collectors starting together
    migrate once: the others wait, then find the versions applied."""
    from worklens.collector.store import locks

    applied_now = []
    with conn.raw.transaction():
        locks.take(conn, locks.MIGRATIONS)
        conn.raw.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version bigint PRIMARY "
                         "KEY, name text, applied_ms bigint)")
        done = {row[0] for row in conn.raw.execute("SELECT version FROM schema_migrations")}
        for migration in available(directory):
            if migration.version in done:
                continue
            conn.raw.execute(migration.path.read_text(encoding="utf-8"))
            conn.raw.execute("INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                             (migration.version, migration.name, int(time.time() * 1000)))
            applied_now.append(migration.version)
    if applied_now and done:
        log.info("applied schema migrations %s", applied_now)
    return applied_now
