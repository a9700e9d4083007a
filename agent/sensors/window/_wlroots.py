"""The focused window on wlroots compositors (sway, Hyprland, river, labwc,
Wayfire) from ``zwlr_foreign_toplevel_manager_v1``.

The compositor lists every toplevel with its ``app_id`` (-> app), ``title``
and state; the one whose state includes ``activated`` has the focus. The
protocol says nothing of the owning process, so pid is 0 and the executable
unknown (``status`` says so). Events arrive on the shared Wayland connection's
reader thread (``agent.sensors._wayland``); a sample only reads what they left.
"""

from __future__ import annotations

from collections.abc import Mapping

from worklens.agent.sensors import _wayland
from worklens.agent.sensors._select import BackendUnavailable
from worklens.agent.sensors.window._base import WindowBackend, WindowInfo

NO_PID = "this protocol gives no pid: pid 0, no executable"


class WlrootsWindow(WindowBackend):
    name = "wlroots"

    def __init__(self, conn: _wayland.WaylandConnection) -> None:
        self._conn = conn
        self.detail = (f"{_wayland.TOPLEVEL_MANAGER} on Wayland display {conn.name}: "
                       f"app_id and title; {NO_PID}")

    def active_window(self) -> WindowInfo | None:
        session = self._conn.session() if self._conn is not None else None
        focused = session.focused() if session is not None else None
        if focused is None:
            return None
        return WindowInfo(app=focused.app_id, title=focused.title, pid=0,
                          aliases=(focused.app_id,) if focused.app_id else ())

    def close(self) -> None:
        if self._conn is not None:
            _wayland.release(self._conn)
            self._conn = None  # type: ignore[assignment]


def open(wayland_display: str | None = None, env: Mapping[str, str] | None = None,
         **_options) -> WlrootsWindow:
    conn = _wayland.shared(wayland_display, env)
    if not conn.has(_wayland.TOPLEVEL_MANAGER):
        _wayland.release(conn)
        raise BackendUnavailable(f"the compositor does not offer {_wayland.TOPLEVEL_MANAGER} "
                                 "(not a wlroots compositor)")
    return WlrootsWindow(conn)
