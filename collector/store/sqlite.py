"""The embedded SQLite store: WAL mode, one writer doing group commit, readers on
their own read-only connections.

Why one writer: SQLite allows one writer at a time and every durable commit
costs an fsync. Batches from many concurrent streams are queued to the
writer thread, which drains whatever is waiting (up to ``GROUP_MAX_EVENTS``)
into ONE transaction (``collector.store.commit``; a failing batch or hook is
redone on its own so that only it fails) and commits once. Each ``ingest``
coroutine resumes only after the commit that contains its batch returned: an
ack always means durable (``synchronous=FULL``).

Why a writer process for ``serve`` (``writer_process=True``): there the group
commits run in a child process (``collector.store.writerproc``) instead of on
the writer thread, so that binding rows and computing rollups no longer take
turns with the event loop for one interpreter lock (measured: the writer thread
waited for the lock a third of its time). The writer thread still orders the
work: it sends a group while the child commits the one before (at most
``PIPE_GROUPS`` unanswered), runs every other write itself only once the child
answered everything, and a ``store-answers`` thread settles the futures as the
answers come back.

Why an exclusive lock file for ``serving=True``: two collector processes
serving one database would each believe they own the writer; the second one
must fail at start with a clear message. Short-lived maintenance commands
(``token``, ``purge``...) open the store without that lock and share the
database safely through SQLite's own locking (busy timeout).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import pickle
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from worklens.collector.store.base import (
    AgentRow,
    IngestResult,
    StoreError,
    StoreUnavailable,
)
from worklens.collector.store.commit import (
    GroupCommitter,
    GroupHook,
    GroupItem,
    IngestHook,
    StoredBatch,
    admit,
    describe_sqlite_error,
    find_agent,
    in_transaction,
    now_ms,
    prepare,
)
from worklens.collector.store.connect import BUSY_TIMEOUT_MS, connect_writer
from worklens.collector.store.records import Records
from worklens.collector.store.writerproc import WriterDied, WriterProcess
from worklens.v1 import agent_pb2

__all__ = ["SqliteStore", "StoredBatch", "connect_writer", "describe_sqlite_error"]

log = logging.getLogger(__name__)

# One group commit takes at most this many events; the rest waits for the next.
GROUP_MAX_EVENTS = 200_000
# Back-pressure: beyond this many queued events, ingest raises StoreBusy.
MAX_PENDING_EVENTS = 1_000_000
RETRY_AFTER_MS = 1_000

_STOP = object()
_DIED = object()   # the writer process is gone: the writer thread stops
# With a writer process: groups sent ahead while it commits (it never waits for us).
PIPE_GROUPS = 2


@dataclass
class _Ingest(GroupItem):
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


@dataclass
class _Write:
    fn: Callable[[sqlite3.Connection], Any]
    future: concurrent.futures.Future


class SqliteStore:
    """See collector/store/STORE.md for the interface other layers use."""

    def __init__(self, path: Path, *, serving: bool = False,
                 writer_process: bool = False) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self._failure_callbacks: list[Callable[[BaseException], None]] = []
        self._lock_fd: int | None = None
        self._readers: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._state = threading.Lock()
        self._pending_events = 0
        self._serving = serving
        self._closed = False   # no new work accepted
        self._shut = False     # close() ran
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._prepare_directory()
        if serving:
            self._take_lock()
        self._process: WriterProcess | None = None
        try:
            self._conn = connect_writer(self.path)
            if writer_process:
                self._process = WriterProcess(self.path)
        except BaseException:
            if hasattr(self, "_conn"):
                self._conn.close()
            self._release_lock()
            raise
        self._committer = GroupCommitter(self._conn, self.path)
        # writer process: groups sent and not yet answered, oldest first
        self._in_pipe: collections.deque[tuple[list[_Ingest], int]] = collections.deque()
        self._pipe_state = threading.Condition()
        self._died: WriterDied | None = None
        if self._process is not None:
            self._answers = threading.Thread(target=self._receive_answers,
                                             name="store-answers", daemon=True)
            self._answers.start()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    # -- opening -------------------------------------------------------------------------

    def _prepare_directory(self) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store directory {directory}: "
                             f"{exc.strerror}") from None
        if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
            raise StoreError(f"{self.path} is read-only (or unreadable) for this user; the "
                             "collector needs to write it")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise StoreError(f"the store directory {directory} is read-only for this user; "
                             "SQLite needs to create its -wal and -shm files there")

    def _take_lock(self) -> None:
        lock_path = Path(f"{self.path}.lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(f"another collector process (pid {holder}) is already serving "
                             f"{self.path}; stop it first or use another --db") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    # -- reading -------------------------------------------------------------------------

    @contextlib.contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection for this thread. The outermost ``with`` holds one read
        transaction, so all queries inside it see the same snapshot."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect_reader()
            self._local.conn = conn
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _connect_reader(self) -> sqlite3.Connection:
        conn = self._open_read_only()
        with self._state:
            self._readers.append(conn)
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError("the store is closed")
        uri = f"file:{quote(str(self.path))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only=ON")
        return conn

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection of its own in one read transaction for the ``with``
        block, closed after it: for a long export, which sees one snapshot while ingest
        goes on and may be advanced from any thread (a streamed HTTP response)."""
        conn = self._open_read_only()
        try:
            conn.execute("BEGIN")
            yield conn
        finally:
            conn.close()

    def size_bytes(self) -> int:
        """Bytes the database uses: page_count * page_size (the WAL excluded)."""
        with self.reader() as conn:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(size)

    def agent(self, key: int) -> AgentRow | None:
        with self.reader() as conn:
            return find_agent(conn, key)

    # -- writing -------------------------------------------------------------------------

    def add_ingest_hook(self, hook: IngestHook) -> None:
        """``hook(conn, agent, batch)``: called once per NEW batch, in the transaction
        that stores it, after the rows of the whole group are inserted. Not with a
        writer process (it gets only the batch's head there): use a group hook."""
        if self._process is not None:
            raise StoreError("per-batch ingest hooks need the in-process writer")
        self._committer.hooks.append(hook)

    def add_group_hook(self, hook: GroupHook) -> None:
        """``hook(conn, [StoredBatch...])``: called once per group commit with its NEW
        batches (in order) after their rows are inserted, in the same transaction.
        Cheaper than a per-batch hook for work that aggregates (rollups): it gets the
        rows it needs in memory, with no per-batch call and nothing to read back. An
        exception fails the group, which is then redone one batch per transaction so
        that only the failing batch is refused. With a writer process the hook runs
        there, so it must pickle (a module-level function or a partial of one), and
        ``StoredBatch.batch`` holds only the batch's head (sequence, host, dropped
        events): the rows are in ``StoredBatch.records``."""
        if self._process is not None:
            try:
                pickle.dumps(hook)
            except Exception as exc:
                raise StoreError(f"a group hook for the writer process must pickle: "
                                 f"{exc}") from None
        self._committer.group_hooks.append(hook)

    def on_writer_failure(self, callback: Callable[[BaseException], None]) -> None:
        """Call ``callback(exc)`` (on the writer thread) if the writer stops for an
        unexpected reason. The store then refuses every write (StoreUnavailable: agents
        keep their batches and retry), so a serving process should exit and let its
        service manager start it again rather than keep running without a writer."""
        self._failure_callbacks.append(callback)
    def submit(self, fn: Callable[[sqlite3.Connection], Any]) -> concurrent.futures.Future:
        """Queue ``fn(conn)`` to run in its own write transaction; don't wait."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        if threading.current_thread() is self._thread:
            # Called from a hook or another write: we already are the writer.
            try:
                future.set_result(fn(self._conn))
            except BaseException as exc:
                future.set_exception(exc)
            return future
        with self._state:
            if self._closed:
                raise StoreError("the store is closed")
            self._queue.put(_Write(fn, future))
        return future

    def write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn(conn)`` in one write transaction on the writer; return its result
        once committed."""
        return self.submit(fn).result()

    async def write_async(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """``write`` for coroutines: waits without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(fn))

    async def ingest(self, agent: AgentRow | int, batch: agent_pb2.Batch,
                     records: Records | None = None, *, consume: bool = False) -> IngestResult:
        """Store ``batch`` for ``agent`` (its AgentRow or internal key); return after the
        group commit holding it is durable. See ``ingest_nowait``."""
        return await self.ingest_nowait(agent, batch, records, consume=consume)

    def ingest_nowait(self, agent: AgentRow | int, batch: agent_pb2.Batch,
                      records: Records | None = None, *, consume: bool = False
                      ) -> asyncio.Future:
        """Queue ``batch`` now (so batches of one stream keep their order) and return the
        future of its IngestResult. Raises StoreBusy (back off) or StoreUnavailable.

        ``records`` may be passed when the caller already extracted them (validation
        does). With ``consume`` the store may take ``batch`` apart (its process samples'
        bytes become the stored blocks, see ``collector.store.blocks``) instead of
        working on a copy: for a caller that is done with the message."""
        head, rows = prepare(agent, batch, records, consume)
        events = rows.count
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._state:
            admit(self._closed, self._pending_events, events, MAX_PENDING_EVENTS,
                  RETRY_AFTER_MS, "the store is busy")
            self._pending_events += events
            self._queue.put(_Ingest(agent, head, rows, future, loop))
        return future

    # -- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        carry, failure = None, None
        try:
            while True:
                item = carry if carry is not None else self._queue.get()
                carry = None
                if item is _STOP:
                    self._wait_for_pipe(0)
                    break
                if item is _DIED:
                    raise self._died or WriterDied("the store writer process is gone")
                if isinstance(item, _Write):
                    try:
                        self._wait_for_pipe(0)  # the child holds no transaction from here on
                    except WriterDied:
                        carry = item            # refused below with the rest of the queue
                        raise
                    self._run_write(item)
                    self._checkpoint()
                    continue
                group, events = [item], item.records.count
                while events < GROUP_MAX_EVENTS:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if not isinstance(nxt, _Ingest):
                        carry = nxt
                        break
                    group.append(nxt)
                    events += nxt.records.count
                self._commit_group(group, events)
                self._checkpoint()
        except WriterDied as exc:  # killed (OOM killer, kill -9): no traceback of ours
            log.error("the store writer stopped unexpectedly: %s", exc)
            failure = exc
        except BaseException as exc:
            log.exception("the store writer stopped unexpectedly")
            failure = exc
        finally:
            # what the writer process already has is committed and answered before the
            # failure callbacks shut the collector down (those acks still go out)
            with contextlib.suppress(WriterDied):
                self._wait_for_pipe(0)
            self._fail_leftovers(carry)
        if failure is not None:
            for callback in self._failure_callbacks:
                callback(failure)

    def _fail_leftovers(self, carry: Any = None) -> None:
        """Refuse what is still queued (and ``carry``, taken from the queue but not done)."""
        with self._state:
            self._closed = True
        error = StoreUnavailable("the collector is shutting down")
        while True:
            try:
                item = carry if carry is not None else self._queue.get_nowait()
            except queue.Empty:
                return
            carry = None
            if isinstance(item, _Ingest):
                self._settle(item.loop, [(item.future, error)])
            elif isinstance(item, _Write) and item.future.set_running_or_notify_cancel():
                item.future.set_exception(error)

    def _run_write(self, item: _Write) -> None:
        if not item.future.set_running_or_notify_cancel():
            return
        try:
            result = in_transaction(self._conn, item.fn)
        except BaseException as exc:
            if isinstance(exc, sqlite3.OperationalError):
                exc = StoreUnavailable(describe_sqlite_error(exc, self.path))
            item.future.set_exception(exc)
        else:
            item.future.set_result(result)

    def _commit_group(self, group: list[_Ingest], events: int) -> None:
        """Commit ``group`` and settle every batch's future; with a writer process, send
        it there (``_receive_answers`` settles it) once fewer than PIPE_GROUPS wait."""
        received = now_ms()
        try:
            if self._process is None:
                outcomes = self._committer.commit(group, received)
            else:
                self._wait_for_pipe(PIPE_GROUPS - 1)
        except BaseException:
            self._refuse(group, events)
            raise
        if self._process is None:
            self._answer(group, events, outcomes)
            return
        with self._pipe_state:
            self._in_pipe.append((group, events))
        self._process.send(group, received, self._committer.group_hooks)

    def _wait_for_pipe(self, most: int) -> None:
        """Block until at most ``most`` groups are unanswered; raise if the child died."""
        with self._pipe_state:
            while len(self._in_pipe) > most and self._died is None:
                self._pipe_state.wait()
            if self._died is not None:
                raise self._died

    def _receive_answers(self) -> None:
        """Settle groups as the writer process answers them. If it dies, nobody knows
        whether its unanswered groups were committed: each batch gets StoreUnavailable
        (the agent resends it; a stored one is then a duplicate) and the writer thread
        stops, which makes a serving collector exit for a restart."""
        while True:
            try:
                outcomes = self._process.receive()
            except WriterDied as exc:
                with self._pipe_state:
                    lost, self._died = list(self._in_pipe), exc
                    self._in_pipe.clear()
                    self._pipe_state.notify_all()
                if self._shut and not lost:
                    return  # stopped on purpose
                for group, events in lost:
                    self._refuse(group, events)
                self._queue.put(_DIED)
                return
            with self._pipe_state:
                group, events = self._in_pipe.popleft()
                self._pipe_state.notify_all()
            self._answer(group, events, outcomes)

    def _refuse(self, group: list[_Ingest], events: int) -> None:
        """The writer stopped before ``group``'s outcome was known: the agents resend."""
        unavailable = StoreUnavailable("the store writer stopped; send it again")
        self._answer(group, events, [unavailable] * len(group))

    def _answer(self, group: list[_Ingest], events: int, outcomes: list[Any]) -> None:
        with self._state:
            self._pending_events -= events
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for item, outcome in zip(group, outcomes, strict=True):
            by_loop.setdefault(item.loop, []).append((item.future, outcome))
        for loop, pairs in by_loop.items():
            self._settle(loop, pairs)

    @staticmethod
    def _settle(loop: asyncio.AbstractEventLoop, pairs: list) -> None:
        def settle() -> None:
            for future, outcome in pairs:
                if future.done():
                    continue  # the stream went away; the batch is stored all the same
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        # RuntimeError: that event loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle)

    def _checkpoint(self) -> None:
        if self._process is None:  # the writer process checkpoints between its commits
            self._committer.checkpoint()

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Finish every queued write, then close. Safe to call twice."""
        with self._state:
            if self._shut:
                return
            self._shut = self._closed = True
            self._queue.put(_STOP)
        self._thread.join()
        if self._process is not None:
            self._process.close()
            self._answers.join()
        with self._state:
            readers, self._readers = self._readers, []
        for conn in readers:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        with contextlib.suppress(sqlite3.Error):
            mode = "TRUNCATE" if self._serving else "PASSIVE"  # never block a running collector
            self._conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            self._conn.close()
        self._release_lock()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
