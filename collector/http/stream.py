"""Streaming a blocking generator (an SQLite cursor walk) to an HTTP response
without blocking the event loop and without letting memory grow.

SQLite connections belong to one thread, so the whole generator runs on ONE
thread of a small dedicated pool (reused, so the store's per-thread reader
connections are reused too instead of piling up one per export); it hands
chunks of about ``chunk_bytes`` through a small bounded queue, so a slow client
slows the database walk instead of buffering the export in memory.
If the client goes away, the thread is told to stop.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread

log = logging.getLogger(__name__)
_DONE = object()
# Concurrent exports beyond this many wait for a free worker.
MAX_CONCURRENT_EXPORTS = 4
_POOL = ThreadPoolExecutor(MAX_CONCURRENT_EXPORTS, thread_name_prefix="worklens-export")


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


def threaded_chunks(produce: Callable[[], Iterable[bytes | str]], chunk_bytes: int = 256 * 1024,
                    depth: int = 4, name: str = "export") -> AsyncIterator[bytes]:
    """Run ``produce()`` on a pool thread; yield its output as byte chunks of at
    least ``chunk_bytes`` (small pieces are joined, big ones pass as they are)."""
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        pieces = None
        try:
            pieces = iter(produce())
            buf: list[bytes] = []
            size = 0
            for piece in pieces:
                data = piece.encode("utf-8") if isinstance(piece, str) else piece
                buf.append(data)
                size += len(data)
                if size >= chunk_bytes:
                    if not put(b"".join(buf)):
                        return
                    buf, size = [], 0
            if buf and not put(b"".join(buf)):
                return
            put(_DONE)
        except BaseException as exc:  # handed to the response side, which logs it
            put(_Failed(exc))
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # a generator's finally: closes its database connection now

    async def chunks() -> AsyncIterator[bytes]:
        _POOL.submit(work)
        try:
            while True:
                item = await anyio.to_thread.run_sync(q.get)
                if item is _DONE:
                    return
                if isinstance(item, _Failed):
                    log.error("%s stream failed: %s", name, item.exc)
                    raise item.exc
                yield item  # type: ignore[misc]
        finally:
            stop.set()

    return chunks()
