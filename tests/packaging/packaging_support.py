"""Helpers for the packaging tests: build the packages once, and a throwaway
Debian root (debootstrap, cached) to install them into for real.

A root is a minimal Debian (``debootstrap --variant=minbase``, plus Debian's
systemd package so that ``systemctl --global enable`` and ``systemd-analyze
verify`` run against the target's own systemd). It has no Python at all, so
whatever runs in it proves the bundles are self-contained. Commands run in it
chrooted in one private mount namespace per root that has the root's own /proc
(psutil and the maintainer scripts read it); the mounts vanish with the
namespace, so nothing is left mounted when a test dies.
"""

from __future__ import annotations

import ctypes
import fcntl
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist"
CACHE = REPO / "build" / "debroot"
# What a desktop user's session gives a program, and nothing that could find a Python.
SESSION_PATH = "/usr/local/bin:/usr/bin:/bin"
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
T = TypeVar("T")


# -- the packages -------------------------------------------------------------------------

@dataclass(frozen=True)
class Packages:
    """One build's four package files."""

    version: str
    agent_deb: Path
    collector_deb: Path
    agent_rpm: Path
    collector_rpm: Path


def package_set(version: str, out: Path) -> Packages:
    # packaging/build.py names the files; loaded by path: `build` is also a PyPI name.
    spec = importlib.util.spec_from_file_location("worklens_packaging_build",
                                                  REPO / "packaging" / "build.py")
    packaging_build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(packaging_build)
    path = packaging_build.package_path
    return Packages(version, path("agent", "deb", version, out),
                    path("collector", "deb", version, out),
                    path("agent", "rpm", version, out), path("collector", "rpm", version, out))


