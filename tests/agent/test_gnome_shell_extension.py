"""The project's GNOME Shell extension for real: a headless GNOME Shell (Debian 12:
GNOME Shell 43, so the 42-44 build, focus-legacy@worklens.org, whose class is the
45+ build's line for line: test_gnome_sensors.py checks that), enabled by the
package's own dconf default, with real foot windows focused the way a click does
(``activate`` through org.gnome.Shell.Eval); the agent's reader follows it over a
real session bus."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from polling import wait_for
from session_bus import GnomeShell, SessionBusDaemon
from worklens.agent.sensors.window import _gnome as window_gnome

pytestmark = pytest.mark.system
PROGRAMS = ("gnome-shell", "dbus-daemon", "gdbus", "dconf", "foot")


@pytest.fixture(scope="module")
def gnome():
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install gnome-shell dbus-daemon "
                    "libglib2.0-bin dconf-cli foot)")
    with SessionBusDaemon.start() as bus, GnomeShell.start(bus) as shell:
        yield bus, shell


def open_foot(shell: GnomeShell, title: str, rename_when: str = "", renamed: str = ""):
    """A foot window titled ``title``; once the file ``rename_when`` exists, the
    program in it sets the window title to ``renamed`` (an OSC 2 sequence)."""
    script = "exec cat"
    if rename_when:
        script = (f'while [ ! -e "{rename_when}" ]; do sleep 0.1; done; '
                  f'printf "\\033]2;%s\\007" "{renamed}"; exec cat')
    return subprocess.Popen(["foot", "--title", title, "sh", "-c", script], env=shell.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_focus_changes_and_title_changes_reach_the_agent(gnome):
    bus, shell = gnome
    flag = shell.home / "rename-now"
    report = open_foot(shell, "gs report 41ab")
    mail = open_foot(shell, "gs mail 41ab", rename_when=str(flag), renamed="gs mail (2) 41ab")
    window = window_gnome.open(env=bus.env)
    try:
        def focus(title: str):
            """Activate ``title`` (again, until the agent sees it: a window activated
            before its first frame is shown may not keep the focus)."""
            def attempt():
                if not shell.activate(bus, title):
                    return None                   # not mapped yet
                try:
                    return wait_for(lambda: (w := window.active_window()) and
                                    w.title == title and w, timeout=2, interval=0.05,
                                    what=f"the agent to see {title!r}")
                except AssertionError:
                    return None
            return wait_for(attempt, timeout=30, what=f"{title!r} focused and seen")

        info = focus("gs report 41ab")
        assert (info.app, info.pid, info.aliases) == ("foot", report.pid, ("foot",))
        assert info.exe.endswith("/foot")
        info = focus("gs mail 41ab")
        assert info.pid == mail.pid
        flag.touch()                       # the focused window renames itself
        wait_for(lambda: (w := window.active_window()) and w.title == "gs mail (2) 41ab",
                 timeout=10, what="the new title through the Changed signal")
        mail.terminate()                   # the focused window closes
        mail.wait(10)
        wait_for(lambda: (w := window.active_window()) is None or w.pid != mail.pid,
                 timeout=10, what="the closed window to lose the focus")
    finally:
        window.close()
        for proc in (report, mail):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)


def test_the_shipped_dconf_default_is_what_enabled_it(gnome):
    bus, shell = gnome
    out = shell.eval(bus, "JSON.stringify(global.settings.get_strv('enabled-extensions'))")
    assert "focus@worklens.org" in out and "focus-legacy@worklens.org" in out
    # GNOME Shell 43 loads the 42-44 build only; the 45+ build is left alone
    state = shell.eval(bus, "JSON.stringify(['focus-legacy@worklens.org', 'focus@worklens.org']"
                       ".map(u => Main.extensionManager.lookup(u)?.state))")
    assert state.split("'")[1] == '"[1,4]"', state    # ENABLED, OUT_OF_DATE (GNOME 43)
