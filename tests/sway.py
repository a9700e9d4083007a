"""A real Wayland desktop for tests and benchmarks: a headless sway (wlroots)
with foot terminals, focus moved with swaymsg, typing with wtype (see
/work/shared/real-desktop.md).

    with Sway.start() as desk:
        desk.open_window("Quarterly report - unique-123")
        desk.focus("Quarterly report - unique-123")
        desk.type("hello")

Compositors refuse to run as root. As root, everything here (sway, its
clients, and whatever ``desk.command(...)`` wraps, e.g. the agent) runs as an
ordinary user, ``USER`` (created with ``useradd`` when missing), through
``setpriv`` (which execs: the pid a test holds is the program's own). Each
desktop has a private ``XDG_RUNTIME_DIR`` (0700, owned by that user) and
``work`` directory the user can write (e.g. the agent's data dir); both are
removed on exit. As an ordinary user, the same without the user switch.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from polling import wait_for

PROGRAMS = ("sway", "swaymsg", "foot", "wtype")
USER = "worklens-wl"
CONFIG = "xwayland disable\noutput HEADLESS-1 resolution 1280x800\n"


def missing_programs(programs: tuple[str, ...] = PROGRAMS) -> list[str]:
    return [p for p in programs if shutil.which(p) is None]


def desktop_user() -> pwd.struct_passwd:
    """The user sway runs as: this one, or (as root) ``USER``, created if missing."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", USER], check=True, capture_output=True)
        return pwd.getpwnam(USER)


def python_for(user: pwd.struct_passwd) -> tuple[str, str] | None:
    """A Python ``user`` can run with this project and its packages importable:
    (interpreter, code to run first), or None if there is none.

    This interpreter when the user can run it. A venv made from a Python under
    /root (pyenv, as root) is not readable by anyone else, though its
    site-packages under the work tree are: then the system's Python of the same
    version runs with those site directories added (same ABI, same packages)."""
    probe = "import worklens.agent, pywayland"
    if _runs(user, [sys.executable, "-c", probe]):
        return sys.executable, ""
    system = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}",
                          path="/usr/bin:/usr/local/bin")
    if system is None:
        return None
    import site

    dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    preamble = f"import site; [site.addsitedir(d) for d in {dirs!r}]; "
    return (system, preamble) if _runs(user, [system, "-c", preamble + probe]) else None


def agent_argv(python: tuple[str, str], *args: str) -> list[str]:
    """``worklens-agent ARGS`` through ``python`` (from ``python_for``)."""
    interpreter, preamble = python
    return [interpreter, "-c", preamble + "from worklens.agent.cli import main; main()", *args]


def _runs(user: pwd.struct_passwd, argv: list[str]) -> bool:
    done = subprocess.run([*as_user(user), *argv], cwd="/", capture_output=True,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                          timeout=60, check=False)
    return done.returncode == 0


def as_user(user: pwd.struct_passwd) -> list[str]:
    if os.geteuid() == user.pw_uid:
        return []
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            "--"]


