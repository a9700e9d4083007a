"""PostgreSQL's record tables are partitioned by UTC day; this module keeps the
partitions: created ahead of the data, dropped whole by retention.

Why days: retention is given in days, so a purge drops the partitions that end
before the cutoff and deletes rows only from the one day that straddles it (and
from the DEFAULT partition, which takes rows of days no partition was made for:
an agent's spool emptied weeks late, or a clock far off). Why ahead: creating a
partition takes a lock on its parent that waits for (and blocks) ingest, so each
collector makes the next days' partitions at start and then every hour, under an
advisory lock so that only one of several collectors does it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from worklens.collector.store import locks

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
AHEAD_DAYS = 7
BEHIND_DAYS = 1
# table -> the column it is partitioned on
PARTITIONED = {"window_spans": "start_ms", "activity_spans": "start_ms",
               "process_blocks": "bucket", "system_totals": "time_ms"}


def name(table: str, day_ms: int) -> str:
    return f"{table}_{time.strftime('%Y%m%d', time.gmtime(day_ms / 1000))}"


def existing(conn: Any) -> dict[str, dict[str, tuple[int, int]]]:
    """Per partitioned table, its day partitions: name -> [lo, hi) in epoch ms."""
    out: dict[str, dict[str, tuple[int, int]]] = {table: {} for table in PARTITIONED}
    rows = conn.raw.execute(
        "SELECT p.relname, c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE p.relname = ANY(%s)", (list(PARTITIONED),))
    for parent, child, bound in rows:
        lo_hi = _bounds(bound)
        if lo_hi is not None:
            out[parent][child] = lo_hi
    return out


def _bounds(bound: str) -> tuple[int, int] | None:
    """``FOR VALUES FROM ('1') TO ('2')`` -> (1, 2); the DEFAULT partition -> None."""
    if "FROM" not in bound:
        return None
    lo, hi = (part.split(")")[0].strip(" ('") for part in bound.split("(")[1:3])
    return int(lo), int(hi)


def ensure(conn: Any, from_ms: int | None = None, to_ms: int | None = None) -> int:
    """Create the missing day partitions covering [from_ms, to_ms) (default: from
    yesterday to AHEAD_DAYS ahead); return how many were made. Runs in the caller's
    transaction, under the partition advisory lock."""
    now = int(time.time() * 1000)
    lo = (now if from_ms is None else from_ms) // DAY_MS * DAY_MS
    if from_ms is None:
        lo -= BEHIND_DAYS * DAY_MS
    hi = now + AHEAD_DAYS * DAY_MS if to_ms is None else to_ms
    locks.take(conn, locks.PARTITIONS)
    have = existing(conn)
    made = 0
    for table, column in PARTITIONED.items():
        for day in range(lo, hi, DAY_MS):
            part = name(table, day)
            if part in have[table]:
                continue
            if _default_holds(conn, table, column, day):
                log.warning("%s: rows of %s are in the default partition; that day stays "
                            "there", table, part[-8:])
                continue
            conn.raw.execute(f"CREATE TABLE {part} PARTITION OF {table} "
                             f"FOR VALUES FROM ({day}) TO ({day + DAY_MS})")
            made += 1
    if made:
        log.info("created %d day partitions", made)
    return made


def _default_holds(conn: Any, table: str, column: str, day: int) -> bool:
    return conn.raw.execute(
        f"SELECT 1 FROM {table}_default WHERE {column} >= %s AND {column} < %s LIMIT 1",
        (day, day + DAY_MS)).fetchone() is not None


def drop_before(conn: Any, cutoff_ms: int) -> dict[str, int]:
    """Drop every day partition that ends at or before ``cutoff_ms``; return how many
    rows they held, per partitioned table (retention counts them as purged)."""
    rows = dict.fromkeys(PARTITIONED, 0)
    locks.take(conn, locks.PARTITIONS)
    for table, parts in existing(conn).items():
        for part, (_lo, hi) in sorted(parts.items()):
            if hi <= cutoff_ms:
                rows[table] += conn.raw.execute(f"SELECT count(*) FROM {part}").fetchone()[0]
                conn.raw.execute(f"DROP TABLE {part}")
                log.debug("dropped partition %s of %s", part, table)
    return rows
