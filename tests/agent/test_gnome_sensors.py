"""GNOME: the idle path against a real headless Mutter on a real session bus; the
focused-window path (the project's GNOME Shell extension) against a stand-in
exporting the extension's interface on a real session bus."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
from dbus_standins import GNOME_EXTENSION, GnomeExtensionStandIn, interface_of
from polling import wait_for
from session_bus import Mutter, SessionBusDaemon
from worklens.agent.sensors import BackendUnavailable, describe
from worklens.agent.sensors.idle import _gnome
from worklens.agent.sensors.window import _gnome as window_gnome

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def mutter_session():
    missing = [p for p in ("mutter", "dbus-daemon", "gdbus") if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install mutter dbus-daemon "
                    "libglib2.0-bin)")
    with SessionBusDaemon.start() as bus, Mutter.start(bus) as mutter:
        yield bus, mutter


def mutters_own_idletime(bus) -> float:
    out = subprocess.run(["gdbus", "call", "--session", "--dest", _gnome.IDLE_MONITOR,
                          "--object-path", _gnome.IDLE_MONITOR_PATH, "--method",
                          f"{_gnome.IDLE_MONITOR}.GetIdletime"],
                         env=bus.env | {"PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip("()\n,").split()[1]) / 1000.0      # "(uint64 4811,)"


def test_idle_time_is_mutters_own_counter(mutter_session):
    bus, _mutter = mutter_session
    idle = _gnome.open(env=bus.env, use_logind=False)
    try:
        first = idle.read().idle_seconds
        assert abs(first - mutters_own_idletime(bus)) < 0.5
        time.sleep(1.0)
        second = idle.read()
        # headless: nobody types, so the counter only grows, by the time that passed
        assert 0.8 <= second.idle_seconds - first <= 1.5
        assert second.locked is None      # Mutter alone: no GNOME Shell lock screen, no logind
        assert "unknown" in idle.detail
    finally:
        idle.close()


def test_on_mutter_the_order_picks_gnome_idle_and_says_why_not_wayland(mutter_session,
                                                                        monkeypatch):
    from sensor_support import make_config

    bus, mutter = mutter_session
    monkeypatch.setenv("WAYLAND_DISPLAY", mutter.wayland_display)
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus.address)
    for name in ("DISPLAY", "WORKLENS_WINDOW_BACKEND", "WORKLENS_IDLE_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    statuses = {s.name: s for s in describe(make_config())}
    assert (statuses["idle"].backend, statuses["idle"].available) == ("gnome", True)
    assert "not used: wayland: the compositor offers neither ext_idle_notifier_v1" \
        in statuses["idle"].reason
    window = statuses["window"]          # no extension running on a bare Mutter
    assert (window.backend, window.available) == ("none", False)
    assert "wlroots: the compositor does not offer zwlr_foreign_toplevel_manager_v1" \
        in window.reason
    assert "gnome:" in window.reason and "gnome-extensions enable" in window.reason


def test_without_mutter_the_backend_is_unavailable_and_says_so():
    with SessionBusDaemon.start() as bus, pytest.raises(Exception, match="not GNOME"):
        _gnome.open(env=bus.env, use_logind=False)


# --- the GNOME Shell extension's reader, against a stand-in on a real session bus ----
# (gnome-shell cannot run here: Debian 12 has GNOME Shell 43, the extension is for 45+)

@pytest.fixture
def bus():
    if shutil.which("dbus-daemon") is None:
        pytest.skip("needs dbus-daemon (apt-get install dbus-daemon)")
    with SessionBusDaemon.start() as daemon:
        yield daemon


def test_reads_the_extensions_focus_and_follows_its_signal(bus):
    shell = GnomeExtensionStandIn(bus.env)
    shell.focus("org.gnome.TextEditor", "Budget notes - Text Editor", os.getpid())
    window = window_gnome.open(env=bus.env)
    try:
        info = window.active_window()
        assert (info.title, info.pid, info.aliases) == \
            ("Budget notes - Text Editor", os.getpid(), ("org.gnome.TextEditor",))
        assert info.app and info.exe       # from the pid, through psutil (this process here)
        asked = shell.calls
        shell.focus("firefox", "Inbox - Mozilla Firefox", 0)
        info = wait_for(lambda: (w := window.active_window()) and w.title.startswith("Inbox")
                        and w, timeout=5, what="the Changed signal")
        assert (info.app, info.pid, info.exe) == ("firefox", 0, "")   # no pid: the class
        for _ in range(5):
            window.active_window()
        assert shell.calls == asked          # followed by signal: no call per sample
        shell.focus("", "", 0)               # nothing focused
        wait_for(lambda: window.active_window() is None, timeout=5, what="no focus")
    finally:
        window.close()
        shell.stop()


def test_a_restarted_gnome_shell_is_asked_again(bus):
    shell = GnomeExtensionStandIn(bus.env)
    shell.focus("org.gnome.Nautilus", "Home", 0)
    window = window_gnome.open(env=bus.env)
    try:
        assert window.active_window().title == "Home"
        shell.stop()
        wait_for(lambda: window.active_window() is None, timeout=5, what="the name to go")
        shell.current = ("org.gnome.Terminal", "build log", 0)
        shell.start()
        wait_for(lambda: (w := window.active_window()) and w.title == "build log",
                 timeout=5, what="the restarted shell asked again")
    finally:
        window.close()
        shell.stop()


def test_without_the_extension_the_fix_is_named(bus):
    with pytest.raises(BackendUnavailable, match=r"gnome-extensions enable focus@worklens\.org"):
        window_gnome.open(env=bus.env)


def test_the_shipped_extension_matches_what_the_agent_reads():
    metadata = json.loads((GNOME_EXTENSION / "metadata.json").read_text())
    assert metadata["uuid"] == window_gnome.EXTENSION_UUID == GNOME_EXTENSION.name
    assert metadata["shell-version"] == ["45", "46", "47", "48", "49"]
    source = (GNOME_EXTENSION / "extension.js").read_text()
    for constant in (window_gnome.BUS_NAME, window_gnome.OBJECT_PATH,
                     "org.worklens.FocusedWindow1.xml", "notify::focus-window",
                     "notify::title", "emit_signal('Changed'"):
        assert constant in source, constant
    name, methods, signals = interface_of(GNOME_EXTENSION / "org.worklens.FocusedWindow1.xml")
    assert (name, methods, signals) == \
        (window_gnome.INTERFACE, {"Get": "ssu"}, {"Changed": "ssu"})


def test_both_extension_builds_share_one_body():
    """GNOME 42-44 and 45+ differ in module format only: the class is the same line
    for line, so the real GNOME Shell 43 test of one covers the other's logic."""
    root = GNOME_EXTENSION.parent

    def body(uuid: str) -> list[str]:
        lines = (root / uuid / "extension.js").read_text().splitlines()
        start = next(i for i, line in enumerate(lines) if "class WorklensFocusExtension" in line)
        end = lines.index("}", start)
        return [line.replace("this.dir", "Me.dir") for line in lines[start + 1:end]]

    assert body("focus@worklens.org") == body("focus-legacy@worklens.org")
    assert (root / "focus@worklens.org" / "org.worklens.FocusedWindow1.xml").read_text() == \
        (root / "focus-legacy@worklens.org" / "org.worklens.FocusedWindow1.xml").read_text()
    legacy = json.loads((root / "focus-legacy@worklens.org" / "metadata.json").read_text())
    assert legacy["shell-version"] == ["42", "43", "44"]
