"""The agent's durable spool: an SQLite (WAL) file in the data dir that holds
everything not yet acknowledged by the collector.

Why a database and not a queue in memory: the agent must lose nothing closed
through collector downtime, restarts and ``kill -9``. So a closed record is
committed here the moment the sensor side hands it over, and a batch leaves
only when the collector has acknowledged it (after storing it durably).

Life of a record::

    write() -> records --seal() every flush_interval--> batches --ack--> (deleted)
    batches --INVALID_ARGUMENT--> dead_letters
    batches --over spool_max_mb / spool_max_age--> (dropped, counted)
    checkpoint() -> open_records --(next start after a crash)--> records

* Sequence numbers come from a persisted counter and are never reused, so a
  batch re-sent after a lost ack is recognised by the collector as a duplicate.
  A spool that was started afresh (first run, corrupt file moved aside) has never
  sent anything, so before its first delivery it is aligned with the collector's
  last stored sequence (``align_sequences``) and its numbers cannot collide with
  batches an earlier spool delivered.
* Limits: past ``spool_max_mb`` or ``spool_max_age`` the oldest batches are
  dropped; their event count (plus any they themselves carried) is added to the
  ``dropped_events`` of the next sealed batch, so the collector learns how much
  is missing.
* A spool SQLite cannot read is moved aside with a clear log line and a fresh one
  is started: the agent must never crash in a loop over a bad file.

The batches' records are stored serialized (``worklens.v1.Batch`` without agent
id, host or sequence: those are filled in at send time, so re-enrolling or
re-aligning never rewrites payloads).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from worklens.agent.sink import Record
from worklens.common.cli import UserError
from worklens.v1 import agent_pb2

log = logging.getLogger(__name__)

SPOOL_FILE = "spool.db"
# A batch never grows past these, whatever piled up while sealing was not possible;
# the collector's defaults (50 000 events, 16 MB) are far above.
MAX_BATCH_EVENTS = 5_000
MAX_BATCH_BYTES = 2 * 1024 * 1024

# record kind <-> the Batch field that carries it
_KINDS: dict[type, int] = {agent_pb2.WindowSpan: 1, agent_pb2.ActivitySpan: 2,
                           agent_pb2.ProcessSample: 3, agent_pb2.SystemTotals: 4}
_FIELDS = {1: "windows", 2: "activity", 3: "processes", 4: "system"}
_TYPES = {kind: cls for cls, kind in _KINDS.items()}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records(id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS open_records(id INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS batches(sequence INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL, events INTEGER NOT NULL,
    dropped_events INTEGER NOT NULL, size INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters(sequence INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL, failed_ms INTEGER NOT NULL, events INTEGER NOT NULL,
    dropped_events INTEGER NOT NULL, size INTEGER NOT NULL, reason TEXT NOT NULL,
    data BLOB NOT NULL);
"""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Pending:
    """A sealed batch waiting for its ack, ready to be stamped and sent."""

    sequence: int
    events: int
    batch: agent_pb2.Batch


@dataclass
class Depth:
    batches: int
    events: int
    bytes: int
    oldest_created_ms: int | None   # oldest unsent batch
    unsealed: int                   # closed records waiting for the next seal
    dead_letters: int
    dead_letter_events: int


