"""Idle time and lock state on an X11 desktop.

Idle time is the MIT-SCREEN-SAVER extension's per-server idle counter
(``XScreenSaverQueryInfo``: milliseconds since the last keyboard or mouse
event), the same counter screen savers use; it shares the window sensor's X
connection, so it costs one round trip per sample.

Locked means, in this order of preference:
- logind's ``LockedHint`` for our session, when the system bus is reachable
  (GNOME, KDE, Xfce + light-locker and others set it);
- otherwise the X screen saver being active (``state == ScreenSaverOn``),
  which is when X-based lockers (xscreensaver, xss-lock setups) engage. A
  screen blanked without a locker is therefore also reported as LOCKED: the
  person is not at the screen either way.

While the X display is not up yet (the agent started before it) this backend
waits for it, answering from logind's hints meanwhile when the system bus is
reachable, and unknown otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

from worklens.agent.sensors import _xconn
from worklens.agent.sensors._select import BackendUnavailable
from worklens.agent.sensors.idle import _logind
from worklens.agent.sensors.idle._base import UNKNOWN, IdleBackend, IdleReading

log = logging.getLogger(__name__)
SCREEN_SAVER_ON = 1  # ScreenSaverOn in the MIT-SCREEN-SAVER protocol


class X11Idle(IdleBackend):
    name = "x11"

    def __init__(self, conn: _xconn.XConnection, logind: _logind.LogindIdle | None) -> None:
        self._conn = conn
        self._logind = logind
        self._missing_logged = False

    @property
    def waiting(self) -> bool:
        return self._conn is not None and self._conn.waiting

    @property
    def detail(self) -> str:  # type: ignore[override]
        if self._conn is None:
            return "closed"
        lock = "logind LockedHint" if self._logind else "X screen saver state"
        available, detail = self._conn.describe()
        return f"{detail}; lock from {lock}" if available else detail

    def read(self) -> IdleReading:
        info = self._conn.call(_query)
        if info is None:
            if self._conn.waiting and self._logind is not None:
                return self._logind.read()   # no X yet: logind's hints are better than nothing
            return UNKNOWN
        if info is False:
            if not self._missing_logged:
                log.warning("X display %s lacks the MIT-SCREEN-SAVER extension: no idle time "
                            "(enable it in the X server configuration)", self._conn.label)
                self._missing_logged = True
            return UNKNOWN
        idle_seconds = info.idle / 1000.0
        locked = info.state == SCREEN_SAVER_ON
        if self._logind is not None:
            hinted = self._logind.read().locked
            if hinted is not None:
                locked = hinted
        return IdleReading(idle_seconds, locked)

    def close(self) -> None:
        if self._conn is not None:
            _xconn.release(self._conn)
            self._conn = None  # type: ignore[assignment]
        if self._logind is not None:
            self._logind.close()
            self._logind = None


def _query(display: Any) -> Any:
    """The screen saver info; False when the server lacks the extension (checked
    per call: a local lookup, and the server may have been replaced by another)."""
    if not display.has_extension("MIT-SCREEN-SAVER"):
        return False
    return display.screen().root.screensaver_query_info()


def open(display: str | None = None, use_logind: bool = True, **_options) -> X11Idle:
    conn = _xconn.shared(display)
    has_extension = conn.call(lambda d: d.has_extension("MIT-SCREEN-SAVER"))
    if has_extension is False:   # None: not connected yet, checked once it is
        _xconn.release(conn)
        raise BackendUnavailable("the X server lacks the MIT-SCREEN-SAVER extension "
                                 "(enable it in the X server configuration)")
    logind = None
    if use_logind:
        try:
            logind = _logind.open()
        except BackendUnavailable as exc:
            log.debug("no logind lock hint (%s); using the X screen saver state", exc)
    return X11Idle(conn, logind)
