"""Backend choice, and the Windows, macOS and logind backends on fakes of
their OS calls (they are not verified on real machines here)."""

from __future__ import annotations

import ctypes
from types import SimpleNamespace

import pytest
from sensor_support import make_config
from worklens.agent.sensors import idle, window
from worklens.agent.sensors._select import BackendUnavailable, default_backends
from worklens.agent.sensors._win32api import Win32Api
from worklens.agent.sensors.idle import _darwin as idle_darwin
from worklens.agent.sensors.idle import _logind
from worklens.agent.sensors.idle import _win32 as idle_win32
from worklens.agent.sensors.window import _darwin as window_darwin
from worklens.agent.sensors.window import _win32 as window_win32
from worklens.agent.sensors.window._base import WindowInfo

# --- choosing a backend -----------------------------------------------------------


def test_defaults_by_platform_and_session():
    assert default_backends("window", "linux", {"DISPLAY": ":0"}) == ["x11"]
    assert default_backends("idle", "linux", {"DISPLAY": ":0"}) == ["x11", "logind"]
    # Wayland: the compositor's interfaces first; X11 (XWayland sees only X clients)
    # last, and only when there is an X display at all
    wayland = {"WAYLAND_DISPLAY": "wayland-0"}
    assert default_backends("window", "linux", wayland) == ["wlroots", "gnome", "kde"]
    assert default_backends("window", "linux", {**wayland, "DISPLAY": ":0"}) == \
        ["wlroots", "gnome", "kde", "x11"]
    assert default_backends("idle", "linux", wayland) == ["wayland", "gnome", "logind"]
    assert default_backends("idle", "linux", {}) == ["logind"]
    assert default_backends("window", "win32", {}) == ["win32"]
    assert default_backends("idle", "darwin", {}) == ["darwin"]


def test_wayland_without_a_usable_interface_falls_back_to_none_and_says_why():
    backend, status = window.open_sensor(env={"WAYLAND_DISPLAY": "wayland-nowhere-0"},
                                         platform="linux")
    assert backend.active_window() is None
    assert (status.backend, status.available) == ("none", False)
    assert "wlroots: cannot connect to Wayland display wayland-nowhere-0" in status.reason


def test_headless_linux_says_to_set_display():
    _backend, status = window.open_sensor(env={}, platform="linux")
    assert not status.available and "DISPLAY" in status.reason


def test_unreachable_display_is_waited_for_and_status_says_so():
    """At login the agent may start before X: it waits for the display (tested on a
    real late X server in test_x11_sensors.py) instead of giving up."""
    backend, status = window.open_sensor(env={"DISPLAY": ":987"}, platform="linux",
                                         display=":987")
    try:
        assert (status.backend, status.available) == ("x11", False)
        assert status.reason.startswith("waiting for X display :987")
        assert backend.active_window() is None
    finally:
        backend.close()


def test_malformed_display_falls_back_with_the_fix():
    _backend, status = window.open_sensor(env={"DISPLAY": "nonsense"}, platform="linux",
                                          display="nonsense")
    assert (status.backend, status.available) == ("none", False)
    assert "bad X display name 'nonsense'" in status.reason and "DISPLAY" in status.reason


def test_env_variable_beats_config_and_none_disables():
    cfg = make_config(sampling={"window_backend": "x11"})
    _backend, status = window.open_sensor(cfg, env={"WORKLENS_WINDOW_BACKEND": "none"},
                                          platform="linux")
    assert (status.backend, status.available, status.reason) == \
        ("none", False, "disabled by configuration")


def test_unknown_forced_backend_is_named():
    _backend, status = idle.open_sensor(make_config(sampling={"idle_backend": "beos"}),
                                        env={}, platform="linux")
    assert status.backend == "none" and "unknown idle backend 'beos'" in status.reason


def test_forcing_win32_on_linux_explains_instead_of_crashing():
    _backend, status = window.open_sensor(env={"WORKLENS_WINDOW_BACKEND": "win32"})
    assert not status.available and "only on Windows" in status.reason


# --- Windows, on a fake user32/kernel32 ----------------------------------------------


