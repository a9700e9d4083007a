"""One X connection shared by the window and idle sensors.

Sampling every second must be cheap, so the agent keeps a single connection
open, interns each atom once per connection, and never raises into the
sampler: when the X server goes away (logout, crash, restart) calls return
None, and reconnection is retried with exponential backoff, so the agent keeps
running and reports "no window" meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from agent.sensors._select import BackendUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
DRAIN_EVERY = 64        # calls between draining stray events (e.g. MappingNotify)


def _xlib():
    try:
        import Xlib.display
        import Xlib.error
    except ImportError:
        raise BackendUnavailable("python-xlib is not installed: pip install python-xlib") \
            from None
    return Xlib


class XConnection:
    """A lazily (re)connecting X display, safe to call from several threads."""

    def __init__(self, display_name: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.display_name = display_name
        self._clock = clock
        self._lock = threading.RLock()
        self._display: Any = None
        self._atoms: dict[str, int] = {}
        self._retry_at = 0.0
        self._backoff = FIRST_BACKOFF
        self._calls = 0
        self._lost_logged = False
        self.users = 0

    @property
    def label(self) -> str:
        """The display's name for people: ``:0`` rather than None."""
        return self.display_name or os.environ.get("DISPLAY") or "$DISPLAY"

    def connect(self) -> None:
        """Connect now; raise BackendUnavailable saying how to fix a failure."""
        with self._lock:
            if self._display is None:
                self._display = self._open()

    def _open(self) -> Any:
        xlib = _xlib()
        try:
            return xlib.display.Display(self.display_name)
        except (xlib.error.DisplayError, OSError) as exc:
            raise BackendUnavailable(
                f"cannot open X display {self.label} ({exc}): set DISPLAY to the user's X "
                "session and run the agent as that user (on Wayland enable XWayland)"
            ) from None

    def atom(self, name: str) -> int:
        """The atom for ``name`` on the current connection (interned once)."""
        atom = self._atoms.get(name)
        if atom is None:
            atom = self._atoms[name] = self._display.intern_atom(name)
        return atom

    def call(self, fn: Callable[[Any], T]) -> T | None:
        """Run ``fn(display)``; None when the server is unreachable or errs."""
        xlib = _xlib()
        with self._lock:
            display = self._ensure()
            if display is None:
                return None
            try:
                result = fn(display)
                self._calls += 1
                if self._calls % DRAIN_EVERY == 0:
                    while display.pending_events():
                        display.next_event()
                return result
            except (xlib.error.ConnectionClosedError, OSError) as exc:
                self._lost(exc)
                return None

    def _ensure(self) -> Any:
        if self._display is not None:
            return self._display
        if self._clock() < self._retry_at:
            return None
        try:
            self._display = self._open()
        except BackendUnavailable:
            self._retry_at = self._clock() + self._backoff
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            return None
        self._atoms.clear()
        self._backoff = FIRST_BACKOFF
        self._lost_logged = False
        log.info("reconnected to X display %s", self.label)
        return self._display

    def _lost(self, exc: BaseException) -> None:
        if not self._lost_logged:
            log.warning("lost the X display %s (%s); retrying with backoff",
                        self.label, exc or type(exc).__name__)
            self._lost_logged = True
        self._drop()
        self._retry_at = self._clock() + self._backoff

    def _drop(self) -> None:
        display, self._display = self._display, None
        self._atoms.clear()
        if display is not None:
            with contextlib.suppress(Exception):  # the socket may be dead already
                display.close()

    def close(self) -> None:
        with self._lock:
            self._drop()


_shared: dict[str | None, XConnection] = {}
_shared_lock = threading.Lock()


def shared(display_name: str | None = None) -> XConnection:
    """The process-wide connection to ``display_name``, connected now.

    Pair every call with ``release``; the connection closes with its last user.
    """
    with _shared_lock:
        conn = _shared.get(display_name)
        if conn is None:
            conn = XConnection(display_name)
        conn.connect()
        conn.users += 1
        _shared[display_name] = conn
        return conn


def release(conn: XConnection) -> None:
    with _shared_lock:
        conn.users -= 1
        if conn.users <= 0:
            _shared.pop(conn.display_name, None)
            conn.close()
