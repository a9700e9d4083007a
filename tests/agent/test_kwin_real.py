"""KDE Plasma for real: a headless KWin 5.27 (Debian 12's kwin_wayland --virtual)
on a private session bus. The agent loads its KWin script through KWin's own
scripting interface (Plasma 5 object paths), and real Wayland windows (zenity,
GTK: foot 1.13 dies on KWin's virtual output, whose physical size is -1 mm) gain
and lose the focus; KWin's ext_idle_notifier_v1 gives idle time. Not covered here:
a title change (no client here retitles itself on KWin; the stand-in test runs the
script's captionChanged path)."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from polling import wait_for
from session_bus import KWin, SessionBusDaemon
from worklens.agent.sensors import _wayland
from worklens.agent.sensors.idle import _wayland as idle_wayland
from worklens.agent.sensors.window import _kde

pytestmark = pytest.mark.system
PROGRAMS = ("kwin_wayland", "dbus-daemon", "gdbus", "zenity")


@pytest.fixture(scope="module")
def kwin():
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install kwin-wayland dbus-daemon "
                    "libglib2.0-bin zenity)")
    with SessionBusDaemon.start() as bus, KWin.start(bus) as kwin:
        yield bus, kwin


def open_window(kwin: KWin, bus: SessionBusDaemon, title: str) -> subprocess.Popen:
    """A GTK window (zenity) titled ``title``, a native Wayland client of this KWin."""
    return subprocess.Popen(["zenity", "--info", "--title", title, "--text", title],
                            env={**kwin.env, **bus.env, "GDK_BACKEND": "wayland"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_the_kwin_script_reports_real_focus_changes(kwin):
    bus, kw = kwin
    window = _kde.open(env=bus.env)
    procs = []
    try:
        assert window.plasma == "5"                 # KWin 5.27: script objects at /<N>

        def seen(title: str):
            return wait_for(lambda: (w := window.active_window()) and w.title == title and w,
                            timeout=30, what=f"the agent to see {title!r} focused")

        procs.append(open_window(kw, bus, "kw report 7e21"))
        info = seen("kw report 7e21")               # a new window gets the focus
        assert (info.app, info.pid, info.aliases) == ("zenity", procs[0].pid, ("zenity",))
        assert info.exe.endswith("/zenity")
        procs.append(open_window(kw, bus, "kw mail 7e21"))
        assert seen("kw mail 7e21").pid == procs[1].pid
        procs[1].terminate()                        # it closes: the focus goes back
        procs[1].wait(10)
        seen("kw report 7e21")
    finally:
        window.close()
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
    scripting = ("gdbus", "call", "--session", "--dest", "org.kde.KWin", "--object-path",
                 "/Scripting", "--method", "org.kde.kwin.Scripting.isScriptLoaded", _kde.PLUGIN)
    out = subprocess.run(scripting, env={**kw.env, **bus.env}, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "(false,)"                # unloaded when the agent stopped


def test_idle_from_kwins_ext_idle_notifier(kwin):
    _bus, kw = kwin
    idle = idle_wayland.open(kw.wayland_display, use_logind=False)
    try:
        assert idle.detail.startswith(_wayland.EXT_IDLE)   # KWin 5.27 offers both: ext wins
        start = time.monotonic()
        wait_for(lambda: idle.read().idle_seconds >= 2.0, timeout=10, what="2 s idle")
        # nobody types: idle since the notification was made, to within its 1 s tick
        assert abs(idle.read().idle_seconds - (time.monotonic() - start)) < 1.0
    finally:
        idle.close()
