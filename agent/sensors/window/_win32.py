"""The focused window on Windows: ``GetForegroundWindow`` -> ``GetWindowTextW``
for the title, ``GetWindowThreadProcessId`` -> psutil for the executable.

Written against the documented user32 API and unit-tested on fakes of it;
not verified on a real Windows machine here. The agent must run inside the
user's interactive session (a per-user autostart, not a service in session 0),
or GetForegroundWindow sees nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from worklens.agent.sensors._procinfo import process_identity
from worklens.agent.sensors._win32api import Win32Api, load
from worklens.agent.sensors.window._base import WindowBackend, WindowInfo

MAX_TITLE = 1024


class Win32Window(WindowBackend):
    name = "win32"

    def __init__(self, api: Win32Api,
                 identify: Callable[[int], tuple[str, str]] = process_identity) -> None:
        self._api = api
        self._identify = identify
        self._cache: tuple[int, int, str, str] | None = None  # hwnd, pid, name, exe

    def active_window(self) -> WindowInfo | None:
        hwnd = self._api.GetForegroundWindow()
        if not hwnd:
            return None  # no foreground window (e.g. the desktop is switching, or locked)
        title = self._title(hwnd)
        pid, name, exe = self._identity(hwnd)
        return WindowInfo(app=name, title=title, pid=pid, exe=exe)

    def _title(self, hwnd: int) -> str:
        length = min(self._api.GetWindowTextLengthW(hwnd), MAX_TITLE)
        if length <= 0:
            return ""
        buffer = ctypes.create_unicode_buffer(length + 1)
        copied = self._api.GetWindowTextW(hwnd, buffer, length + 1)
        return buffer.value[:copied] if copied > 0 else ""

    def _identity(self, hwnd: int) -> tuple[int, str, str]:
        pid = ctypes.c_ulong(0)
        self._api.GetWindowThreadProcessId(hwnd, ctypes.byref(pid))
        if self._cache and self._cache[:2] == (hwnd, pid.value):
            return self._cache[1:]
        name, exe = self._identify(pid.value)
        self._cache = (hwnd, pid.value, name, exe)
        return pid.value, name, exe


def open(api: Win32Api | None = None, **_options) -> Win32Window:
    return Win32Window(api if api is not None else load())