def python_version() -> str:
    out = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c",
                          "import importlib.metadata as m; print(m.version('worklens'))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def make_package(timeout: float = 1500) -> Packages:
    """``make package`` exactly as a developer or CI runs it."""
    env = {k: v for k, v in os.environ.items() if k != "WORKLENS_PKG_VERSION"}
    done = subprocess.run(["make", "package"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"make package failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return package_set(python_version(), DIST)


def rebuild_packages(version: str, out: Path, timeout: float = 600) -> Packages:
    """The same bundles packaged again as another version (the upgrade target)."""
    subprocess.run([str(REPO / ".venv" / "bin" / "python"), str(REPO / "packaging" / "build.py"),
                    "packages", "--version", version, "--out", str(out)],
                   cwd=REPO, check=True, capture_output=True, timeout=timeout)
    return package_set(version, out)


# -- the throwaway Debian root ------------------------------------------------------------

def host_suite() -> str:
    """The Debian release to bootstrap: the host's own (CI runs on the same kind)."""
    text = Path("/etc/os-release").read_text()
    found = re.search(r"^VERSION_CODENAME=(\w+)", text, re.M)
    return found.group(1) if found else "bookworm"


def missing_root_tools() -> list[str]:
    return [t for t in ("debootstrap", "unshare", "chroot", "mount", "dpkg-deb")
            if shutil.which(t) is None] + ([] if os.geteuid() == 0 else ["root privileges"])


def cached_root_tarball(timeout: float = 900) -> Path:
    """A minbase Debian root with systemd, bootstrapped once and kept under build/."""
    suite = host_suite()
    tarball = CACHE / f"{suite}-minbase-systemd.tar"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)         # one bootstrap even for parallel sessions
        if tarball.exists():
            return tarball
        staging = CACHE / f"{suite}-staging"
        shutil.rmtree(staging, ignore_errors=True)
        done = subprocess.run(["debootstrap", "--variant=minbase", "--include=systemd",
                               suite, str(staging)], capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(staging), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
        shutil.rmtree(staging, ignore_errors=True)
        return tarball


_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNS = 0x00020000

# Holds the root's mount namespace: the root's own /proc, and the host's X
# sockets (for a bundled agent on a real display). It lives as long as its
# stdin, so the namespace and its mounts vanish even if pytest is killed.
_HOLDER = """
mount -t proc proc "$0/proc" || exit 1
if [ -d /tmp/.X11-unix ]; then
    mkdir -p "$0/tmp/.X11-unix" && mount --bind /tmp/.X11-unix "$0/tmp/.X11-unix" || exit 1
fi
echo ready
exec head -c1
"""


def _enter_root(root: Path, namespace: str, ids: tuple[int, int] | None) -> Callable[[], None]:
    """Run in the child between fork and exec: join the root's mount namespace,
    chroot, drop to a user. Every program of one root shares that namespace, as
    programs on a real machine share one, so /proc/PID/exe reads the same for
    all of them (the agent's prerm finds running agents that way). The program
    itself is the child, so its signals and exit code are direct."""

    def enter() -> None:
        fd = os.open(namespace, os.O_RDONLY)
        if _libc.setns(fd, _CLONE_NEWNS) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns: {os.strerror(errno)}")
        os.close(fd)
        os.chroot(root)
        os.chdir("/")
        if ids is not None:
            os.setgroups([ids[1]])
            os.setgid(ids[1])
            os.setuid(ids[0])

    return enter


@dataclass
class DebianRoot:
    """A throwaway root file system to install packages into and run them in."""

    path: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    holder: subprocess.Popen | None = None

    def namespace(self) -> str:
        """The root's mount namespace, made on first use."""
        if self.holder is None or self.holder.poll() is not None:
            self.holder = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", _HOLDER,
                 str(self.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            if self.holder.stdout.readline().strip() != "ready":
                raise RuntimeError(f"could not mount /proc in {self.path}")
        return f"/proc/{self.holder.pid}/ns/mnt"

    @classmethod
    def extract(cls, tarball: Path, where: Path) -> DebianRoot:
        where.mkdir(parents=True)
        with tarfile.open(tarball) as tar:
            tar.extractall(where, filter="fully_trusted")
        return cls(where)

    def __truediv__(self, inside: str) -> Path:
        return self.path / inside.lstrip("/")

    def _spawn_args(self, argv: tuple[str, ...], env: dict[str, str] | None, user: str | None
                    ) -> dict:
        """Popen arguments for ``argv`` inside the root with exactly ``env``."""
        env = {"PATH": ROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8"} if env is None else env
        ids = None
        if user is not None:
            uid, gid, home = self.user(user)
            ids = (uid, gid)
            env = {"HOME": home, "USER": user, "LOGNAME": user, **env}
        return {"args": list(argv), "env": env,
                "preexec_fn": _enter_root(self.path, self.namespace(), ids)}

    def run(self, *argv: str, env: dict[str, str] | None = None, user: str | None = None,
            check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        done = subprocess.run(**self._spawn_args(argv, env, user), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {done.returncode} in {self.path}:\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def start(self, *argv: str, env: dict[str, str] | None = None, user: str | None = None
              ) -> Process:
        """A long-running program in the root; killed by :meth:`stop_all` at the end."""
        proc = subprocess.Popen(**self._spawn_args(argv, env, user),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.processes.append(proc)
        return Process(proc)

    def stop_all(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        if self.holder is not None:
            self.holder.stdin.close()     # the namespace and its mounts go with it
            self.holder.wait(30)

    def install(self, *packages: Path, env: dict[str, str] | None = None,
                check: bool = True) -> subprocess.CompletedProcess:
        """``dpkg -i`` as IT would (non-interactive), with the installer's environment."""
        inside = []
        for package in packages:
            shutil.copy(package, self / "tmp")
            inside.append(f"/tmp/{package.name}")
        base = {"PATH": ROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8",
                "DEBIAN_FRONTEND": "noninteractive"}
        return self.run("dpkg", "-i", *inside, env={**base, **(env or {})}, check=check)

    def dpkg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("dpkg", *args, env={"PATH": ROOT_PATH, "HOME": "/root",
                                            "DEBIAN_FRONTEND": "noninteractive"}, check=check)

    def add_user(self, name: str) -> None:
        self.run("useradd", "--create-home", "--user-group", "--shell", "/bin/sh", name)

    def user(self, name: str) -> tuple[int, int, str]:
        for line in (self / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2]), int(fields[3]), fields[5]
        raise KeyError(f"no user {name} in {self.path}")

    def group(self, name: str) -> int:
        for line in (self / "etc/group").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2])
        raise KeyError(f"no group {name} in {self.path}")


@dataclass
class Process:
    """A program started in a root, with its output collected as it comes."""

    proc: subprocess.Popen
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _pump(stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM to the program (as systemd would on stop) and its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@contextmanager
def debian_root(tarball: Path, where: Path) -> Iterator[DebianRoot]:
    root = DebianRoot.extract(tarball, where)
    try:
        yield root
    finally:
        root.stop_all()
        shutil.rmtree(where, ignore_errors=True)