class Spool:
    """Thread-safe: the sensor side writes while the shipper reads and acks."""

    def __init__(self, conn: sqlite3.Connection, path: Path, max_bytes: int, max_age_s: float):
        self._conn = conn
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_ms = int(max_age_s * 1000)
        self._lock = threading.Lock()
        self._lost_in_memory = 0   # records that could not even be written (disk full...)

    # -- opening -----------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: Path, max_mb: float = 100.0, max_age_s: float = 30 * 86400.0,
             *, recover: bool = True) -> Spool:
        """Open (or create) the spool; a corrupt file is moved aside, not fatal.
        With ``recover`` (the running agent, not ``status``), open spans
        checkpointed before a crash become closed records."""
        path = data_dir / SPOOL_FILE
        try:
            conn = _connect(path)
        except sqlite3.DatabaseError as exc:
            aside = _move_aside(path)
            log.error("spool %s is unreadable (%s); moved it aside to %s and started a fresh "
                      "spool (the batches in the old file were not sent)", path, exc, aside)
            try:
                conn = _connect(path)
            except sqlite3.Error as again:
                raise UserError(f"cannot create spool {path}: {again}") from None
        except OSError as exc:
            raise UserError(f"cannot open spool {path}: {exc.strerror or exc}") from None
        spool = cls(conn, path, int(max_mb * 1024 * 1024), max_age_s)
        if recover:
            spool._recover_checkpoint()
        return spool

    @classmethod
    def inspect(cls, data_dir: Path) -> Spool | None:
        """Read-only view for ``status`` while the agent runs: no recovery, no
        moving aside, nothing created. None when there is no spool yet (also while
        the agent is creating it: the file exists before its tables do); raises
        sqlite3.DatabaseError when it cannot be read."""
        path = data_dir / SPOOL_FILE
        if not path.exists():
            return None
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                               check_same_thread=False, timeout=10)
        try:
            if not conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                conn.close()
                return None
            conn.execute("SELECT 1 FROM batches LIMIT 1").fetchall()
        except sqlite3.Error:
            conn.close()
            raise
        return cls(conn, path, 0, 0)

    def _recover_checkpoint(self) -> None:
        with self._lock, self._conn:
            moved = self._conn.execute(
                "INSERT INTO records(kind, data) SELECT kind, data FROM open_records ORDER BY id"
            ).rowcount
            self._conn.execute("DELETE FROM open_records")
        if moved:
            log.info("recovered %d open span(s) checkpointed before the agent stopped", moved)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- the sensor side ---------------------------------------------------------

    def add(self, records: Sequence[Record]) -> None:
        """Commit closed records. A failing disk must not take the sensors down:
        the records are counted as dropped instead."""
        if not records:
            return
        rows = [(_KINDS[type(r)], r.SerializeToString()) for r in records]
        try:
            with self._lock, self._conn:
                self._conn.executemany("INSERT INTO records(kind, data) VALUES (?, ?)", rows)
        except sqlite3.Error as exc:
            self._lost_in_memory += len(rows)
            log.error("could not spool %d record(s): %s (counted as dropped)", len(rows), exc)

    def checkpoint(self, open_records: Sequence[Record], closed: Sequence[Record] = ()) -> None:
        """Commit ``closed`` and replace the remembered open spans, in one transaction
        (see worklens.agent.sink.Sink.checkpoint)."""
        rows = [(_KINDS[type(r)], r.SerializeToString()) for r in open_records]
        done = [(_KINDS[type(r)], r.SerializeToString()) for r in closed]
        try:
            with self._lock, self._conn:
                if done:
                    self._conn.executemany("INSERT INTO records(kind, data) VALUES (?, ?)",
                                           done)
                self._conn.execute("DELETE FROM open_records")
                self._conn.executemany("INSERT INTO open_records(kind, data) VALUES (?, ?)",
                                       rows)
        except sqlite3.Error as exc:
            log.error("could not checkpoint open spans: %s", exc)

    # -- sealing and limits ------------------------------------------------------

    def seal(self, created_ms: int | None = None, heartbeat: bool = False) -> list[int]:
        """Turn all closed records into batches with fresh sequence numbers, within
        the limits. Returns the new sequence numbers. ``heartbeat``: an empty batch
        when there is nothing to send, not even an unacknowledged batch (the collector
        then knows the agent runs; while it is unreachable, one at most waits)."""
        created_ms = now_ms() if created_ms is None else created_ms
        sealed: list[int] = []
        with self._lock, self._conn:
            self._absorb_lost()
            self._enforce_age(created_ms)   # first, so this seal reports what it drops
            rows = self._conn.execute("SELECT id, kind, data FROM records ORDER BY id").fetchall()
            for chunk in _chunks(rows):
                sealed.append(self._seal_one(chunk, created_ms))
            idle = heartbeat and not rows and self._conn.execute(
                "SELECT 1 FROM batches LIMIT 1").fetchone() is None
            if idle or (not rows and self._meta("pending_dropped", 0)):
                sealed.append(self._seal_one([], created_ms))   # tell the collector anyway
            if rows:
                self._conn.execute("DELETE FROM records WHERE id <= ?", (rows[-1][0],))
            self._enforce_size()
        return sealed

    def _seal_one(self, rows: list[tuple[int, int, bytes]], created_ms: int) -> int:
        batch = agent_pb2.Batch(created_ms=created_ms)
        for _, kind, data in rows:
            getattr(batch, _FIELDS[kind]).add().MergeFromString(data)
        data = batch.SerializeToString()
        sequence = self._meta("next_sequence", 1)
        dropped = self._meta("pending_dropped", 0)
        self._conn.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
                           (sequence, created_ms, len(rows), dropped, len(data), data))
        self._set_meta("next_sequence", sequence + 1)
        self._set_meta("pending_dropped", 0)
        return sequence

    def _absorb_lost(self) -> None:
        if self._lost_in_memory:
            self._count_dropped(self._lost_in_memory)
            self._lost_in_memory = 0

    def _count_dropped(self, events: int) -> None:
        self._set_meta("pending_dropped", self._meta("pending_dropped", 0) + events)
        self._set_meta("dropped_total", self._meta("dropped_total", 0) + events)

    def _enforce_age(self, now: int) -> None:
        too_old = now - self.max_age_ms
        for seq, events, carried in self._conn.execute(
                "SELECT sequence, events, dropped_events FROM batches WHERE created_ms < ? "
                "ORDER BY sequence", (too_old,)).fetchall():
            self._drop_batch(seq, events, carried, "older than spool_max_age")
        self._conn.execute("DELETE FROM dead_letters WHERE failed_ms < ?", (too_old,))

    def _enforce_size(self) -> None:
        while self._size() > self.max_bytes:
            oldest = self._conn.execute("SELECT sequence, events, dropped_events FROM batches "
                                        "ORDER BY sequence LIMIT 1").fetchone()
            if oldest is not None:
                self._drop_batch(*oldest, "spool over spool_max_mb")
                continue
            letter = self._conn.execute("SELECT sequence FROM dead_letters "
                                        "ORDER BY sequence LIMIT 1").fetchone()
            if letter is None:
                break
            self._conn.execute("DELETE FROM dead_letters WHERE sequence = ?", letter)
            log.warning("spool over spool_max_mb: deleted dead-lettered batch %d", letter[0])

    def _drop_batch(self, sequence: int, events: int, carried: int, why: str) -> None:
        self._conn.execute("DELETE FROM batches WHERE sequence = ?", (sequence,))
        # what the dropped batch was carrying must still reach the collector
        self._set_meta("pending_dropped", self._meta("pending_dropped", 0) + events + carried)
        self._set_meta("dropped_total", self._meta("dropped_total", 0) + events)
        log.warning("%s: dropped unsent batch %d (%d events)", why, sequence, events)

    def _size(self) -> int:
        total = 0
        for table in ("batches", "dead_letters"):
            total += self._conn.execute(f"SELECT COALESCE(SUM(size), 0) FROM {table}").fetchone()[0]
        total += self._conn.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM records"
                                    ).fetchone()[0]
        return total

    # -- the shipper side --------------------------------------------------------

    def pending(self, after: int = 0, limit: int = 16) -> list[Pending]:
        """Unacknowledged batches with sequence > ``after``, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT sequence, events, dropped_events, data FROM batches WHERE sequence > ? "
                "ORDER BY sequence LIMIT ?", (after, limit)).fetchall()
        out = []
        for sequence, events, dropped, data in rows:
            batch = agent_pb2.Batch.FromString(data)
            batch.sequence = sequence
            batch.dropped_events = dropped
            out.append(Pending(sequence, events, batch))
        return out

    def ack(self, sequence: int, at_ms: int | None = None) -> bool:
        """The collector stored ``sequence``: forget it. False if it was not here
        (dropped meanwhile, or an ack repeated)."""
        at_ms = now_ms() if at_ms is None else at_ms
        with self._lock, self._conn:
            gone = self._conn.execute("DELETE FROM batches WHERE sequence = ?",
                                      (sequence,)).rowcount
            self._set_meta("last_ack_ms", at_ms)
            self._set_meta("last_ack_sequence", max(sequence,
                                                    self._meta("last_ack_sequence", 0)))
        return bool(gone)

    def dead_letter(self, sequence: int, reason: str, at_ms: int | None = None) -> bool:
        """Park a batch the collector will never accept: kept for people to
        inspect (``status`` counts it), never retried, never blocking the rest."""
        at_ms = now_ms() if at_ms is None else at_ms
        with self._lock, self._conn:
            moved = self._conn.execute(
                "INSERT INTO dead_letters SELECT sequence, created_ms, ?, events, "
                "dropped_events, size, ?, data FROM batches WHERE sequence = ?",
                (at_ms, reason, sequence)).rowcount
            self._conn.execute("DELETE FROM batches WHERE sequence = ?", (sequence,))
            if moved:
                self._set_meta("dead_letter_total", self._meta("dead_letter_total", 0) + 1)
        if moved:
            log.error("batch %d rejected by the collector and moved to the dead-letter table: "
                      "%s", sequence, reason)
        return bool(moved)

    def dead_letters(self) -> list[tuple[int, int, str]]:
        """(sequence, events, reason) of parked batches, oldest first."""
        with self._lock:
            return self._conn.execute("SELECT sequence, events, reason FROM dead_letters "
                                      "ORDER BY sequence").fetchall()

    def align_sequences(self, agent_id: str, collector_last: int) -> int:
        """Before the first delivery as ``agent_id``: make sure every pending and
        future sequence number is above what the collector already stored for this
        agent (a fresh spool counts from 1 again). Returns the shift applied."""
        with self._lock, self._conn:
            if self._meta("aligned_agent", "") == agent_id:
                return 0
            first = self._conn.execute("SELECT MIN(sequence) FROM batches").fetchone()[0]
            shift = max(0, collector_last + 1 - first) if first is not None else 0
            if shift:
                # two steps: shifting in place would collide with the primary key
                self._conn.execute("UPDATE batches SET sequence = -(sequence + ?)", (shift,))
                self._conn.execute("UPDATE batches SET sequence = -sequence")
                log.info("renumbered %d unsent batch(es) by +%d to follow the collector's "
                         "last stored sequence %d", self._count("batches"), shift,
                         collector_last)
            next_seq = self._meta("next_sequence", 1) + shift
            self._set_meta("next_sequence", max(next_seq, collector_last + 1))
            self._set_meta("aligned_agent", agent_id)
        return shift

    def backlog(self, besides: int) -> tuple[int, int]:
        """(batches, bytes) sealed and not yet acknowledged, other than ``besides``."""
        with self._lock:
            count, size = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM batches WHERE sequence != ?",
                (besides,)).fetchone()
        return count, size

    # -- state for status --------------------------------------------------------

    def depth(self) -> Depth:
        with self._lock:
            batches, events, size, oldest = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(events), 0), COALESCE(SUM(size), 0), "
                "MIN(created_ms) FROM batches").fetchone()
            unsealed, unsealed_bytes = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM records").fetchone()
            letters, letter_events = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(events), 0) FROM dead_letters").fetchone()
        return Depth(batches, events, size + unsealed_bytes, oldest, unsealed, letters,
                     letter_events)

    def get(self, key: str, default=None):
        with self._lock:
            return self._meta(key, default)

    def put(self, key: str, value) -> None:
        """Small facts the shipper wants ``status`` to see (last error...)."""
        with self._lock, self._conn:
            self._set_meta(key, value)

    def _meta(self, key: str, default=None):
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None or row[0] is None else row[0]

    def _set_meta(self, key: str, value) -> None:
        self._conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def _count(self, table: str) -> int:
        return self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def decode_records(batch: agent_pb2.Batch) -> Iterable[Record]:
    """All records of a batch, in field order (used by tests and tools)."""
    for name in _FIELDS.values():
        yield from getattr(batch, name)


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # default isolation: DML opens a transaction, `with conn:` commits it
    conn = sqlite3.connect(path, check_same_thread=False, timeout=10)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a record handed over by the sensors survives a power cut, not only kill -9
        conn.execute("PRAGMA synchronous=FULL")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        # one transaction: a reader (status) sees all of the tables or none of them
        conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
    except BaseException:
        conn.close()
        raise
    return conn


def _move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{path}{suffix}")
        if src.exists():
            src.replace(Path(f"{aside}{suffix}"))
    return aside


def _chunks(rows: list[tuple[int, int, bytes]]) -> Iterable[list[tuple[int, int, bytes]]]:
    chunk: list[tuple[int, int, bytes]] = []
    size = 0
    for row in rows:
        if chunk and (len(chunk) >= MAX_BATCH_EVENTS or size + len(row[2]) > MAX_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += len(row[2])
    if chunk:
        yield chunk
