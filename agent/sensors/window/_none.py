"""The window backend for machines where no window can be seen (servers,
a Wayland compositor none of the backends speaks to): the agent runs on,
reporting no window spans."""

from __future__ import annotations

from worklens.agent.sensors.window._base import WindowBackend, WindowInfo


class NoWindow(WindowBackend):
    name = "none"

    def active_window(self) -> WindowInfo | None:
        return None


def open(**_options) -> NoWindow:
    return NoWindow()
