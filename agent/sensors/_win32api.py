"""The few Win32 functions the agent calls, loaded with ctypes on first use.

Kept as a table (a dataclass of callables) so the window and idle backends
can be unit-tested on Linux with fakes that behave like the documented C
functions (filling buffers and out-parameters). Not verified on a real
Windows machine here.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worklens.agent.sensors._select import BackendUnavailable


class LASTINPUTINFO(ctypes.Structure):
    """https://learn.microsoft.com/windows/win32/api/winuser/ns-winuser-lastinputinfo"""

    _fields_ = [("cbSize", ctypes.c_uint), ("dwTime", ctypes.c_uint32)]


@dataclass
class Win32Api:
    GetForegroundWindow: Callable[[], Any]
    GetWindowTextLengthW: Callable[[Any], int]
    GetWindowTextW: Callable[[Any, Any, int], int]
    GetWindowThreadProcessId: Callable[[Any, Any], int]
    GetLastInputInfo: Callable[[Any], int]
    GetTickCount64: Callable[[], int]
    OpenInputDesktop: Callable[[int, bool, int], Any]
    CloseDesktop: Callable[[Any], int]


def load() -> Win32Api:
    """The real functions from user32/kernel32, with their C signatures declared."""
    if sys.platform != "win32":
        raise BackendUnavailable("the win32 backend runs only on Windows")
    from ctypes import wintypes

    user32 = ctypes.WinDLL("user32", use_last_error=True)
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    user32.GetForegroundWindow.restype = wintypes.HWND
    user32.GetWindowTextLengthW.argtypes = [wintypes.HWND]
    user32.GetWindowTextW.argtypes = [wintypes.HWND, wintypes.LPWSTR, ctypes.c_int]
    user32.GetWindowThreadProcessId.argtypes = [wintypes.HWND, ctypes.POINTER(wintypes.DWORD)]
    user32.GetWindowThreadProcessId.restype = wintypes.DWORD
    user32.GetLastInputInfo.argtypes = [ctypes.POINTER(LASTINPUTINFO)]
    user32.GetLastInputInfo.restype = wintypes.BOOL
    user32.OpenInputDesktop.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
    user32.OpenInputDesktop.restype = wintypes.HANDLE
    user32.CloseDesktop.argtypes = [wintypes.HANDLE]
    kernel32.GetTickCount64.restype = ctypes.c_uint64
    return Win32Api(
        GetForegroundWindow=user32.GetForegroundWindow,
        GetWindowTextLengthW=user32.GetWindowTextLengthW,
        GetWindowTextW=user32.GetWindowTextW,
        GetWindowThreadProcessId=user32.GetWindowThreadProcessId,
        GetLastInputInfo=user32.GetLastInputInfo,
        GetTickCount64=kernel32.GetTickCount64,
        OpenInputDesktop=user32.OpenInputDesktop,
        CloseDesktop=user32.CloseDesktop,
    )
