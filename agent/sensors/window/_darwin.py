"""The focused window on macOS via pyobjc.

The application is ``NSWorkspace.sharedWorkspace().frontmostApplication()``
(name, pid, executable, bundle id); the title is the ``kCGWindowName`` of
that application's frontmost normal window (layer 0) in
``CGWindowListCopyWindowInfo``. Since macOS 10.15 window names are only
visible with the Screen Recording permission: without it titles are blank,
and the agent still records the application. (We read the name only, never
window pixels.)

Written against the documented APIs and unit-tested on fakes of them; not
verified on a real Mac here.
"""

from __future__ import annotations

from typing import Any

from worklens.agent.sensors import _darwin
from worklens.agent.sensors.window._base import WindowBackend, WindowInfo


class DarwinWindow(WindowBackend):
    name = "darwin"
    detail = "titles need the Screen Recording permission on macOS 10.15+"

    def __init__(self, appkit: Any, quartz: Any) -> None:
        self._appkit = appkit
        self._quartz = quartz

    def active_window(self) -> WindowInfo | None:
        app = self._appkit.NSWorkspace.sharedWorkspace().frontmostApplication()
        if app is None:
            return None
        pid = int(app.processIdentifier())
        url = app.executableURL()
        exe = str(url.path()) if url is not None else ""
        name = str(app.localizedName() or "") or exe.rsplit("/", 1)[-1]
        bundle = str(app.bundleIdentifier() or "")
        return WindowInfo(app=name, title=self._title(pid), pid=pid, exe=exe,
                          aliases=(bundle,) if bundle else ())

    def _title(self, pid: int) -> str:
        q = self._quartz
        windows = q.CGWindowListCopyWindowInfo(
            q.kCGWindowListOptionOnScreenOnly | q.kCGWindowListExcludeDesktopElements,
            q.kCGNullWindowID) or []
        for info in windows:  # front to back
            if info.get(q.kCGWindowOwnerPID) == pid and info.get(q.kCGWindowLayer, 0) == 0:
                return str(info.get(q.kCGWindowName) or "")
        return ""


def open(appkit: Any = None, quartz: Any = None, **_options) -> DarwinWindow:
    return DarwinWindow(appkit or _darwin.appkit(), quartz or _darwin.quartz())
