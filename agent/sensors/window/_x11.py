"""The focused window on an X11 desktop, via python-xlib.

With an EWMH window manager (every mainstream desktop) the root window's
``_NET_ACTIVE_WINDOW`` names the focused client; its title is
``_NET_WM_NAME`` (UTF-8) or the legacy ``WM_NAME``, its class ``WM_CLASS``,
its process ``_NET_WM_PID``. Without a window manager the property is absent
and we fall back to ``XGetInputFocus`` (logged once), walking up to the
top-level window that carries ``WM_CLASS``.

Per sample this costs two round trips (active window, title): titles are
asked for in one piece of up to ``TITLE_WORDS`` * 4 bytes (python-xlib's
default of 40 bytes would cost a second round trip for most real titles);
class and pid are read only when the focused window changes.

When ``DISPLAY`` names an X server that is not up yet (the agent started
before the login session's display), this backend waits for it: no window
meanwhile, ``waiting`` True, and the display is picked up when it appears.
"""

from __future__ import annotations

import logging
from typing import Any

from worklens.agent.sensors import _xconn
from worklens.agent.sensors._procinfo import process_identity
from worklens.agent.sensors.window._base import WindowBackend, WindowInfo

log = logging.getLogger(__name__)
MAX_TREE_DEPTH = 8
TITLE_WORDS = 256          # 1 KiB: whole titles in one request; longer ones take two


def _text(value: Any) -> str:
    """Property bytes to text: UTF-8 when it is, Latin-1 (ICCCM STRING) otherwise."""
    if isinstance(value, str):
        return value
    data = bytes(value).rstrip(b"\0")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


class X11Window(WindowBackend):
    name = "x11"

    def __init__(self, conn: _xconn.XConnection) -> None:
        self._conn = conn
        self._cache: tuple[int, tuple[str, int, str, tuple[str, ...]]] | None = None
        self._fallback_logged = False

    @property
    def waiting(self) -> bool:
        return self._conn is not None and self._conn.waiting

    @property
    def detail(self) -> str:  # type: ignore[override]
        return self._conn.describe()[1] if self._conn is not None else "closed"

    def active_window(self) -> WindowInfo | None:
        return self._conn.call(self._read)

    def _read(self, display: Any) -> WindowInfo | None:
        import Xlib.error

        try:
            window = self._focused(display)
            if window is None:
                return None
            title = self._title(window)
            app, pid, exe, aliases = self._identity(display, window)
        except (Xlib.error.BadWindow, Xlib.error.BadMatch, Xlib.error.BadDrawable):
            return None  # the window closed while we read it: no window this sample
        return WindowInfo(app=app, title=title, pid=pid, exe=exe, aliases=aliases)

    def _focused(self, display: Any) -> Any:
        from Xlib import Xatom

        root = display.screen().root
        prop = root.get_full_property(self._conn.atom("_NET_ACTIVE_WINDOW"), Xatom.WINDOW)
        if prop is not None:
            wid = int(prop.value[0]) if len(prop.value) else 0
            return display.create_resource_object("window", wid) if wid else None
        if not self._fallback_logged:
            log.info("no _NET_ACTIVE_WINDOW (no EWMH window manager?): "
                     "using the X input focus instead")
            self._fallback_logged = True
        focus = display.get_input_focus().focus
        if isinstance(focus, int):  # X.NONE or X.PointerRoot: no client has the focus
            return None
        return self._top_level(display, focus)

    def _top_level(self, display: Any, window: Any) -> Any:
        """Walk up from a focused sub-window to the one with WM_CLASS."""
        from Xlib import Xatom

        root = display.screen().root
        for _ in range(MAX_TREE_DEPTH):
            if window.id == root.id:
                return None
            if window.get_full_property(Xatom.WM_CLASS, Xatom.STRING) is not None:
                return window
            window = window.query_tree().parent
        return None

    def _title(self, window: Any) -> str:
        """``_NET_WM_NAME`` (normally UTF8_STRING, though some clients write STRING),
        else the legacy ``WM_NAME``; any property type is accepted."""
        from Xlib import X, Xatom

        for atom in (self._conn.atom("_NET_WM_NAME"), Xatom.WM_NAME):
            prop = window.get_full_property(atom, X.AnyPropertyType, sizehint=TITLE_WORDS)
            if prop is not None and prop.format == 8 and len(prop.value):
                return _text(prop.value)
        return ""

    def _identity(self, display: Any, window: Any) -> tuple[str, int, str, tuple[str, ...]]:
        """App name, pid, exe and WM_CLASS names, cached per window id."""
        if self._cache is not None and self._cache[0] == window.id:
            return self._cache[1]
        from Xlib import Xatom

        wm_class = window.get_full_property(Xatom.WM_CLASS, Xatom.STRING)
        aliases = tuple(p for p in _text(wm_class.value).split("\0") if p) if wm_class else ()
        pid_prop = window.get_full_property(self._conn.atom("_NET_WM_PID"), Xatom.CARDINAL)
        pid = int(pid_prop.value[0]) if pid_prop is not None and len(pid_prop.value) else 0
        name, exe = process_identity(pid)
        app = name or (aliases[-1] if aliases else "")
        identity = (app, pid, exe, aliases)
        self._cache = (window.id, identity)
        return identity

    def close(self) -> None:
        if self._conn is not None:
            _xconn.release(self._conn)
            self._conn = None  # type: ignore[assignment]


def open(display: str | None = None, **_options) -> X11Window:
    return X11Window(_xconn.shared(display))
