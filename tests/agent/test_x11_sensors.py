"""The X11 window and idle sensors against a real X server (Xvfb + openbox)."""

from __future__ import annotations

import time

import pytest
from desktop import Desktop, missing_programs, unused_display, wait_for
from sensor_support import make_config
from worklens.agent.sensors import _xconn, describe
from worklens.agent.sensors._select import backend_status
from worklens.agent.sensors.idle import _x11 as idle_x11
from worklens.agent.sensors.window import _x11 as window_x11

pytestmark = pytest.mark.system


@pytest.fixture
def sensors(desktop):
    win, idle = window_x11.open(desktop.display), idle_x11.open(desktop.display, use_logind=False)
    yield win, idle
    win.close()
    idle.close()


def test_reads_the_focused_windows_app_title_pid_and_class(desktop, sensors):
    win_sensor, _idle = sensors
    first = desktop.open_window("x11-first-ÄÖü-7f3a")            # UTF-8 via _NET_WM_NAME
    second = desktop.open_window("x11-second-7f3a", wm_class="LedgerApp")
    desktop.activate(first)
    info = win_sensor.active_window()
    assert (info.app, info.title, info.pid) == ("xterm", "x11-first-ÄÖü-7f3a", first.proc.pid)
    assert info.exe.endswith("/xterm") and info.aliases == ("xterm", "XTerm")
    desktop.activate(second)
    info = win_sensor.active_window()
    assert (info.title, info.pid, info.aliases) == \
        ("x11-second-7f3a", second.proc.pid, ("xterm", "LedgerApp"))


def test_title_changes_are_seen_on_the_same_window(desktop, sensors):
    win_sensor, _idle = sensors
    win = desktop.open_window("x11-before-rename-91c2")
    desktop.activate(win)
    desktop.run("xdotool", "set_window", "--name", "x11-after-rename-91c2", str(win.wid))
    wait_for(lambda: win_sensor.active_window().title == "x11-after-rename-91c2",
             what="the renamed title")


def test_a_window_closed_mid_read_is_no_window_not_an_error(desktop, sensors):
    win_sensor, _idle = sensors
    doomed = desktop.open_window("x11-doomed-55e1")
    desktop.activate(doomed)
    stale = doomed.wid
    desktop.close_window(doomed)
    wait_for(lambda: not desktop.find_window("x11-doomed-55e1"), what="the window to go")
    # the window id read from _NET_ACTIVE_WINDOW a moment ago no longer exists
    win_sensor._focused = lambda display: display.create_resource_object("window", stale)
    assert win_sensor.active_window() is None
    del win_sensor._focused
    assert win_sensor._conn.call(lambda d: True) is True  # the connection is still fine


def test_idle_time_grows_without_input_and_resets_on_input(desktop, sensors):
    _win, idle_sensor = sensors
    desktop.move_mouse(10, 10)
    first = idle_sensor.read()
    time.sleep(1.2)
    later = idle_sensor.read()
    assert later.idle_seconds >= first.idle_seconds + 1.0
    desktop.move_mouse(200, 300)
    assert idle_sensor.read().idle_seconds < later.idle_seconds
    assert idle_sensor.read().locked is False


def test_an_active_screen_saver_counts_as_locked(fresh_desktop):
    idle_sensor = idle_x11.open(fresh_desktop.display, use_logind=False)
    try:
        assert idle_sensor.read().locked is False
        fresh_desktop.run("xset", "s", "activate")
        wait_for(lambda: idle_sensor.read().locked is True, what="screen saver on")
        fresh_desktop.run("xset", "s", "reset")
        wait_for(lambda: idle_sensor.read().locked is False, what="screen saver off")
    finally:
        idle_sensor.close()


def test_without_a_window_manager_the_input_focus_is_used(caplog):
    desk = Desktop.start(window_manager=False)
    try:
        win = desk.open_window("x11-no-wm-3b7d")
        desk.run("xdotool", "windowfocus", "--sync", str(win.wid))
        sensor = window_x11.open(desk.display)
        try:
            with caplog.at_level("INFO"):
                info = wait_for(sensor.active_window, what="the focused window")
                sensor.active_window()
            assert (info.app, info.title) == ("xterm", "x11-no-wm-3b7d")
            fallback_logs = [r for r in caplog.records if "_NET_ACTIVE_WINDOW" in r.message]
            assert len(fallback_logs) == 1  # said once, not every second
        finally:
            sensor.close()
    finally:
        desk.stop()


def assert_sensors_find(desk, win_sensor, idle_sensor, title: str) -> None:
    """A display the sensors could not use before: once a window of ``title`` has the
    focus there, both sensors read it (they reconnect on their own)."""
    desk.activate(desk.open_window(title))
    info = wait_for(win_sensor.active_window, timeout=30, what=f"the window {title}")
    assert info.title == title
    assert wait_for(lambda: idle_sensor.read().idle_seconds is not None, timeout=30,
                    what=f"idle time on the display of {title}")


def test_a_killed_x_server_means_no_window_then_reconnects(fresh_desktop, monkeypatch):
    monkeypatch.setattr(_xconn, "FIRST_BACKOFF", 0.2)
    win_sensor = window_x11.open(fresh_desktop.display)
    idle_sensor = idle_x11.open(fresh_desktop.display, use_logind=False)
    try:
        win = fresh_desktop.open_window("x11-before-crash-a1")
        fresh_desktop.activate(win)
        assert win_sensor.active_window().title == "x11-before-crash-a1"
        fresh_desktop.kill_x()                     # the X server crashes (SIGKILL)
        assert win_sensor.active_window() is None
        assert idle_sensor.read().idle_seconds is None
        # a new X server on the same display number: the sensors find it again
        fresh_desktop.restart_x()
        assert_sensors_find(fresh_desktop, win_sensor, idle_sensor, "x11-after-restart-a1")
    finally:
        win_sensor.close()
        idle_sensor.close()


def test_sensors_started_before_the_x_server_wait_for_it_and_pick_it_up(monkeypatch):
    """At login the agent can start before the display accepts clients."""
    if missing_programs():
        pytest.skip(f"needs {', '.join(missing_programs())}")
    monkeypatch.setattr(_xconn, "FIRST_BACKOFF", 0.2)
    display = unused_display()
    monkeypatch.setenv("DISPLAY", display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    statuses = {s.name: s for s in describe(make_config())}
    for name in ("window", "idle", "input"):
        assert (statuses[name].backend, statuses[name].available) == ("x11", False), name
        assert statuses[name].reason.startswith(f"waiting for X display {display}"), name
    win_sensor = window_x11.open(display)
    idle_sensor = idle_x11.open(display, use_logind=False)
    desk = None
    try:
        assert backend_status("window", win_sensor).reason.startswith("waiting for X display")
        assert win_sensor.active_window() is None
        assert idle_sensor.read().idle_seconds is None
        desk = Desktop.start(display=display)              # the X server comes up now
        assert_sensors_find(desk, win_sensor, idle_sensor, "x11-late-display-c4d2")
        status = backend_status("window", win_sensor)
        assert (status.available, status.reason) == (True, f"display {display}")
        assert backend_status("idle", idle_sensor).available
    finally:
        win_sensor.close()
        idle_sensor.close()
        if desk is not None:
            desk.stop()
