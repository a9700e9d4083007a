"""Fixtures for the agent's sensor tests: a real X desktop (Xvfb + openbox,
see tests/desktop.py) and a sink that keeps what it is given."""

from __future__ import annotations

import pytest
from desktop import Desktop, missing_programs
from sensor_support import ListSink


def require_desktop_programs() -> None:
    missing = missing_programs()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install xvfb openbox xdotool xterm)")


@pytest.fixture(scope="module")
def desktop():
    """One X desktop per test module; tests give their windows unique titles."""
    require_desktop_programs()
    desk = Desktop.start()
    yield desk
    desk.stop()


@pytest.fixture
def fresh_desktop():
    """A desktop of one's own, for tests that kill or disturb the X server."""
    require_desktop_programs()
    desk = Desktop.start()
    yield desk
    desk.stop()


@pytest.fixture
def on_display(monkeypatch):
    """Point this process (sensors, pynput) at a test desktop."""
    def point(desk: Desktop) -> Desktop:
        monkeypatch.setenv("DISPLAY", desk.display)
        for name in ("WAYLAND_DISPLAY", "WORKLENS_WINDOW_BACKEND", "WORKLENS_IDLE_BACKEND"):
            monkeypatch.delenv(name, raising=False)
        return desk
    return point


@pytest.fixture
def sink() -> ListSink:
    return ListSink()
