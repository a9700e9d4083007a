"""The focused window on wlroots compositors (sway, Hyprland, river, labwc,
Wayfire) from ``zwlr_foreign_toplevel_manager_v1``.

The compositor lists every toplevel with its ``app_id`` (-> app), ``title``
and state; the one whose state includes ``activated`` has the focus. The
protocol says nothing of the owning process: on sway, its IPC tree does (asked
once per focus or title change), and the window gets its pid and executable;
elsewhere pid is 0 and the executable unknown (``status`` says which). Events
arrive on the shared Wayland connection's reader thread
(``agent.sensors._wayland``); a sample only reads what they left.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from worklens.agent.sensors import _swayipc, _wayland
from worklens.agent.sensors._procinfo import process_identity
from worklens.agent.sensors._select import BackendUnavailable
from worklens.agent.sensors.window._base import WindowBackend, WindowInfo

log = logging.getLogger(__name__)
NO_PID = "this protocol gives no pid: pid 0, no executable"
SWAY_PID = "pid and executable from sway's IPC"


class WlrootsWindow(WindowBackend):
    name = "wlroots"

    def __init__(self, conn: _wayland.WaylandConnection,
                 sway: _swayipc.SwayIpc | None = None) -> None:
        """``sway``: the connection's IPC (closed with it), None elsewhere."""
        self._conn = conn
        self._sway = sway
        self._cache: tuple[tuple[str, str], tuple[int, str, str]] | None = None
        self.detail = (f"{_wayland.TOPLEVEL_MANAGER} on Wayland display {conn.name}: "
                       f"app_id and title; {SWAY_PID if sway else NO_PID}")

    def active_window(self) -> WindowInfo | None:
        session = self._conn.session() if self._conn is not None else None
        focused = session.focused() if session is not None else None
        if focused is None:
            return None
        pid, name, exe = self._process(focused.app_id, focused.title)
        aliases = tuple(dict.fromkeys(a for a in (focused.app_id, name) if a))
        return WindowInfo(app=focused.app_id, title=focused.title, pid=pid, exe=exe,
                          aliases=aliases)

    def _process(self, app_id: str, title: str) -> tuple[int, str, str]:
        """(pid, process name, exe) of the focused window: sway's, kept while the
        focused window's app id and title stay the same; zeros elsewhere."""
        if self._sway is None:
            return 0, "", ""
        key = (app_id, title)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        try:
            found = self._sway.focused_process()
        except (OSError, ValueError) as exc:
            log.debug("sway IPC: %s", exc)
            return 0, "", ""
        if found is None or found[0] != app_id:
            return 0, "", ""          # sway and the toplevel events disagree for now
        name, exe = process_identity(found[1])
        self._cache = (key, (found[1], name, exe))
        return self._cache[1]

    def close(self) -> None:
        if self._conn is not None:
            _wayland.release(self._conn)
            self._conn = None  # type: ignore[assignment]
        self._sway = None


def open(wayland_display: str | None = None, env: Mapping[str, str] | None = None,
         **_options) -> WlrootsWindow:
    conn = _wayland.shared(wayland_display, env)
    if not conn.has(_wayland.TOPLEVEL_MANAGER):
        _wayland.release(conn)
        raise BackendUnavailable(f"the compositor does not offer {_wayland.TOPLEVEL_MANAGER} "
                                 "(not a wlroots compositor)")
    sway = None
    try:
        sway = conn.sway()
    except BackendUnavailable as exc:
        log.debug("no pid for Wayland windows: %s", exc)
    return WlrootsWindow(conn, sway)
