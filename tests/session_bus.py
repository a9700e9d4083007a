"""A private D-Bus session bus (a real ``dbus-daemon``) and a real headless Mutter
on it, for tests of the GNOME and KDE paths (see /work/shared/real-desktop.md).

    with SessionBusDaemon.start() as bus:      # bus.env: DBUS_SESSION_BUS_ADDRESS
        with Mutter.start(bus) as mutter:      # org.gnome.Mutter.IdleMonitor on it
            ...
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from polling import wait_for


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class SessionBusDaemon:
    proc: subprocess.Popen
    address: str

    @classmethod
    def start(cls) -> SessionBusDaemon:
        if shutil.which("dbus-daemon") is None:
            raise FileNotFoundError("dbus-daemon (apt-get install dbus-daemon)")
        proc = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile",
                                 "--print-address=1"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        address = proc.stdout.readline().strip()
        if not address:
            _stop(proc)
            raise RuntimeError("dbus-daemon printed no address")
        return cls(proc, address)

    @property
    def env(self) -> dict[str, str]:
        return {"DBUS_SESSION_BUS_ADDRESS": self.address}

    def stop(self) -> None:
        _stop(self.proc)

    def __enter__(self) -> SessionBusDaemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Mutter:
    proc: subprocess.Popen
    runtime_dir: Path

    @classmethod
    def start(cls, bus: SessionBusDaemon) -> Mutter:
        runtime = Path(tempfile.mkdtemp(prefix="worklens-mutter-"))
        env = {**os.environ, **bus.env, "XDG_RUNTIME_DIR": str(runtime)}
        for name in ("DISPLAY", "WAYLAND_DISPLAY"):
            env.pop(name, None)
        proc = subprocess.Popen(["mutter", "--headless", "--wayland", "--no-x11",
                                 "--virtual-monitor", "1280x800"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        mutter = cls(proc, runtime)
        check = {**os.environ, **bus.env}

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"mutter exited with {proc.returncode}")
            done = subprocess.run(["gdbus", "call", "--session", "--dest",
                                   "org.freedesktop.DBus", "--object-path",
                                   "/org/freedesktop/DBus", "--method",
                                   "org.freedesktop.DBus.NameHasOwner",
                                   "org.gnome.Mutter.IdleMonitor"],
                                  env=check, capture_output=True, text=True, check=False)
            return "true" in done.stdout and (runtime / "wayland-0").exists()

        try:
            wait_for(ready, what="mutter's IdleMonitor on the session bus")
        except BaseException:
            mutter.stop()
            raise
        return mutter

    @property
    def wayland_display(self) -> str:
        return str(self.runtime_dir / "wayland-0")

    def stop(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def __enter__(self) -> Mutter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


EXTENSIONS = Path(__file__).resolve().parents[1] / "packaging/linux/gnome-shell-extension"
DCONF_DEFAULT = Path(__file__).resolve().parents[1] / "packaging/linux/agent/dconf-worklens-agent"


@dataclass
class GnomeShell:
    """A real headless GNOME Shell on ``bus``, with the project's extensions installed
    (as a user's, under a private XDG_DATA_HOME) and enabled the way the package
    enables them: the shipped dconf default, compiled into a database that the
    session's dconf profile reads. GNOME Shell needs a system bus (logind): a private
    one stands in, with no services on it."""

    proc: subprocess.Popen
    home: Path
    system_bus: SessionBusDaemon

    @classmethod
    def start(cls, bus: SessionBusDaemon) -> GnomeShell:
        home = Path(tempfile.mkdtemp(prefix="worklens-gnome-"))
        runtime, data, keyfiles = home / "rt", home / "data", home / "dconf.d"
        runtime.mkdir(mode=0o700)
        shutil.copytree(EXTENSIONS, data / "gnome-shell" / "extensions")
        keyfiles.mkdir()
        shutil.copy(DCONF_DEFAULT, keyfiles / "50-worklens-agent")
        subprocess.run(["dconf", "compile", str(home / "worklens.db"), str(keyfiles)],
                       check=True, capture_output=True)
        (home / "profile").write_text(f"user-db:user\nfile-db:{home / 'worklens.db'}\n")
        system_bus = SessionBusDaemon.start()
        env = {**os.environ, **bus.env, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime),
               "XDG_DATA_HOME": str(data), "XDG_CONFIG_HOME": str(home / "config"),
               "DCONF_PROFILE": str(home / "profile"),
               "DBUS_SYSTEM_BUS_ADDRESS": system_bus.address}
        for name in ("DISPLAY", "WAYLAND_DISPLAY"):
            env.pop(name, None)
        log = open(home / "gnome-shell.log", "wb")  # noqa: SIM115 (kept for the shell's life)
        # --unsafe-mode: org.gnome.Shell.Eval, the test's way to move the focus
        proc = subprocess.Popen(["gnome-shell", "--headless", "--wayland", "--no-x11",
                                 "--virtual-monitor", "1280x800", "--unsafe-mode"],
                                env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        shell = cls(proc, home, system_bus)
        try:
            wait_for(lambda: shell._owned("org.worklens.FocusedWindow", bus), timeout=90,
                     what="GNOME Shell with the Worklens extension on the session bus")
        except BaseException:
            shell.stop()
            raise
        return shell

    def _owned(self, name: str, bus: SessionBusDaemon) -> bool:
        if self.proc.poll() is not None:
            log = (self.home / "gnome-shell.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"gnome-shell exited with {self.proc.returncode}: {log}")
        done = subprocess.run(["gdbus", "call", "--session", "--dest", "org.freedesktop.DBus",
                               "--object-path", "/org/freedesktop/DBus", "--method",
                               "org.freedesktop.DBus.NameHasOwner", name],
                              env={**os.environ, **bus.env}, capture_output=True, text=True,
                              check=False)
        return "true" in done.stdout

    def eval(self, bus: SessionBusDaemon, code: str) -> str:
        """Run JavaScript inside GNOME Shell (org.gnome.Shell.Eval, unsafe mode only)."""
        done = subprocess.run(["gdbus", "call", "--session", "--dest", "org.gnome.Shell",
                               "--object-path", "/org/gnome/Shell", "--method",
                               "org.gnome.Shell.Eval", code], env={**os.environ, **bus.env},
                              capture_output=True, text=True, check=True)
        if not done.stdout.startswith("(true,"):
            raise RuntimeError(f"Eval failed: {done.stdout}")
        return done.stdout

    def activate(self, bus: SessionBusDaemon, title: str) -> bool:
        """Give the window titled ``title`` the focus, as a click on it would."""
        out = self.eval(bus, "(() => { const w = global.get_window_actors().map(a => "
                        f"a.meta_window).find(w => w.get_title() === {json.dumps(title)}); "
                        "if (w) w.activate(global.get_current_time()); return !!w; })()")
        return "'true'" in out

    @property
    def env(self) -> dict[str, str]:
        """For Wayland clients of this shell (foot)."""
        return {**os.environ, "XDG_RUNTIME_DIR": str(self.home / "rt"),
                "WAYLAND_DISPLAY": "wayland-0", "HOME": str(self.home)}

    def stop(self) -> None:
        _stop(self.proc)
        self.system_bus.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> GnomeShell:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class KWin:
    """A real headless KWin (``kwin_wayland --virtual``) on ``bus``: Plasma's window
    manager with its scripting interface on the session bus and its Wayland socket
    (``wayland_display``) for clients. kwin_wayland carries a file capability
    (cap_sys_resource) that a container may not grant, which makes exec fail: a
    copy without it runs here."""

    proc: subprocess.Popen
    home: Path

    @classmethod
    def start(cls, bus: SessionBusDaemon) -> KWin:
        program = shutil.which("kwin_wayland")
        if program is None:
            raise FileNotFoundError("kwin_wayland (apt-get install kwin-wayland)")
        home = Path(tempfile.mkdtemp(prefix="worklens-kwin-"))
        (home / "rt").mkdir(mode=0o700)
        copy = home / "kwin_wayland"
        shutil.copy(program, copy)           # the copy has no file capabilities
        env = {**os.environ, **bus.env, "HOME": str(home), "XDG_RUNTIME_DIR": str(home / "rt"),
               "XDG_CONFIG_HOME": str(home / "config")}
        for name in ("DISPLAY", "WAYLAND_DISPLAY"):
            env.pop(name, None)
        log = open(home / "kwin.log", "wb")  # noqa: SIM115 (kept for KWin's life)
        proc = subprocess.Popen([str(copy), "--virtual", "--socket", "wayland-kwin",
                                 "--width", "1280", "--height", "800", "--scale", "1"],
                                env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        kwin = cls(proc, home)

        def ready() -> bool:
            if proc.poll() is not None:
                text = (home / "kwin.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"kwin_wayland exited with {proc.returncode}: {text}")
            done = subprocess.run(["gdbus", "call", "--session", "--dest",
                                   "org.freedesktop.DBus", "--object-path",
                                   "/org/freedesktop/DBus", "--method",
                                   "org.freedesktop.DBus.NameHasOwner", "org.kde.KWin"],
                                  env={**os.environ, **bus.env}, capture_output=True,
                                  text=True, check=False)
            return "true" in done.stdout and (home / "rt" / "wayland-kwin").exists()

        try:
            wait_for(ready, timeout=90, what="KWin on the session bus and its Wayland socket")
        except BaseException:
            kwin.stop()
            raise
        return kwin

    @property
    def wayland_display(self) -> str:
        return str(self.home / "rt" / "wayland-kwin")

    @property
    def env(self) -> dict[str, str]:
        """For Wayland clients of this KWin (foot)."""
        return {**os.environ, "XDG_RUNTIME_DIR": str(self.home / "rt"),
                "WAYLAND_DISPLAY": "wayland-kwin", "HOME": str(self.home)}

    def stop(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> KWin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