class FakeUser32:
    """Behaves like the documented functions: fills buffers and out-parameters."""

    def __init__(self, hwnd=0x1234, title="Budget 2025.xlsx - Excel", pid=4321,
                 last_input_tick=10_000, tick=15_500, desktop=0x99) -> None:
        self.hwnd, self.title, self.pid = hwnd, title, pid
        self.last_input_tick, self.tick, self.desktop = last_input_tick, tick, desktop
        self.closed = []

    def api(self) -> Win32Api:
        return Win32Api(
            GetForegroundWindow=lambda: self.hwnd,
            GetWindowTextLengthW=lambda hwnd: len(self.title) if hwnd == self.hwnd else 0,
            GetWindowTextW=self._get_text, GetWindowThreadProcessId=self._get_pid,
            GetLastInputInfo=self._last_input, GetTickCount64=lambda: self.tick,
            OpenInputDesktop=lambda flags, inherit, access: self.desktop,
            CloseDesktop=self.closed.append)

    def _get_text(self, hwnd, buffer, size):
        text = self.title[: size - 1]
        ctypes.memmove(buffer, ctypes.create_unicode_buffer(text), (len(text) + 1) *
                       ctypes.sizeof(ctypes.c_wchar))
        return len(text)

    def _get_pid(self, hwnd, pid_ref):
        pid_ref._obj.value = self.pid
        return 77  # thread id

    def _last_input(self, info_ref):
        info = info_ref._obj
        assert info.cbSize == 8
        info.dwTime = self.last_input_tick
        return 1


def test_win32_window_reads_title_pid_and_executable():
    fake = FakeUser32()
    seen = []

    def identify(pid):
        seen.append(pid)
        return "EXCEL.EXE", r"C:\Program Files\Microsoft Office\EXCEL.EXE"

    backend = window_win32.open(api=fake.api())
    backend._identify = identify
    assert backend.active_window() == WindowInfo(
        app="EXCEL.EXE", title="Budget 2025.xlsx - Excel", pid=4321,
        exe=r"C:\Program Files\Microsoft Office\EXCEL.EXE")
    backend.active_window()
    assert seen == [4321]  # the executable is looked up once per window


def test_win32_no_foreground_window():
    assert window_win32.open(api=FakeUser32(hwnd=0).api()).active_window() is None


def test_win32_idle_and_lock():
    fake = FakeUser32(last_input_tick=10_000, tick=15_500)
    backend = idle_win32.open(api=fake.api())
    reading = backend.read()
    assert (reading.idle_seconds, reading.locked) == (5.5, False)
    assert fake.closed == [0x99]  # the desktop handle is released
    fake.desktop = 0  # OpenInputDesktop fails while the secure desktop is up
    assert backend.read().locked is True


def test_win32_idle_survives_the_32_bit_tick_wrap():
    fake = FakeUser32(last_input_tick=0xFFFFFF00, tick=(1 << 32) + 0x100)
    assert idle_win32.open(api=fake.api()).read().idle_seconds == pytest.approx(0.512)


# --- macOS, on fake pyobjc modules ---------------------------------------------------


def fake_quartz(windows, idle_seconds=12.5, locked=None):
    calls = []

    def seconds_since(state, event_type):
        calls.append((state, event_type))
        return idle_seconds

    session = {} if locked is None else {"CGSSessionScreenIsLocked": locked}
    return SimpleNamespace(
        kCGWindowListOptionOnScreenOnly=1, kCGWindowListExcludeDesktopElements=16,
        kCGNullWindowID=0, kCGWindowOwnerPID="kCGWindowOwnerPID", kCGWindowLayer="kCGWindowLayer",
        kCGWindowName="kCGWindowName", kCGEventSourceStateCombinedSessionState=0,
        kCGAnyInputEventType=0xFFFFFFFF,
        CGWindowListCopyWindowInfo=lambda option, wid: windows if option == 17 else [],
        CGEventSourceSecondsSinceLastEventType=seconds_since,
        CGSessionCopyCurrentDictionary=lambda: session, calls=calls)


def fake_appkit(app):
    workspace = SimpleNamespace(frontmostApplication=lambda: app)
    return SimpleNamespace(NSWorkspace=SimpleNamespace(sharedWorkspace=lambda: workspace))


def running_app(name="Safari", pid=501, path="/Applications/Safari.app/Contents/MacOS/Safari",
                bundle="com.apple.Safari"):
    return SimpleNamespace(localizedName=lambda: name, processIdentifier=lambda: pid,
                           executableURL=lambda: SimpleNamespace(path=lambda: path),
                           bundleIdentifier=lambda: bundle)


def test_darwin_window_takes_the_frontmost_apps_normal_window_title():
    windows = [
        {"kCGWindowOwnerPID": 88, "kCGWindowLayer": 0, "kCGWindowName": "Other app"},
        {"kCGWindowOwnerPID": 501, "kCGWindowLayer": 25, "kCGWindowName": "Status item"},
        {"kCGWindowOwnerPID": 501, "kCGWindowLayer": 0, "kCGWindowName": "Apple - Start"},
    ]
    backend = window_darwin.open(appkit=fake_appkit(running_app()), quartz=fake_quartz(windows))
    assert backend.active_window() == WindowInfo(
        app="Safari", title="Apple - Start", pid=501,
        exe="/Applications/Safari.app/Contents/MacOS/Safari", aliases=("com.apple.Safari",))


