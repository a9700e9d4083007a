"""Group commit: one transaction on the writer connection for many queued batches.

Kept apart from the queue and the futures (``collector.store.sqlite``) so that the
same code runs either on the store's writer thread or in the store's writer
PROCESS (``collector.store.writerproc``), which ``serve`` uses: the inserts and
the rollup hook then run beside the event loop on their own interpreter lock
instead of taking turns with it.

``GroupCommitter.commit(items, received_ms)`` returns one outcome per item, in
order: ``IngestResult`` (new or duplicate) or the exception that batch gets. It
never raises for a batch's fault; a failure of the database itself (disk full,
I/O error) is every item's ``StoreUnavailable``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

from worklens.collector.store.base import AgentRow, IngestResult, StoreBusy, StoreUnavailable
from worklens.collector.store.checkpoint import Checkpointer, passive_checkpoint
from worklens.collector.store.records import Records, Rows, extract, insert_rows, seal
from worklens.v1 import agent_pb2

log = logging.getLogger(__name__)

# The writer checkpoints the WAL itself, at most this often, AFTER a group's acks
# went out (SQLite's auto-checkpoint would run inside COMMIT, before them). It is
# the only writer, so each checkpoint completes and the WAL is reused, not grown.
# In the writer process a Checkpointer thread does most of the copying beside the
# commits, and this one only finishes it (see worklens.collector.store.checkpoint).
CHECKPOINT_INTERVAL_S = 1.0

# Errors that belong to one batch (its values or its hook), not to the database.
PER_BATCH_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, OverflowError, ValueError,
                    TypeError)

INSERT_BATCHES = ("INSERT OR IGNORE INTO batches (agent, sequence, received_ms, events, "
                  "dropped_events) VALUES (?, ?, ?, ?, ?)")
UPDATE_AGENT = (
    "UPDATE agents SET last_seen_ms = ?, last_sequence = max(last_sequence, ?), "
    "dropped_events = dropped_events + ?, hostname = coalesce(nullif(?, ''), hostname), "
    "os = coalesce(nullif(?, ''), os), os_version = coalesce(nullif(?, ''), os_version), "
    "username = coalesce(nullif(?, ''), username), "
    "agent_version = coalesce(nullif(?, ''), agent_version) WHERE id = ?")
NEW = IngestResult(duplicate=False)
DUPLICATE = IngestResult(duplicate=True)


def now_ms() -> int:
    return int(time.time() * 1000)


class HostFacts(NamedTuple):
    hostname: str
    os: str
    os_version: str
    user: str
    agent_version: str


class BatchHead(NamedTuple):
    """What the committer and the rollups use of a batch besides its rows: it has the
    protobuf's attribute names, and crosses a pipe far cheaper than a message."""

    sequence: int
    dropped_events: int
    host: HostFacts
    # the agent's backlog and flush interval, for the live view (collector.live)
    spool_batches: int = 0
    spool_bytes: int = 0
    flush_interval_ms: int = 0

    @classmethod
    def of(cls, batch: agent_pb2.Batch) -> BatchHead:
        h = batch.host
        return cls(batch.sequence, batch.dropped_events,
                   HostFacts(h.hostname, h.os, h.os_version, h.user, h.agent_version),
                   batch.spool_batches, batch.spool_bytes, batch.flush_interval_ms)


@dataclass
class GroupItem:
    """One queued batch as the committer needs it: the batch's head (sequence, host,
    dropped_events) and its rows."""

    agent: AgentRow | int
    batch: BatchHead
    records: Rows

    @property
    def key(self) -> int:
        return self.agent.key if isinstance(self.agent, AgentRow) else self.agent


@dataclass(frozen=True)
class StoredBatch:
    """A new batch of a group commit, as a group hook sees it (rows already inserted)."""

    key: int
    batch: BatchHead
    records: Rows
    received_ms: int


IngestHook = Callable[[sqlite3.Connection, AgentRow, BatchHead], None]
GroupHook = Callable[[sqlite3.Connection, list[StoredBatch]], None]


