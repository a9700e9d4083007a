"""The store's group commits in a child process of their own.

Why: one Python process holds one interpreter lock. In a serving collector the
event loop (gRPC, parsing, validation) and the store writer (row binding,
rollups) took turns with it, so the collector used about one core of two while
each thread spent a third of its time waiting for the other. With the commits in
a child process both run at once.

What crosses the pipe, and nothing else: the group (each batch's agent key,
head — sequence, host, dropped events — and its rows, pickled) one way, the
outcomes (``IngestResult`` or the exception each batch gets) the other, in the
order the groups were sent. The parent keeps the queue, the futures, the
exclusive lock and its own writer connection for every other write; it sends
the next group while the child commits the one before, and runs a write of its
own only once the child answered everything, so the child's transactions never
meet the parent's (one writer at a time, as before). The child checkpoints the
WAL from a thread of its own beside the commits, and finishes each second's
checkpoint between two of its transactions (``collector.store.checkpoint``).
Group hooks go to the child too and must therefore pickle (module-level
functions or partials of them).

The child ignores SIGINT and SIGTERM: a service manager's or a terminal's
signal is the parent's to handle, which finishes the in-flight commit and then
tells the child to stop. The child also stops when the pipe closes (the parent
died): whatever it had not committed was never acknowledged.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import pickle
import signal
import sqlite3
from pathlib import Path
from typing import Any

from worklens.collector.store.base import StoreError
from worklens.collector.store.checkpoint import Checkpointer
from worklens.collector.store.commit import GroupCommitter, GroupHook, GroupItem
from worklens.collector.store.records import Rows, tune_garbage_collector
from worklens.common.cli import setup_logging

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
_PROTOCOL = pickle.HIGHEST_PROTOCOL


class WriterDied(RuntimeError):
    """The writer process went away; the outcome of what it had not answered is unknown."""


def _wire(items: list[GroupItem]) -> list[tuple]:
    """Tuples (the head a NamedTuple): pickling dataclasses costs several times more."""
    return [(item.key, item.batch, _rows(item.records)) for item in items]


def _rows(rows: Rows) -> tuple:
    """``Rows`` as the plain tuple of its fields (``Rows(*fields)`` in the child)."""
    return (rows.windows, rows.activity, rows.process_blocks, rows.system, rows.process_totals,
            rows.count)


class WriterProcess:
    """The parent's handle on the child. ``send`` and ``receive`` may run on two
    threads: groups are answered in the order they were sent, so several can be
    in the pipe while the child commits (it never waits for the parent)."""

    def __init__(self, path: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child_end = context.Pipe(duplex=True)
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        self._process = context.Process(target=child_main, args=(str(path), child_end, level),
                                        name="worklens-store-writer", daemon=True)
        self._process.start()
        child_end.close()
        self._hooks_sent = -1
        self._alive = True
        if not self._pipe.poll(START_TIMEOUT_S):
            self.close()
            raise StoreError("the store writer process did not start in time")
        reply = self.receive()
        if reply != "ready":
            self.close()
            raise StoreError(str(reply))

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def send(self, items: list[GroupItem], received: int,
             group_hooks: list[GroupHook]) -> None:
        """Queue ``items`` for one group commit; its outcomes come from ``receive``."""
        if self._hooks_sent != len(group_hooks):
            self._send(("hooks", group_hooks))
            self._hooks_sent = len(group_hooks)
        self._send(("group", _wire(items), received))

    def receive(self) -> Any:
        """The outcomes of the oldest group not yet answered (blocks)."""
        try:
            return pickle.loads(self._pipe.recv_bytes())
        except (OSError, EOFError) as exc:
            self._alive = False
            self._process.join(1)
            raise WriterDied("the store writer process is gone (exit code "
                             f"{self._process.exitcode})") from exc

    def stop(self) -> None:
        """Ask the child to stop once it answered everything sent before."""
        if self._alive:
            with contextlib.suppress(WriterDied):
                self._send(("stop",))

    def close(self) -> None:
        """Stop the child and wait for it."""
        self.stop()
        self._alive = False
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._pipe.close()

    def _send(self, message: tuple) -> None:
        try:
            self._pipe.send_bytes(pickle.dumps(message, _PROTOCOL))
        except (OSError, EOFError) as exc:
            self._alive = False
            raise WriterDied(f"the store writer process is gone: {exc!r}") from exc


# -- the child ------------------------------------------------------------------------------

def child_main(path: str, pipe: Any, log_level: str = "WARNING") -> None:
    """Entry point of the writer process (``multiprocessing`` spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    setup_logging(log_level)   # its errors (a full disk) read like the collector's
    # the parent's pragmas, no migrations
    from worklens.collector.store.connect import BUSY_TIMEOUT_MS, connect_writer

    try:
        conn = connect_writer(Path(path), migrate_schema=False)
    except StoreError as exc:
        pipe.send_bytes(pickle.dumps(str(exc), _PROTOCOL))
        return
    checkpointer = Checkpointer(Path(path), BUSY_TIMEOUT_MS)
    committer = GroupCommitter(conn, Path(path), background=checkpointer)
    tune_garbage_collector()
    checkpointer.start()
    pipe.send_bytes(pickle.dumps("ready", _PROTOCOL))
    try:
        _serve(pipe, committer)
    except (EOFError, OSError):
        pass  # the parent went away: nothing uncommitted was acknowledged
    finally:
        checkpointer.stop()
        with contextlib.suppress(sqlite3.Error):
            conn.close()


def _serve(pipe: Any, committer: GroupCommitter) -> None:
    while True:
        message = pickle.loads(pipe.recv_bytes())
        kind = message[0]
        if kind == "stop":
            return
        if kind == "hooks":
            committer.group_hooks = list(message[1])
            continue
        _, wire, received = message
        items = [GroupItem(key, head, Rows(*rows)) for key, head, rows in wire]
        outcomes = committer.commit(items, received)
        pipe.send_bytes(_dump_outcomes(outcomes))
        committer.checkpoint()  # between our transactions, so that the WAL is reused


def _dump_outcomes(outcomes: list[Any]) -> bytes:
    try:
        return pickle.dumps(outcomes, _PROTOCOL)
    except Exception:  # an exception type that does not pickle: say what it was
        from worklens.collector.store.base import StoreUnavailable

        return pickle.dumps([o if not isinstance(o, BaseException)
                             else StoreUnavailable(f"batch not stored: {o!r}")
                             for o in outcomes], _PROTOCOL)
