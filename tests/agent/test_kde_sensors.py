"""KDE Plasma: the agent's KWin-script path against a stand-in for KWin's
scripting interface on a real session bus (kwin_wayland cannot run here). The
script itself runs for real, in node, with a stand-in of KWin's scripting API
(tests/agent/kwin_harness.js); its callDBus calls reach the agent over the bus."""

from __future__ import annotations

import os
import shutil

import pytest
from dbus_standins import KWinStandIn
from polling import wait_for
from session_bus import SessionBusDaemon
from worklens.agent.sensors import BackendUnavailable
from worklens.agent.sensors.window import _kde

pytestmark = pytest.mark.system


@pytest.fixture
def bus():
    missing = [p for p in ("dbus-daemon", "node") if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install dbus-daemon nodejs)")
    with SessionBusDaemon.start() as daemon:
        yield daemon


def titled(window, title):
    return wait_for(lambda: (w := window.active_window()) and w.title == title and w,
                    timeout=10, what=f"the focus on {title!r}")


@pytest.mark.parametrize("plasma", ["6", "5"])
def test_the_kwin_script_reports_focus_and_title_changes(bus, plasma):
    kwin = KWinStandIn(bus.env, plasma, window={"resourceClass": "org.kde.dolphin",
                                                "caption": "Home — Dolphin", "pid": os.getpid()})
    window = _kde.open(env=bus.env)
    try:
        assert window.plasma == plasma
        assert kwin.runs == ["/Scripting/Script1" if plasma == "6" else "/1"]
        info = titled(window, "Home — Dolphin")          # the window active at load
        assert (info.pid, info.aliases) == (os.getpid(), ("org.kde.dolphin",))
        assert info.exe                                  # through psutil from the pid
        kwin.activate({"resourceClass": "org.kde.konsole", "caption": "~ : bash", "pid": 0})
        info = titled(window, "~ : bash")
        assert (info.app, info.pid) == ("org.kde.konsole", 0)
        kwin.caption("make test : bash")                 # the focused window's title
        titled(window, "make test : bash")
        kwin.activate(None)                              # nothing focused
        wait_for(lambda: window.active_window() is None, timeout=10, what="no focus")
        window.close()
        assert "worklens-focus" not in kwin.scripts      # unloaded when the agent stops
    finally:
        window.close()
        kwin.stop()


def test_a_second_agent_cannot_take_the_callback_name(bus):
    kwin = KWinStandIn(bus.env, "6", window=None)
    first = _kde.open(env=bus.env)
    try:
        with pytest.raises(BackendUnavailable, match="another Worklens agent"):
            _kde.open(env=bus.env)
    finally:
        first.close()
        kwin.stop()


def test_not_on_kde_the_backend_says_so(bus):
    with pytest.raises(BackendUnavailable, match="not KDE Plasma"):
        _kde.open(env=bus.env)
