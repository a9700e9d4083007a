"""A private D-Bus session bus (a real ``dbus-daemon``) and a real headless Mutter
on it, for tests of the GNOME and KDE paths (see /work/shared/real-desktop.md).

    with SessionBusDaemon.start() as bus:      # bus.env: DBUS_SESSION_BUS_ADDRESS
        with Mutter.start(bus) as mutter:      # org.gnome.Mutter.IdleMonitor on it
            ...
"""

from __future__ import annotations

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
