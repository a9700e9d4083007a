"""Call on Windows: the microphone is in use, from the privacy consent store.

Windows records, per application that asked for the microphone, when it last
started and stopped using it, under
``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\CapabilityAccessManager\\
ConsentStore\\microphone``: one subkey per packaged app, and per desktop app
under ``NonPackaged``, each with ``LastUsedTimeStart`` and ``LastUsedTimeStop``
(FILETIME). An app whose start is set and whose stop is 0 (or older than the
start) is using the microphone now. Only that yes/no is kept, never which app.

Written against the documented registry layout and unit-tested on a fake
registry; NOT verified on a real Windows machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from worklens.agent.sensors.passive._base import CALL, Signal
from worklens.agent.sensors.window._base import WindowInfo

CONSENT_STORE = (r"Software\Microsoft\Windows\CurrentVersion\CapabilityAccessManager"
                 r"\ConsentStore\microphone")
NON_PACKAGED = "NonPackaged"


class Registry(Protocol):
    """The two reads needed, under HKEY_CURRENT_USER."""

    def subkeys(self, path: str) -> list[str]: ...

    def value(self, path: str, name: str) -> int | None: ...


class WinReg:
    """``Registry`` through the standard library's winreg."""

    def __init__(self) -> None:
        import winreg  # Windows only

        self._winreg = winreg

    def subkeys(self, path: str) -> list[str]:
        wr = self._winreg
        try:
            with wr.OpenKey(wr.HKEY_CURRENT_USER, path) as key:
                count = wr.QueryInfoKey(key)[0]
                return [wr.EnumKey(key, i) for i in range(count)]
        except OSError:
            return []

    def value(self, path: str, name: str) -> int | None:
        wr = self._winreg
        try:
            with wr.OpenKey(wr.HKEY_CURRENT_USER, path) as key:
                return int(wr.QueryValueEx(key, name)[0])
        except (OSError, ValueError, TypeError):
            return None


def apps_in_use(registry: Registry) -> Iterable[str]:
    """The consent-store keys of apps using the microphone now."""
    for parent in (CONSENT_STORE, rf"{CONSENT_STORE}\{NON_PACKAGED}"):
        for name in registry.subkeys(parent):
            if name == NON_PACKAGED:
                continue
            path = rf"{parent}\{name}"
            start = registry.value(path, "LastUsedTimeStart") or 0
            stop = registry.value(path, "LastUsedTimeStop") or 0
            if start > 0 and stop < start:
                yield path


class ConsentStoreMicrophone(Signal):
    reason = CALL
    backend = "consent-store"
    detail = "microphone consent store (not verified on real Windows)"

    def __init__(self, registry: Registry | None = None) -> None:
        self._registry = registry
        if registry is None:
            try:
                self._registry = WinReg()
            except ImportError:
                self.available = False
                self.detail = "winreg is not available (not Windows)"

    def engaged(self, window: WindowInfo | None) -> bool:
        return self._registry is not None and any(True for _ in apps_in_use(self._registry))
