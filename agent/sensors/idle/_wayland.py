"""Idle time from the Wayland compositor: ``ext_idle_notifier_v1`` when it
offers it (sway >= 1.8, Hyprland, KWin >= 5.27, river, labwc...), else KDE's
older ``org_kde_kwin_idle`` (sway 1.7, older KWin).

Both are timers, not counters: the agent asks to be told after
``_wayland.IDLE_TICK`` (1 s) without input, and at the next input. Idle time
is then "now - (when idled arrived - 1 s)", exact to about the tick. An idle
stretch already under way when the agent starts counts from then.

An idle inhibitor (a playing video, a call) silences these timers: the
compositor then reports neither idleness nor input. Version 2 of
``ext_idle_notifier_v1`` has a timer inhibitors do not stop, and the agent uses
it. With the older protocols on sway, sway's IPC says which window holds an
inhibitor (``HiddenInput``): while the *focused* window holds one, the time
counts as without input from when it was first seen -- the video was started
with a click, then watched -- as X11's idle counter would show it; while
another window holds one, the person is presumed at work in the focused one.
Input typed into the inhibiting window itself, and a hands-off stretch with a
video playing beside the focused window, cannot be seen (docs/desktops.md).

Locked comes from logind's ``LockedHint`` when the system bus is reachable
(screen lockers on wlroots tell logind); otherwise it is unknown.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping

from worklens.agent.sensors import _swayipc, _wayland
from worklens.agent.sensors._select import BackendUnavailable
from worklens.agent.sensors.idle import _logind
from worklens.agent.sensors.idle._base import UNKNOWN, IdleBackend, IdleReading

log = logging.getLogger(__name__)

# After the focused window's inhibitor ends, the compositor's timer restarts: it
# says "idled" one tick later if no input came. Waiting this long for it tells a
# person still hands-off from one who took the keyboard back.
HANDOVER_S = 2 * _wayland.IDLE_TICK + 0.5
NONE_HELD = _swayipc.Inhibitors(focused=False, any=False)


class HiddenInput:
    """Idle time while an idle inhibitor silences the compositor's idle timer (sway
    before 1.10): it then reports neither idleness nor input, and what it last said
    goes stale -- "idle" while someone types, or "active" while they watch.

    ``idle_seconds(seen, reported)`` takes what sway's tree says of inhibitors now
    and the idle time the compositor reports, and answers the idle time to use:

    * the focused window holds one (a video watched): no input from when it was
      first seen, or longer if the compositor already said idle before; after it
      ends, the same for as long as the compositor then says idle (no input since),
      or for ``HANDOVER_S`` while it has not said yet;
    * another window holds one (a video beside the document being typed): input is
      presumed -- the person's focus is elsewhere -- so 0, and afterwards no idle
      stretch is dated before the inhibitor ended.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since: float | None = None      # input hidden from then on
        self._released: float | None = None   # the focused inhibitor ended then
        self._presumed_until = -math.inf      # input presumed until then

    def idle_seconds(self, seen: _swayipc.Inhibitors, reported: float) -> float:
        now = self._clock()
        if seen.focused:
            if self._since is None:
                self._since = now
            self._released = None
            return max(reported, now - self._since)
        if seen.any:
            self._since = self._released = None
            self._presumed_until = now
            return 0.0
        reported = min(reported, now - self._presumed_until)
        if self._since is None:
            return reported
        if self._released is None:
            self._released = now
        if reported > 0 or now - self._released <= HANDOVER_S:
            return max(reported, now - self._since)
        self._since = self._released = None     # input came back after the inhibitor
        return reported


class WaylandIdle(IdleBackend):
    name = "wayland"

    def __init__(self, conn: _wayland.WaylandConnection,
                 logind: _logind.LogindIdle | None,
                 sway: _swayipc.SwayIpc | None = None) -> None:
        self._conn = conn
        self._logind = logind
        self._sway = sway
        self._hidden = HiddenInput()
        lock = "logind LockedHint" if logind else "unknown (no logind)"
        self.detail = (f"{conn.idle_protocol} on Wayland display {conn.name}, "
                       f"{_wayland.IDLE_TICK:g} s resolution; lock: {lock}; "
                       f"{_inhibitors_detail(conn, sway)}")

    def read(self) -> IdleReading:
        session = self._conn.session() if self._conn is not None else None
        if session is None:
            return UNKNOWN
        locked = self._logind.read().locked if self._logind is not None else None
        idle = session.idle_seconds()
        if self._sway is not None:
            idle = self._hidden.idle_seconds(self._inhibitors(), idle)
        return IdleReading(idle, locked)

    def _inhibitors(self) -> _swayipc.Inhibitors:
        """sway's word on inhibitors, read at most once per ``IDLE_TICK``."""
        try:
            return self._sway.inhibitors(max_age=_wayland.IDLE_TICK)
        except (OSError, ValueError) as exc:
            log.debug("sway IPC: %s", exc)
            return NONE_HELD

    def close(self) -> None:
        if self._conn is not None:
            _wayland.release(self._conn)
            self._conn = None  # type: ignore[assignment]
        if self._logind is not None:
            self._logind.close()
            self._logind = None
        self._sway = None           # the connection's: closed with it


def _inhibitors_detail(conn: _wayland.WaylandConnection,
                       sway: _swayipc.SwayIpc | None) -> str:
    if conn.input_seen_through_inhibitors:
        return "idle inhibitors: input still seen (ext_idle_notifier_v1 version 2)"
    if sway is not None:
        return ("idle inhibitors hide input: under the focused window's inhibitor (sway "
                "IPC) no input is assumed, under another window's input is")
    return ("idle inhibitors hide input and cannot be seen here: time under one counts "
            "as active")


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
    sway = None
    if not conn.input_seen_through_inhibitors:
        try:
            sway = conn.sway()
        except BackendUnavailable as exc:
            log.debug("no sway IPC for idle inhibitors: %s", exc)
    return WaylandIdle(conn, logind, sway)
