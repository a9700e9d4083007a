"""A real X desktop for tests and benchmarks: Xvfb + openbox + xterm windows,
driven with xdotool (see /work/shared/real-desktop.md).

    with Desktop.start() as desk:
        win = desk.open_window("Quarterly report - unique-123")
        desk.activate(win)
        desk.type("hello")

Xvfb picks a free display number itself (``-displayfd``), listens on no TCP
port, and everything started here is stopped on exit. Importable from tests
(``import desktop``: pytest puts ``tests/`` on sys.path) and from benchmarks.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import TypeVar

from polling import wait_for

PROGRAMS = ("Xvfb", "openbox", "xdotool", "xterm")
T = TypeVar("T")


def missing_programs(programs: tuple[str, ...] = PROGRAMS) -> list[str]:
    return [p for p in programs if shutil.which(p) is None]


def unused_display(first: int = 300, last: int = 899) -> str:
    """A display number no X server uses now, for tests that start X *after* a
    client (Xvfb's own ``-displayfd`` choice takes the lowest free numbers, so a
    random high one is unlikely to be taken by a parallel test meanwhile)."""
    import random

    numbers = list(range(first, last + 1))
    random.shuffle(numbers)
    for n in numbers:
        if not (os.path.exists(f"/tmp/.X{n}-lock") or os.path.exists(f"/tmp/.X11-unix/X{n}")):
            return f":{n}"
    raise RuntimeError(f"no free X display number in :{first}..:{last}")


@dataclass
class Window:
    title: str
    wid: int
    proc: subprocess.Popen


@dataclass
class Desktop:
    display: str
    xvfb: subprocess.Popen
    wm: subprocess.Popen | None = None
    windows: list[Window] = field(default_factory=list)

    @classmethod
    def start(cls, window_manager: bool = True, size: str = "1280x800x24",
              display: str | None = None) -> Desktop:
        """A new desktop on a free display (or on ``display``, e.g. from ``unused_display``)."""
        xvfb, number = _launch_xvfb(display, size=size)
        desk = cls(display=f":{number}", xvfb=xvfb)
        if window_manager:
            desk.start_window_manager()
        return desk

    def restart_x(self, window_manager: bool = True) -> None:
        """A new X server on the same display number (after ``kill_x`` or ``stop``)."""
        self.stop()
        self.xvfb, _number = _launch_xvfb(self.display)
        if window_manager:
            self.start_window_manager()

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DISPLAY"] = self.display
        env.pop("WAYLAND_DISPLAY", None)
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 30.0) -> str:
        """Run an X client (xdotool, xprop...) against this display; its stdout."""
        done = subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def start_window_manager(self) -> None:
        self.wm = subprocess.Popen(["openbox", "--sm-disable"], env=self.env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: "_NET_SUPPORTING_WM_CHECK(WINDOW)" in
                 self.run("xprop", "-root", "_NET_SUPPORTING_WM_CHECK", check=False),
                 what="openbox to manage the display")

    def open_window(self, title: str, wm_class: str | None = None,
                    program: tuple[str, ...] = ("cat",)) -> Window:
        """An xterm titled ``title`` running ``program`` (default: ``cat``, so typed
        text is consumed and the title never changes), mapped and ready."""
        args = ["xterm", "-T", title, "-geometry", "80x20+40+40"]
        if wm_class:
            args += ["-class", wm_class]
        proc = subprocess.Popen([*args, "-e", *program], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wid = wait_for(lambda: self.find_window(title), what=f"window {title!r}")
        win = Window(title, wid, proc)
        self.windows.append(win)
        return win

    def find_window(self, title: str) -> int:
        out = self.run("xdotool", "search", "--onlyvisible", "--name", f"^{_regex(title)}$",
                       check=False)
        ids = [int(line) for line in out.split()]
        return ids[0] if ids else 0

    def activate(self, win: Window) -> None:
        self.run("xdotool", "windowactivate", "--sync", str(win.wid))
        wait_for(lambda: self.active_window_id() == win.wid, what=f"{win.title!r} focused")

    def active_window_id(self) -> int:
        out = self.run("xdotool", "getactivewindow", check=False).strip()
        return int(out) if out.isdigit() else 0

    def type(self, text: str, delay_ms: int = 12) -> None:
        self.run("xdotool", "type", "--delay", str(delay_ms), text)

    def move_mouse(self, x: int, y: int) -> None:
        self.run("xdotool", "mousemove", str(x), str(y))

    def click(self, button: int = 1) -> None:
        self.run("xdotool", "click", str(button))

    def close_window(self, win: Window) -> None:
        _stop(win.proc)
        self.windows = [w for w in self.windows if w is not win]

    def kill_x(self) -> None:
        """Kill the X server outright (as a crash would)."""
        self.xvfb.kill()
        self.xvfb.wait(timeout=10)

    def stop(self) -> None:
        for win in self.windows:
            _stop(win.proc)
        self.windows.clear()
        if self.wm is not None:
            _stop(self.wm)
        _stop(self.xvfb)

    def __enter__(self) -> Desktop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _launch_xvfb(display: str | None = None, size: str = "1280x800x24"
                 ) -> tuple[subprocess.Popen, int]:
    """Start Xvfb (on a free display unless one is given); return once it accepts clients."""
    read_fd, write_fd = os.pipe()
    args = ["Xvfb", *([display] if display else []), "-displayfd", str(write_fd),
            "-nolisten", "tcp", "-screen", "0", size, "-noreset"]
    xvfb = subprocess.Popen(args, pass_fds=(write_fd,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        return xvfb, _read_display_number(read_fd, xvfb)
    finally:
        os.close(read_fd)


def _read_display_number(fd: int, xvfb: subprocess.Popen, timeout: float = 30.0) -> int:
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        if xvfb.poll() is not None:
            raise RuntimeError(f"Xvfb exited with {xvfb.returncode} before it was ready")
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            xvfb.kill()
            raise TimeoutError("Xvfb did not report its display number")
        chunk = os.read(fd, 64)
        if not chunk:
            raise RuntimeError("Xvfb closed its display fd without a number")
        data += chunk
    return int(data.strip())


def _regex(text: str) -> str:
    import re

    return re.escape(text)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
