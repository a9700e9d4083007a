"""Idle time and lock state on Windows.

Idle: ``GetTickCount64() - LASTINPUTINFO.dwTime`` from ``GetLastInputInfo``
(session-wide last keyboard/mouse input; dwTime is a 32-bit tick count, so
the difference is taken modulo 2**32). Locked: ``OpenInputDesktop`` fails
while the secure desktop (lock screen, UAC) has the input, the common
heuristic for a locked workstation.

Written against the documented API and unit-tested on fakes of it; not
verified on a real Windows machine here.
"""

from __future__ import annotations

import ctypes

from worklens.agent.sensors._win32api import LASTINPUTINFO, Win32Api, load
from worklens.agent.sensors.idle._base import IdleBackend, IdleReading

DESKTOP_SWITCHDESKTOP = 0x0100


class Win32Idle(IdleBackend):
    name = "win32"

    def __init__(self, api: Win32Api) -> None:
        self._api = api

    def read(self) -> IdleReading:
        return IdleReading(self._idle_seconds(), self._locked())

    def _idle_seconds(self) -> float | None:
        info = LASTINPUTINFO()
        info.cbSize = ctypes.sizeof(LASTINPUTINFO)
        if not self._api.GetLastInputInfo(ctypes.byref(info)):
            return None
        now = self._api.GetTickCount64() & 0xFFFFFFFF
        return ((now - info.dwTime) & 0xFFFFFFFF) / 1000.0

    def _locked(self) -> bool:
        desktop = self._api.OpenInputDesktop(0, False, DESKTOP_SWITCHDESKTOP)
        if not desktop:
            return True
        self._api.CloseDesktop(desktop)
        return False


def open(api: Win32Api | None = None, **_options) -> Win32Idle:
    return Win32Idle(api if api is not None else load())
