"""`make run` (collector.devrun) as a newcomer runs it: a collector and an enrolled
agent come up, and however the run ends - Ctrl-C, SIGTERM, a closed terminal - both
children are stopped with it, not left holding the ports and the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from polling import wait_for


def dev_processes(dev_dir: Path) -> list[int]:
    """Processes whose command line names this run's dev directory."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(dev_dir) in cmdline:
            found.append(int(entry.name))
    return found


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(("sig", "started_as"), [
    (signal.SIGINT, None), (signal.SIGTERM, None), (signal.SIGHUP, None),
    # `make run &` from a script: the shell starts background jobs with SIGINT ignored
    (signal.SIGINT, _ignore_sigint)],
    ids=["ctrl-c", "sigterm", "sighup", "sigint-to-a-background-job"])
def test_make_run_starts_both_and_stops_both(tmp_path, sig, started_as):
    dev_dir = tmp_path / "dev"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLENS_")}
    env.pop("DISPLAY", None)   # no desktop: the agent records processes only
    env["WORKLENS_DEV_DIR"] = str(dev_dir)
    proc = subprocess.Popen([sys.executable, "-m", "worklens.collector.devrun"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=started_as)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        wait_for(lambda: any("Recording;" in line for line in lines) or proc.poll() is not None,
                 timeout=120, what="make run to start the collector and the agent")
        output = "".join(lines)
        assert "dashboard: http://127.0.0.1:" in output and "token:     wl_" in output, output
        assert len(dev_processes(dev_dir)) == 2   # the collector and the agent
        proc.send_signal(sig)
        assert proc.wait(90) == 0
        wait_for(lambda: dev_processes(dev_dir) == [], timeout=30,
                 what="the collector and the agent to stop")
        assert "stopped." in "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in dev_processes(dev_dir):
            os.kill(pid, signal.SIGKILL)


def test_make_run_stops_both_when_make_itself_is_killed(tmp_path):
    """`timeout 60 make run` kills make only: the run notices its parent is gone."""
    dev_dir = tmp_path / "dev"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLENS_")}
    env.pop("DISPLAY", None)
    env["WORKLENS_DEV_DIR"] = str(dev_dir)
    # a shell stands in for make: `; true` keeps it from exec-ing python in its place
    devrun = f"{sys.executable} -m worklens.collector.devrun; true"
    make = subprocess.Popen(["sh", "-c", devrun], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(make.stdout), daemon=True).start()
    try:
        wait_for(lambda: len(dev_processes(dev_dir)) == 2 and
                 any("Recording;" in line for line in lines), timeout=120,
                 what="make run to start the collector and the agent")
        make.kill()
        make.wait(30)
        wait_for(lambda: dev_processes(dev_dir) == [], timeout=60,
                 what="the collector and the agent to stop after make is gone")
    finally:
        for pid in dev_processes(dev_dir):
            os.kill(pid, signal.SIGKILL)


def test_the_try_commands_work_as_printed_from_another_directory(tmp_path):
    """A newcomer pastes the `try:` lines into their shell: .venv/bin is not on
    PATH, and the shell may be anywhere."""
    dev_dir = tmp_path / "dev"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLENS_")}
    env.pop("DISPLAY", None)
    env["WORKLENS_DEV_DIR"] = str(dev_dir)
    proc = subprocess.Popen([sys.executable, "-m", "worklens.collector.devrun"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        wait_for(lambda: any("Recording;" in line for line in lines) or proc.poll() is not None,
                 timeout=120, what="make run to start the collector and the agent")
        assert proc.poll() is None, "".join(lines)
        at = next(i for i, line in enumerate(lines) if line.strip().startswith("try:"))
        commands = [lines[at].split("try:", 1)[1].strip(), lines[at + 1].strip()]
        elsewhere = tmp_path / "home"
        elsewhere.mkdir()
        shell_env = {"PATH": "/usr/bin:/bin", "HOME": str(elsewhere), "LANG": "C.UTF-8"}
        summary, status = (subprocess.run(["sh", "-c", command], cwd=elsewhere, env=shell_env,
                                          capture_output=True, text=True, timeout=60)
                           for command in commands)
        assert summary.returncode == 0 and "Active/idle time by app" in summary.stdout, \
            (commands[0], summary.stderr)
        assert status.returncode == 0 and "delivering:     yes" in status.stdout, \
            (commands[1], status.stdout, status.stderr)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in dev_processes(dev_dir):
            os.kill(pid, signal.SIGKILL)
