"""The Wayland window and idle sensors against a real headless sway (wlroots),
run as an ordinary user (tests/sway.py); this process connects to its socket."""

from __future__ import annotations

import time

import pytest
from polling import wait_for
from sway import Sway, missing_programs
from worklens.agent.sensors import _wayland, describe
from worklens.agent.sensors.idle import _wayland as idle_wayland
from worklens.agent.sensors.input import WAYLAND_REASON, InputCounter
from worklens.agent.sensors.window import _wlroots as window_wlroots

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def sway():
    missing = missing_programs()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install sway foot wtype)")
    desk = Sway.start()
    yield desk
    desk.stop()


@pytest.fixture
def in_session(sway, monkeypatch):
    """This process in the sway session (no X display)."""
    for name, value in sway.env.items():
        if name in ("WAYLAND_DISPLAY", "XDG_RUNTIME_DIR"):
            monkeypatch.setenv(name, value)
    for name in ("DISPLAY", "WORKLENS_WINDOW_BACKEND", "WORKLENS_IDLE_BACKEND",
                 "WORKLENS_INPUT_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    return sway


@pytest.fixture
def sensors(in_session):
    win, idle = window_wlroots.open(), idle_wayland.open(use_logind=False)
    yield win, idle
    win.close()
    idle.close()


def test_reads_the_activated_toplevels_app_id_and_title_without_a_pid(in_session, sensors):
    desk, (win, _idle) = in_session, sensors
    desk.open_window("wl-first-ÄÖü-5c2e")
    desk.open_window("wl-second-5c2e")
    for title in ("wl-first-ÄÖü-5c2e", "wl-second-5c2e", "wl-first-ÄÖü-5c2e"):
        desk.focus(title)
        info = wait_for(lambda t=title: (w := win.active_window()) and w.title == t and w,
                        timeout=5, what=f"the sensor to see {title!r}")
        assert (info.app, info.pid, info.exe, info.aliases) == ("foot", 0, "", ("foot",))
    assert "no pid" in win.detail


def test_on_sway_the_focused_window_gets_its_process_from_swayipc(in_session, monkeypatch):
    desk = in_session
    monkeypatch.setenv("SWAYSOCK", desk.sway_socket)
    win = window_wlroots.open()
    try:
        assert "pid and executable from sway's IPC" in win.detail
        procs = {t: desk.open_window(t) for t in ("wl-pid-one-5c2e", "wl-pid-two-5c2e")}
        for title, proc in [*procs.items(), *procs.items()]:
            desk.focus(title)
            info = wait_for(lambda t=title: (w := win.active_window()) and w.title == t
                            and w.pid and w, timeout=5, what=f"{title!r} with its pid")
            assert (info.app, info.pid) == ("foot", proc.pid)
            assert info.exe.endswith("/foot") and "foot" in info.aliases
    finally:
        win.close()


def test_a_closed_window_is_forgotten(in_session, sensors):
    desk, (win, _idle) = in_session, sensors
    proc = desk.open_window("wl-short-lived-5c2e")
    desk.focus("wl-short-lived-5c2e")
    wait_for(lambda: (w := win.active_window()) and w.title == "wl-short-lived-5c2e",
             timeout=5, what="the short-lived window focused")
    proc.terminate()
    proc.wait(10)
    wait_for(lambda: (w := win.active_window()) is None or w.title != "wl-short-lived-5c2e",
             timeout=5, what="the closed window to be forgotten")


def test_idle_time_grows_without_input_and_typing_resets_it(in_session, sensors):
    desk, (_win, idle) = in_session, sensors
    desk.open_window("wl-typing-5c2e")
    desk.focus("wl-typing-5c2e")
    desk.type("x")
    typed = time.monotonic()
    assert idle.read().idle_seconds < 1.0
    wait_for(lambda: idle.read().idle_seconds >= 2.5, timeout=10, what="2.5 s of idleness")
    # idle time counts from the last input, to within the 1 s timer's resolution
    assert abs(idle.read().idle_seconds - (time.monotonic() - typed)) < 1.0
    desk.type("y")
    wait_for(lambda: idle.read().idle_seconds < 0.5, timeout=5, what="input to end idleness")
    assert idle.read().locked is None          # no logind here: lock unknown, not "unlocked"
    assert idle.detail.split()[0] in (_wayland.EXT_IDLE, _wayland.KDE_IDLE)


def test_wayland_backends_win_before_x11_and_status_says_why(in_session, monkeypatch):
    from sensor_support import make_config

    monkeypatch.setenv("DISPLAY", ":9876")      # an XWayland that is not there
    statuses = {s.name: s for s in describe(make_config())}
    assert (statuses["window"].backend, statuses["window"].available) == ("wlroots", True)
    assert (statuses["idle"].backend, statuses["idle"].available) == ("wayland", True)
    assert "no pid" in statuses["window"].reason
    # input counts: unavailable (not zero), and said why
    assert (statuses["input"].backend, statuses["input"].available) == ("none", False)
    assert statuses["input"].reason == WAYLAND_REASON


def test_sensors_config_overrides_the_order(in_session):
    from sensor_support import make_config
    from worklens.agent.sensors import window

    cfg = make_config(sensors={"window": "kde, wlroots"})
    backend, status = window.open_sensor(cfg)
    try:
        assert status.backend == "wlroots"
        assert "not used: kde:" in status.reason       # tried first, as configured
    finally:
        backend.close()
    backend, status = window.open_sensor(make_config(sensors={"window": "none"}))
    assert (status.backend, status.reason) == ("none", "disabled by configuration")
    status = InputCounter(configured="none").start()
    assert status.reason == "disabled by configuration"


def test_a_compositor_that_goes_away_leaves_no_window_and_unknown_idle(in_session):
    desk = Sway.start()     # a sway of its own, to stop
    try:
        socket = str(desk.runtime_dir / desk.wayland_display)   # WAYLAND_DISPLAY may be a path
        win = window_wlroots.open(socket)
        idle = idle_wayland.open(socket, use_logind=False)
    except Exception:
        desk.stop()
        raise
    try:
        desk.open_window("wl-doomed-5c2e")
        wait_for(lambda: win.active_window() is not None, timeout=5, what="a window")
        desk.stop()
        wait_for(lambda: win.active_window() is None, timeout=10, what="the window to vanish")
        assert idle.read().idle_seconds is None
    finally:
        win.close()
        idle.close()
        desk.stop()
