"""What the window backends whose desktop *tells* them the focus share (the
GNOME Shell extension's signal, the KWin script's call-back): the last focus
they were told, kept under a lock because it arrives on the bus's thread, and
turned into a ``WindowInfo`` when the sampler asks. The pid leads to the
executable through psutil, looked up once per pid."""

from __future__ import annotations

import threading

from worklens.agent.sensors._procinfo import process_identity
from worklens.agent.sensors.window._base import WindowBackend, WindowInfo


class PushedFocus(WindowBackend):
    """A window backend fed ``(window class, title, pid)`` from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._focus: tuple[str, str, int] | None = None
        self._identity: tuple[int, str, str] = (0, "", "")

    def _set_focus(self, klass: str, title: str, pid: int) -> None:
        with self._lock:
            self._focus = (klass, title, pid)

    def _forget_focus(self) -> None:
        with self._lock:
            self._focus = None

    def _focused_window(self) -> WindowInfo | None:
        """The last focus told, or None when nothing (or nothing named) has focus."""
        with self._lock:
            focus = self._focus
        if focus is None or not (focus[0] or focus[1]):
            return None
        klass, title, pid = focus
        name, exe = self._process(pid)
        return WindowInfo(app=name or klass, title=title, pid=pid, exe=exe,
                          aliases=(klass,) if klass else ())

    def _process(self, pid: int) -> tuple[str, str]:
        if pid <= 0:
            return "", ""
        if self._identity[0] != pid:
            self._identity = (pid, *process_identity(pid))
        return self._identity[1], self._identity[2]
