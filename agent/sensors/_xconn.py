"""One X connection shared by the window and idle sensors.

Sampling every second must be cheap, so the agent keeps a single connection
open, interns each atom once per connection, and never raises into the
sampler: when the X server goes away (logout, crash, restart) calls return
None, and reconnection is retried with exponential backoff, so the agent keeps
running and reports "no window" meanwhile.

The display may also not be there *yet*: under a systemd user unit the agent
can start before the login session's X server accepts clients. A display that
cannot be reached is therefore waited for (``waiting`` is True and status says
"waiting for X display :N") rather than given up on; only errors no retry can
fix (no python-xlib, a malformed ``DISPLAY``) make the X11 backends unavailable.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from worklens.agent.sensors._select import (
    BackendUnavailable,
    DisplayNotReady,
    display_label,
    waiting_reason,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 10.0      # a failed connect costs ~0.1 ms: pick a display up within 10 s
DRAIN_EVERY = 64        # calls between draining stray events (e.g. MappingNotify)


def _xlib():
    try:
        import Xlib.display
        import Xlib.error
    except ImportError:
        raise BackendUnavailable("python-xlib is not installed: pip install python-xlib") \
            from None
    return Xlib


def open_display(display_name: str | None) -> Any:
    """A new python-xlib Display; DisplayNotReady when it cannot be reached (yet),
    BackendUnavailable when no retry can help."""
    xlib = _xlib()
    label = display_label(display_name)
    try:
        return xlib.display.Display(display_name)
    except xlib.error.DisplayNameError as exc:
        raise BackendUnavailable(f"bad X display name {label!r} ({exc}): set DISPLAY to the "
                                 "user's X session, e.g. DISPLAY=:0") from None
    except (xlib.error.DisplayError, xlib.error.ConnectionClosedError, OSError) as exc:
        raise DisplayNotReady(
            f"cannot open X display {label} ({exc}): set DISPLAY to the user's X "
            "session and run the agent as that user (on Wayland enable XWayland)",
            problem=str(exc).strip()) from None


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
        self.ever_connected = False
        self.problem = ""       # why the display could not be reached, while waiting
        self.generation = 0     # +1 per successful connection (per-connection caches)
        self.users = 0

    @property
    def label(self) -> str:
        return display_label(self.display_name)

    @property
    def waiting(self) -> bool:
        """True until the display was reached once (the agent started before X)."""
        return not self.ever_connected

    def describe(self) -> tuple[bool, str]:
        """(available, detail) for a sensor on this connection, for status."""
        if self.waiting:
            return False, waiting_reason(self.label, self.problem)
        return True, f"display {self.label}"

    def connect(self, wait: bool = False) -> None:
        """Connect now. Raise BackendUnavailable saying how to fix a failure; with
        ``wait``, a display that is not reachable yet is retried later instead."""
        with self._lock:
            if self._display is not None or (wait and self._clock() < self._retry_at):
                return
            try:
                self._connected(open_display(self.display_name))
            except DisplayNotReady as exc:
                if not wait:
                    raise
                self.problem = exc.problem
                log.info("%s", waiting_reason(self.label, exc.problem))
                self._schedule_retry()

    def _connected(self, display: Any) -> None:
        self._display = display
        self._atoms.clear()
        self._backoff = FIRST_BACKOFF
        self._lost_logged = False
        self.generation += 1
        if self.ever_connected:
            log.info("reconnected to X display %s", self.label)
        elif self._retry_at:
            log.info("connected to X display %s (it was not reachable at start)", self.label)
        self.ever_connected = True
        self.problem = ""

    def _schedule_retry(self) -> None:
        self._retry_at = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)

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
            self._connected(open_display(self.display_name))
        except BackendUnavailable as exc:
            self.problem = getattr(exc, "problem", "") or str(exc)
            self._schedule_retry()
            return None
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


def shared(display_name: str | None = None, wait: bool = True) -> XConnection:
    """The process-wide connection to ``display_name``, connected now if it can be.

    With ``wait`` (the default) a display that is not reachable yet is waited
    for (see ``XConnection.waiting``); otherwise BackendUnavailable is raised.
    Pair every call with ``release``; the connection closes with its last user.
    """
    with _shared_lock:
        conn = _shared.get(display_name)
        if conn is None:
            conn = XConnection(display_name)
        conn.connect(wait=wait)
        conn.users += 1
        _shared[display_name] = conn
        return conn


def release(conn: XConnection) -> None:
    with _shared_lock:
        conn.users -= 1
        if conn.users <= 0:
            _shared.pop(conn.display_name, None)
            conn.close()
