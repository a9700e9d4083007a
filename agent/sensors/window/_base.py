"""The interface every window backend meets.

A backend answers one question, cheaply enough to ask every second: which
window has the keyboard focus right now? It never raises for the normal
troubles of a desktop (a window closing while it is read, the display going
away): it answers None, meaning "no window can be seen now".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowInfo:
    """The focused window, as the privacy rules and the span tracker see it."""

    app: str                   # application / executable name, e.g. "firefox"
    title: str                 # window title as the application set it
    pid: int = 0               # owning process, 0 when unknown
    exe: str = ""              # executable path when known
    aliases: tuple[str, ...] = ()  # other names of the app (X WM_CLASS, bundle id)
    excluded: bool = False     # set by the privacy rules: app and title are blank


class WindowBackend:
    """Base class: ``active_window()`` and ``close()``; ``name`` and ``detail``
    say which backend runs and, for status, anything worth knowing."""

    name = "base"
    detail = ""

    def active_window(self) -> WindowInfo | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release OS resources (connections); safe to call twice."""