@dataclass
class Sway:
    user: pwd.struct_passwd
    runtime_dir: Path
    work: Path
    sway: subprocess.Popen
    wayland_display: str = ""
    sway_socket: str = ""
    clients: list[subprocess.Popen] = field(default_factory=list)
    python: tuple[str, str] | None = None      # set by a test: see python_for

    @classmethod
    def start(cls) -> Sway:
        user = desktop_user()
        base = Path(tempfile.mkdtemp(prefix="worklens-sway-"))
        os.chmod(base, 0o755)
        runtime, work = base / "rt", base / "work"
        runtime.mkdir(mode=0o700)
        work.mkdir(mode=0o755)
        (base / "sway.cfg").write_text(CONFIG)
        for path in (runtime, work):
            os.chown(path, user.pw_uid, user.pw_gid)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work),
               "XDG_RUNTIME_DIR": str(runtime), "WLR_BACKENDS": "headless",
               "WLR_LIBINPUT_NO_DEVICES": "1", "WLR_RENDERER": "pixman"}
        log = open(base / "sway.log", "wb")  # noqa: SIM115 (kept open for sway's life)
        proc = subprocess.Popen([*as_user(user), "sway", "-c", str(base / "sway.cfg")],
                                env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        desk = cls(user, runtime, work, proc)
        try:
            desk._wait_ready(base / "sway.log")
        except BaseException:
            desk.stop()
            raise
        return desk

    def _wait_ready(self, log: Path) -> None:
        def sockets() -> bool:
            if self.sway.poll() is not None:
                raise RuntimeError(f"sway exited ({self.sway.returncode}): "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            names = os.listdir(self.runtime_dir)
            displays = [n for n in names if n.startswith("wayland-") and not n.endswith(".lock")]
            ipc = [n for n in names if n.startswith("sway-ipc.")]
            if displays and ipc:
                self.wayland_display = displays[0]
                self.sway_socket = str(self.runtime_dir / ipc[0])
                return True
            return False

        wait_for(sockets, what="sway's Wayland and IPC sockets")
        wait_for(lambda: self.msg("-t", "get_version", check=False), what="sway's IPC")

    @property
    def env(self) -> dict[str, str]:
        """The session environment of a program in this desktop (no X: ``DISPLAY`` unset)."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS")}
        env.update(HOME=str(self.work), XDG_RUNTIME_DIR=str(self.runtime_dir),
                   WAYLAND_DISPLAY=self.wayland_display, SWAYSOCK=self.sway_socket)
        return env

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` as this desktop's user runs it."""
        return [*as_user(self.user), *argv]

    def agent(self, *args: str) -> list[str]:
        """``worklens-agent ARGS`` as the desktop's user (or, when that user cannot read
        this project, ``python`` is None: as this process's user, in the same session)."""
        if self.python is None:
            return [sys.executable, "-m", "worklens.agent", *args]
        return self.command(agent_argv(self.python, *args))

    def msg(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(self.command(["swaymsg", *args]), env=self.env, cwd="/",
                              capture_output=True, text=True, timeout=30, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"swaymsg {' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done.stdout if done.returncode == 0 else ""

    def windows(self) -> list[dict]:
        """Every application window in sway's tree (name = title, app_id, focused)."""
        found: list[dict] = []

        def walk(node: dict) -> None:
            if node.get("type") == "con" and node.get("app_id") is not None:
                found.append(node)
            for child in node.get("nodes", []) + node.get("floating_nodes", []):
                walk(child)

        walk(json.loads(self.msg("-t", "get_tree")))
        return found

    def focused_title(self) -> str:
        return next((w["name"] for w in self.windows() if w.get("focused")), "")

    def open_window(self, title: str) -> subprocess.Popen:
        """A foot terminal titled ``title`` running ``cat`` (typed text is consumed and
        the title never changes), mapped and ready."""
        proc = subprocess.Popen(self.command(["foot", "--title", title, "cat"]), env=self.env,
                                cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.clients.append(proc)
        wait_for(lambda: any(w["name"] == title for w in self.windows()),
                 what=f"window {title!r}")
        return proc

    def focus(self, title: str) -> None:
        self.msg(f'[title="^{_regex(title)}$"] focus')
        wait_for(lambda: self.focused_title() == title, what=f"{title!r} focused")

    def type(self, text: str, delay_ms: int = 12) -> None:
        """Type through the virtual-keyboard protocol (wtype); waits until done."""
        subprocess.run(self.command(["wtype", "-d", str(delay_ms), text]), env=self.env,
                       cwd="/", check=True, timeout=120, capture_output=True)

    def stop(self) -> None:
        for proc in self.clients:
            _stop(proc)
        self.clients.clear()
        _stop(self.sway)
        shutil.rmtree(self.runtime_dir.parent, ignore_errors=True)

    def __enter__(self) -> Sway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def agent_desktop() -> Iterator[Sway]:
    """A fixture's body: a sway desktop the agent can run in as the desktop's user
    (skips without sway's programs)."""
    import warnings

    import pytest

    missing = missing_programs()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install sway foot wtype)")
    desk = Sway.start()
    desk.python = python_for(desk.user)
    if desk.python is None:     # e.g. a clone under /root: the agent runs as root instead
        warnings.warn(f"user {desk.user.pw_name} cannot read this project and its venv: the "
                      "agent runs as this process's user in the sway session instead",
                      stacklevel=1)
    try:
        yield desk
    finally:
        desk.stop()


def _regex(text: str) -> str:
    import re

    return re.escape(text).replace('"', '\\"')


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
