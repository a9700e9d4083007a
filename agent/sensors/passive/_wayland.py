"""Inhibitor on Wayland: an application holds a ``zwp_idle_inhibitor_v1``.

Wayland gives no client a list of inhibitors; two ways show that one is held:

* ``ext_idle_notifier_v1`` version 2 (sway 1.10, wlroots 0.18 compositors):
  input has rested past the tick but the compositor's ordinary idle timer,
  which inhibitors stop, did not fire (``_wayland.Session.inhibited``).
  Written against the protocol's documented definition and tested against a
  protocol-level fake compositor: no compositor with version 2 runs here.
* sway's IPC (older sway): ``inhibit_idle`` on a window of its tree.

Only "held" leaves here: never which application or window holds it.
"""

from __future__ import annotations

from collections.abc import Mapping

from worklens.agent.sensors import _wayland
from worklens.agent.sensors._select import BackendUnavailable
from worklens.agent.sensors.passive._base import INHIBITOR, Signal, Unavailable
from worklens.agent.sensors.window._base import WindowInfo

NO_WAY = ("the compositor's idle protocol hides inhibitors (ext_idle_notifier_v1 "
          "version 2 shows them: sway 1.10, wlroots 0.18) and this is not sway")


class _OnConnection(Signal):
    """An inhibitor signal read through the shared Wayland connection, which it holds
    (``_wayland.shared``) until closed."""

    reason = INHIBITOR

    def __init__(self, conn: _wayland.WaylandConnection) -> None:
        self._conn: _wayland.WaylandConnection | None = conn

    def close(self) -> None:
        if self._conn is not None:
            _wayland.release(self._conn)
            self._conn = None


class NotifierInhibitors(_OnConnection):
    """Version 2 of ``ext_idle_notifier_v1``: input idle, the ordinary timer not."""

    backend = "wayland"
    detail = "ext_idle_notifier_v1 version 2 (input idle while the ordinary timer is held)"

    def engaged(self, window: WindowInfo | None) -> bool:
        session = self._conn.session() if self._conn is not None else None
        return bool(session is not None and session.inhibited())


class SwayInhibitors(_OnConnection):
    """sway's tree: some window's idle inhibitor is in force. Read afresh (not the idle
    sensor's tree of this second): a video paused a moment ago is no inhibitor."""

    backend = "sway-ipc"
    detail = "sway IPC (inhibit_idle of each window)"

    def engaged(self, window: WindowInfo | None) -> bool:
        return self._conn is not None and self._conn.sway().inhibitors().any


def open(env: Mapping[str, str] | None = None) -> Signal:
    """The way this Wayland session shows inhibitors, or Unavailable saying why."""
    try:
        conn = _wayland.shared(None, env)
    except BackendUnavailable as exc:
        return Unavailable(INHIBITOR, "wayland", str(exc))
    if conn.input_seen_through_inhibitors:
        return NotifierInhibitors(conn)
    try:
        conn.sway()
    except BackendUnavailable as exc:
        _wayland.release(conn)
        return Unavailable(INHIBITOR, "wayland", f"{NO_WAY} ({exc})")
    return SwayInhibitors(conn)
