"""Idle time from the Wayland compositor: ``ext_idle_notifier_v1`` when it
offers it (sway >= 1.8, Hyprland, KWin >= 5.27, river, labwc...), else KDE's
older ``org_kde_kwin_idle`` (sway 1.7, older KWin).

Both are timers, not counters: the agent asks to be told after
``_wayland.IDLE_TICK`` (1 s) without input, and at the next input. Idle time
is then "now - (when idled arrived - 1 s)", exact to about the tick. Two
limits of these protocols, said in docs/desktops.md: an idle inhibitor (a
video player, a call) stops the compositor from reporting idleness at all,
and an idle stretch already under way when the agent starts counts from then.

Locked comes from logind's ``LockedHint`` when the system bus is reachable
(screen lockers on wlroots tell logind); otherwise it is unknown.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from worklens.agent.sensors import _wayland
from worklens.agent.sensors._select import BackendUnavailable
from worklens.agent.sensors.idle import _logind
from worklens.agent.sensors.idle._base import UNKNOWN, IdleBackend, IdleReading

log = logging.getLogger(__name__)


class WaylandIdle(IdleBackend):
    name = "wayland"

    def __init__(self, conn: _wayland.WaylandConnection,
                 logind: _logind.LogindIdle | None) -> None:
        self._conn = conn
        self._logind = logind
        lock = "logind LockedHint" if logind else "unknown (no logind)"
        self.detail = (f"{conn.idle_protocol} on Wayland display {conn.name}, "
                       f"{_wayland.IDLE_TICK:g} s resolution; lock: {lock}")

    def read(self) -> IdleReading:
        session = self._conn.session() if self._conn is not None else None
        if session is None:
            return UNKNOWN
        locked = self._logind.read().locked if self._logind is not None else None
        return IdleReading(session.idle_seconds(), locked)

    def close(self) -> None:
        if self._conn is not None:
            _wayland.release(self._conn)
            self._conn = None  # type: ignore[assignment]
        if self._logind is not None:
            self._logind.close()
            self._logind = None


def open(wayland_display: str | None = None, env: Mapping[str, str] | None = None,
         use_logind: bool = True,
         **_options) -> WaylandIdle:
    conn = _wayland.shared(wayland_display, env)
    if not conn.idle_protocol:
        _wayland.release(conn)
        raise BackendUnavailable(f"the compositor offers neither {_wayland.EXT_IDLE} nor "
                                 f"{_wayland.KDE_IDLE}")
    logind = None
    if use_logind:
        try:
            logind = _logind.open()
        except BackendUnavailable as exc:
            log.debug("no logind lock hint on Wayland: %s", exc)
    return WaylandIdle(conn, logind)
