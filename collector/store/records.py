"""A batch turned into rows, one list of tuples per record table, in the
column order of the INSERT statements below: ``Records`` as extracted (what
validation checks, one tuple per process sample), then ``Rows`` as stored (the
process samples packed into blocks, ``collector.store.blocks``).

Rows are inserted with multi-row ``INSERT ... VALUES (...), (...)`` statements
of ``CHUNK_ROWS`` rows (the remainder in power-of-two chunks, so a handful of
cached statements covers every size), not ``executemany``: the sqlite3 module
releases the GIL around each statement step, and one step per row made the
writer thread hand the GIL back and forth with the event loop thread for every
row (a convoy that halved throughput). One step per chunk lets SQLite's work
run in parallel with the event loop.

Built once per batch: validation checks the columns (``zip(*rows)`` runs at C
speed, far cheaper than walking protobuf messages again) and the writer
inserts the same tuples.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

from worklens.collector.store import blocks
from worklens.v1 import agent_pb2

INSERT_WINDOWS = ("INSERT INTO window_spans (agent, start_ms, duration_ms, app, title, pid, exe, "
                  "excluded, username) VALUES (?,?,?,?,?,?,?,?,?)")
INSERT_ACTIVITY = ("INSERT INTO activity_spans (agent, start_ms, duration_ms, state, key_presses, "
                   "clicks, mouse_moves, scrolls, username) VALUES (?,?,?,?,?,?,?,?,?)")
INSERT_SYSTEM = ("INSERT INTO system_totals (agent, time_ms, cpu_percent, mem_total_bytes, "
                 "mem_used_bytes, process_count, cpu_count) VALUES (?,?,?,?,?,?,?)")


@dataclass(frozen=True)
class Records:
    """A batch's records as extracted: what validation checks."""

    windows: list[tuple]
    activity: list[tuple]
    processes: list[tuple]
    system: list[tuple]

    @property
    def count(self) -> int:
        return len(self.windows) + len(self.activity) + len(self.processes) + len(self.system)


@dataclass(frozen=True)
class Rows:
    """A batch's rows as the writer stores them: the process samples are blocks
    (``collector.store.blocks``) with their per-bucket ``process_totals`` for the
    rollups. ``count`` is still the batch's number of records."""

    windows: list[tuple]
    activity: list[tuple]
    process_blocks: list[tuple]
    system: list[tuple]
    process_totals: list[tuple]
    count: int

    def tables(self) -> tuple[tuple[str, list[tuple]], ...]:
        return ((INSERT_WINDOWS, self.windows), (INSERT_ACTIVITY, self.activity),
                (blocks.INSERT_BLOCKS, self.process_blocks), (INSERT_SYSTEM, self.system))


def extract(agent_key: int, batch: agent_pb2.Batch) -> Records:
    """Rows for ``batch`` stored under ``agent_key``; spans carry the batch's user."""
    user = batch.host.user
    return Records(
        windows=[(agent_key, w.start_ms, w.duration_ms, w.app, w.title, w.pid, w.exe,
                  w.excluded, user) for w in batch.windows],
        activity=[(agent_key, a.start_ms, a.duration_ms, a.state, a.key_presses, a.clicks,
                   a.mouse_moves, a.scrolls, user) for a in batch.activity],
        processes=[(agent_key, p.time_ms, p.pid, p.name, p.user, p.cpu_percent, p.rss_bytes,
                    p.cpu_seconds, p.interval_ms) for p in batch.processes],
        system=[(agent_key, s.time_ms, s.cpu_percent, s.mem_total_bytes, s.mem_used_bytes,
                 s.process_count, s.cpu_count) for s in batch.system],
    )


def seal(agent_key: int, batch: agent_pb2.Batch, records: Records) -> Rows:
    """The rows to store for ``batch`` (extracted as ``records``). Consumes ``batch``
    (see ``blocks.pack``): take what else is needed of it first."""
    samples = records.processes
    return Rows(records.windows, records.activity, blocks.pack(agent_key, batch, samples),
                records.system, blocks.totals(agent_key, samples), records.count)


CHUNK_ROWS = 1024
GC_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Ingest allocates a tuple per record (extracting, pickling to the writer process,
    unpickling there), which triggers the cyclic collector every few hundred rows
    (measured at 5 % of a process); rows never form cycles, so collect far less
    often and leave the long-lived startup objects out of every pass."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 50, 100)


@lru_cache(maxsize=256)
def _multi_row(sql: str, width: int, rows: int) -> str:
    head = sql[:sql.index(" VALUES")]
    one = "(" + ",".join("?" * width) + ")"
    return f"{head} VALUES {','.join([one] * rows)}"


def insert_rows(conn, sql: str, rows: list[tuple], returning: str = "") -> list[tuple]:
    """``conn.executemany(sql, rows)``, done in few multi-row statements; with
    ``returning`` (columns), the rows SQLite reports as really inserted."""
    width, total, done, out = len(rows[0]), len(rows), 0, []
    while done < total:
        left = total - done
        size = CHUNK_ROWS if left >= CHUNK_ROWS else 1 << (left.bit_length() - 1)
        statement = _multi_row(sql, width, size)
        if returning:
            statement = _returning(statement, returning)
        cursor = conn.execute(statement, list(chain.from_iterable(rows[done:done + size])))
        if returning:
            out.extend(cursor.fetchall())
        done += size
    return out


@lru_cache(maxsize=64)
def _returning(statement: str, columns: str) -> str:
    return f"{statement} RETURNING {columns}"