def prepare(agent: AgentRow | int, batch: agent_pb2.Batch, records: Records | None,
            consume: bool) -> tuple[BatchHead, Rows]:
    """What a store queues of ``batch`` for ``agent``: its head and its rows (see
    ``Store.ingest_nowait`` for ``records`` and ``consume``)."""
    key = agent.key if isinstance(agent, AgentRow) else int(agent)
    if records is None:
        records = extract(key, batch)
    head = BatchHead.of(batch)
    if not consume and records.processes:
        batch = agent_pb2.Batch(processes=batch.processes)
    return head, seal(key, batch, records)


def admit(closed: bool, pending: int, events: int, limit: int, retry_after_ms: int,
          behind: str) -> None:
    """Refuse a batch of ``events`` when the store is closing (StoreUnavailable) or
    ``pending`` events already wait beyond ``limit`` (StoreBusy, ``behind`` says who)."""
    if closed:
        raise StoreUnavailable("the collector is shutting down")
    if pending and pending + events > limit:
        raise StoreBusy(f"{behind} ({pending} events waiting)", retry_after_ms)


def split_new(group: list[GroupItem], stored: set[tuple[int, int]]
              ) -> tuple[list[IngestResult], list[GroupItem]]:
    """One IngestResult per item of ``group`` given the (agent, sequence) keys the
    ledger insert ``stored``, and the new items: a batch that came twice in one group
    is new once."""
    results, new, seen = [], [], set()
    for item in group:
        key = (item.key, item.batch.sequence)
        if key in stored and key not in seen:
            seen.add(key)
            new.append(item)
            results.append(NEW)
        else:
            results.append(DUPLICATE)
    return results, new


def describe_sqlite_error(exc: sqlite3.Error, path: Path) -> str:
    text = str(exc)
    if "disk is full" in text or "disk I/O error" in text:
        return f"cannot write to {path}: {text} (free some space; nothing of this batch was stored)"
    if "readonly" in text or "read-only" in text:
        return f"{path} is read-only: {text}"
    if "not a database" in text or "malformed" in text:
        return f"{path} is not a usable SQLite database (corrupt?): {text}"
    if "locked" in text or "busy" in text:
        return f"{path} is locked by another program: {text}"
    return f"{path}: {text}"


def store_failure(exc: BaseException) -> bool:
    """The database itself failed (disk full, I/O, corrupt), not one batch's values."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, PER_BATCH_ERRORS)


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    """``fn(conn)`` inside BEGIN IMMEDIATE .. COMMIT; rolled back if anything raises."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    return result