def test_darwin_title_is_blank_without_screen_recording_permission():
    windows = [{"kCGWindowOwnerPID": 501, "kCGWindowLayer": 0}]  # no kCGWindowName
    backend = window_darwin.open(appkit=fake_appkit(running_app()), quartz=fake_quartz(windows))
    assert backend.active_window().title == ""


def test_darwin_no_frontmost_app():
    backend = window_darwin.open(appkit=fake_appkit(None), quartz=fake_quartz([]))
    assert backend.active_window() is None


def test_darwin_idle_and_lock():
    quartz = fake_quartz([], idle_seconds=42.0, locked=True)
    reading = idle_darwin.open(quartz=quartz).read()
    assert (reading.idle_seconds, reading.locked) == (42.0, True)
    assert quartz.calls == [(0, 0xFFFFFFFF)]
    assert idle_darwin.open(quartz=fake_quartz([], locked=None)).read().locked is False


# --- logind, on a fake system bus -------------------------------------------------------


class FakeBus:
    def __init__(self, sessions=None, props=None, fail=()):
        self.sessions = sessions or {}
        self.props = props or {}
        self.fail = set(fail)
        self.calls = []
        self.closed = False

    def call(self, path, interface, method, signature="", args=()):
        self.calls.append(method)
        if method in self.fail:
            raise RuntimeError(f"org.freedesktop.login1.NoSuchSession: {method}")
        if method == "GetSession":
            return (self.sessions[args[0]],)
        if method == "GetSessionByPID":
            return (self.sessions["pid"],)
        if method == "GetUser":
            return ("/org/freedesktop/login1/user/_1000",)
        if method == "Get":
            return (("(so)", ("c2", "/org/freedesktop/login1/session/c2")),)
        if method == "GetAll":
            return (self.props,)
        raise AssertionError(method)

    def close(self):
        self.closed = True


def test_logind_session_is_found_by_xdg_session_id_then_pid_then_user_display():
    bus = FakeBus(sessions={"5": "/org/freedesktop/login1/session/_35", "pid": "/s/pid"})
    assert _logind.find_session(bus, env={"XDG_SESSION_ID": "5"}) == \
        "/org/freedesktop/login1/session/_35"
    assert _logind.find_session(bus, env={}) == "/s/pid"
    lonely = FakeBus(fail={"GetSessionByPID"})
    assert _logind.find_session(lonely, env={}, uid=1000) == "/org/freedesktop/login1/session/c2"
    nowhere = FakeBus(fail={"GetSessionByPID", "GetUser"})
    with pytest.raises(BackendUnavailable, match="no session"):
        _logind.find_session(nowhere, env={})


def test_logind_properties_become_a_reading():
    now = 1_700_000_100.0
    idle_props = {"IdleHint": ("b", True), "IdleSinceHint": ("t", 1_700_000_000_000_000),
                  "LockedHint": ("b", False)}
    assert _logind.parse_session(idle_props, now) == _logind.IdleReading(100.0, False)
    busy = {"IdleHint": ("b", False), "IdleSinceHint": ("t", 1), "LockedHint": ("b", True)}
    assert _logind.parse_session(busy, now) == _logind.IdleReading(0.0, True)
    assert _logind.parse_session({}, now) == _logind.IdleReading(None, None)


def test_logind_backend_reads_and_survives_a_dead_bus():
    props = {"IdleHint": ("b", True), "IdleSinceHint": ("t", 10_000_000), "LockedHint": ("b", True)}
    bus = FakeBus(sessions={"pid": "/s/1"}, props=props)
    backend = _logind.open(bus=bus)
    backend._wall = lambda: 25.0
    assert backend.read() == _logind.IdleReading(15.0, True)
    bus.fail.add("GetAll")
    assert backend.read() == _logind.IdleReading(None, None)
    backend.close()
    assert bus.closed


def test_logind_without_a_system_bus_is_unavailable_with_a_reason(monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/system_bus_socket")
    with pytest.raises(BackendUnavailable, match="system bus"):
        _logind.open()


def test_without_pywayland_the_wayland_backends_name_the_fix(monkeypatch):
    """pywayland is a Linux dependency; where it is missing (an odd platform, a
    broken install) the agent still runs and status says what to install."""
    import sys

    monkeypatch.setitem(sys.modules, "pywayland.client", None)   # import fails
    env = {"WAYLAND_DISPLAY": "wayland-0", "XDG_RUNTIME_DIR": "/nonexistent"}
    _backend, status = window.open_sensor(env=env, platform="linux")
    assert status.backend == "none"
    assert "wlroots: pywayland is not installed" in status.reason
    assert "pip install 'pywayland>=0.4.17,<0.5'" in status.reason
    _backend, status = idle.open_sensor(env=env, platform="linux")
    assert "wayland: pywayland is not installed" in status.reason