class GroupCommitter:
    """Stores groups of batches on ``conn`` (the only writer connection in use)."""

    def __init__(self, conn: sqlite3.Connection, path: Path,
                 background: Checkpointer | None = None) -> None:
        self.conn = conn
        self.path = path
        self.hooks: list[IngestHook] = []
        self.group_hooks: list[GroupHook] = []
        self._background = background
        self._last_checkpoint = time.monotonic()

    def commit(self, group: list[GroupItem], received: int) -> list[Any]:
        """Commit ``group`` in one transaction; one outcome per item.

        Fast path: the whole group is written with a handful of multi-row statements.
        If one batch cannot be stored (a value SQLite refuses, a failing ingest hook),
        the group is retried one batch per transaction so that only that batch fails.
        """
        try:
            return in_transaction(self.conn, lambda c: self._insert_group(c, group, received))
        except Exception as exc:
            if store_failure(exc):
                return [self._unavailable(exc, len(group))] * len(group)
            if len(group) == 1:
                return [self._batch_failure(group[0], exc)]
            return [self._commit_alone(item, received) for item in group]

    def checkpoint(self) -> None:
        """A passive WAL checkpoint, at most every CHECKPOINT_INTERVAL_S."""
        now = time.monotonic()
        if now - self._last_checkpoint < CHECKPOINT_INTERVAL_S:
            return
        background = self._background
        pause = background.paused(wait=False) if background else contextlib.nullcontext(True)
        with pause as free:
            if free:   # else the checkpoint thread is copying: after the next commit
                self._last_checkpoint = now
                passive_checkpoint(self.conn)

    def _commit_alone(self, item: GroupItem, received: int) -> Any:
        try:
            return in_transaction(self.conn,
                                  lambda c: self._insert_group(c, [item], received))[0]
        except Exception as exc:
            if store_failure(exc):
                return self._unavailable(exc, 1)
            return self._batch_failure(item, exc)

    def _unavailable(self, exc: sqlite3.Error, batches: int) -> StoreUnavailable:
        message = describe_sqlite_error(exc, self.path)
        log.error("commit of %d batches failed: %s", batches, message)
        return StoreUnavailable(message)

    @staticmethod
    def _batch_failure(item: GroupItem, exc: Exception) -> Exception:
        if isinstance(exc, PER_BATCH_ERRORS):
            return exc  # a value the validation let through but SQLite refuses
        log.error("ingest hook failed; batch %s not stored: %r", item.batch.sequence, exc)
        return StoreUnavailable(f"batch not stored: {exc}")

    def _insert_group(self, conn: sqlite3.Connection, group: list[GroupItem],
                      received: int) -> list[IngestResult]:
        """Insert the new batches of ``group``; one IngestResult per item, in order."""
        ledger = [(item.key, item.batch.sequence, received, item.records.count,
                   item.batch.dropped_events) for item in group]
        stored = set(insert_rows(conn, INSERT_BATCHES, ledger, returning="agent, sequence"))
        results, new = split_new(group, stored)
        if not new:
            return results
        for index, (sql, _) in enumerate(new[0].records.tables()):
            rows = list(chain.from_iterable(item.records.tables()[index][1] for item in new))
            if rows:
                insert_rows(conn, sql, rows)
        _update_agents(conn, new, received)
        if self.group_hooks:
            stored_batches = [StoredBatch(item.key, item.batch, item.records, received)
                              for item in new]
            for group_hook in self.group_hooks:
                group_hook(conn, stored_batches)
        for item in new if self.hooks else ():
            agent = item.agent if isinstance(item.agent, AgentRow) \
                else agent_row(conn, item.agent)
            for hook in self.hooks:
                hook(conn, agent, item.batch)
        return results


def agent_updates(items: list[GroupItem]) -> list[list]:
    """One row per agent of ``items``, in key order (the order PostgreSQL's row locks
    are taken in): [key, highest sequence, dropped events added, then the latest
    non-empty hostname, os, os_version, user, agent_version]."""
    per_agent: dict[int, list] = {}
    for item in items:
        batch, host = item.batch, item.batch.host
        row = per_agent.get(item.key)
        facts = [host.hostname, host.os, host.os_version, host.user, host.agent_version]
        if row is None:
            per_agent[item.key] = [item.key, batch.sequence, batch.dropped_events, *facts]
        else:
            row[1] = max(row[1], batch.sequence)
            row[2] += batch.dropped_events
            row[3:] = [new or old for new, old in zip(facts, row[3:], strict=True)]
    return [per_agent[key] for key in sorted(per_agent)]


def _update_agents(conn: sqlite3.Connection, items: list[GroupItem], received: int) -> None:
    """One row per agent: last seen, highest sequence, dropped total, latest host facts."""
    conn.executemany(UPDATE_AGENT, [(received, *row[1:], row[0])
                                    for row in agent_updates(items)])


def find_agent(conn: Any, key: int) -> AgentRow | None:
    """The ``agents`` row of internal key ``key``, or None (either engine)."""
    row = conn.execute(f"SELECT {AgentRow.COLUMNS} FROM agents WHERE id = ?",
                       (key,)).fetchone()
    return AgentRow.from_row(row) if row else None


def agent_row(conn: Any, key: int) -> AgentRow:
    """The same for an agent a stored batch names: it must exist."""
    agent = find_agent(conn, key)
    if agent is None:
        raise ValueError(f"no agent with key {key}")
    return agent
