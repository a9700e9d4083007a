"""End to end: the real ``worklens-agent run --print`` on a real X desktop."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from desktop import Desktop, unused_display, wait_for

pytestmark = pytest.mark.system

INTERVAL = 0.25
SLACK = 0.6   # process start-up and a loaded machine between our clock and xdotool's input
AGENT = [str(Path(sys.executable).with_name("worklens-agent"))]


class RunningAgent:
    """``worklens-agent run --print`` as a child process, its output collected."""

    def __init__(self, desktop, data_dir: Path, **env: str) -> None:
        full_env = {k: v for k, v in desktop.env.items() if not k.startswith("WORKLENS_")}
        full_env.update({"WORKLENS_SAMPLING_WINDOW_INTERVAL": f"{int(INTERVAL * 1000)}ms",
                         "WORKLENS_SAMPLING_IDLE_THRESHOLD": "2s",
                         "WORKLENS_SAMPLING_PROCESS_INTERVAL": "1s",
                         "WORKLENS_DELIVERY_FLUSH_INTERVAL": "1s", **env})
        self.proc = subprocess.Popen([*AGENT, "run", "--print", "--data-dir", str(data_dir)],
                                     env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(s, out), daemon=True)
                         for s, out in ((self.proc.stdout, self.stdout),
                                        (self.proc.stderr, self.stderr))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def command() -> list[str]:
        return list(AGENT)

    @staticmethod
    def _read(stream, out: list[str]) -> None:
        for line in stream:
            out.append(line)

    def wait_started(self) -> None:
        wait_for(lambda: any("sampling every" in line for line in self.stderr) or
                 self.proc.poll() is not None, timeout=60, what="the agent to start")
        assert self.proc.poll() is None, "".join(self.stderr)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def records(self, kind: str | None = None) -> list[dict]:
        parsed = [json.loads(line) for line in self.stdout]
        return [r for r in parsed if kind is None or r["record"] == kind]


ADDED = ("duration_ms", "key_presses", "clicks", "mouse_moves", "scrolls")


def merge_continued(spans: list[dict]) -> list[dict]:
    """Spans cut at flushes joined again: a ``continued`` part starts where the part
    before it ended, in the same window."""
    out: list[dict] = []
    for span in spans:
        if span["continued"] and out:
            before = out[-1]
            assert before["start_ms"] + before["duration_ms"] == span["start_ms"]
            same = ("app", "title") if span["record"] == "window" else ("state",)
            assert [before[k] for k in same] == [span[k] for k in same]
            out[-1] = {**before, **{k: before[k] + span[k] for k in ADDED if k in span}}
        else:
            out.append(span)
    return out


def test_run_print_shows_windows_activity_and_input_counts_but_never_keys(desktop, tmp_path):
    titles = [f"e2e-{name}-4e91" for name in ("spreadsheet", "browser", "terminal")]
    windows = [desktop.open_window(t) for t in titles]
    desktop.activate(windows[0])
    data_dir = tmp_path / "data"
    agent = RunningAgent(desktop, data_dir)
    agent.wait_started()
    switches = []
    for win in windows[1:] + windows[:1]:
        time.sleep(1.5)
        before = time.time()
        desktop.activate(win)
        switches.append((win.title, before, time.time()))
    marker = "zq" + "7305" + "xk"        # a string that appears nowhere else
    typed_from = time.time()
    desktop.type(marker)
    typed_until = time.time()
    time.sleep(3.5)                      # longer than the 2s idle threshold
    code = agent.stop()
    stdout, stderr = "".join(agent.stdout), "".join(agent.stderr)
    assert code == 0, stderr
    assert "Traceback" not in stderr

    spans = merge_continued(agent.records("window"))
    # each switch closed the previous window's span and opened one for the new window
    for (title, before, after), next_switch in zip(switches, [*switches[1:], None], strict=True):
        matching = [s for s in spans if s["title"] == title and
                    before - INTERVAL - SLACK <= s["start_ms"] / 1000 <= after + INTERVAL + SLACK]
        assert len(matching) == 1, (title, spans)
        span = matching[0]
        assert span["app"] == "xterm" and span["exe"].endswith("xterm")
        assert span["pid"] == next(w.proc.pid for w in windows if w.title == title)
        if next_switch is not None:
            expected = next_switch[1] - before
            assert abs(span["duration_ms"] / 1000 - expected) <= INTERVAL + SLACK, span
    for first, second in itertools.pairwise(spans):
        assert first["start_ms"] + first["duration_ms"] <= second["start_ms"]

    activity = merge_continued(agent.records("activity"))
    assert sum(a["key_presses"] for a in activity) == len(marker), (activity, stderr)
    for first, second in itertools.pairwise(activity):
        assert first["start_ms"] + first["duration_ms"] == second["start_ms"]  # no gaps
    idle = [a for a in activity if a["state"] == "IDLE"]
    assert idle, activity
    last_idle = idle[-1]
    # idleness is dated when the typing stopped, not when the threshold passed
    assert typed_from - SLACK <= last_idle["start_ms"] / 1000 <= typed_until + SLACK
    before_idle = activity[activity.index(last_idle) - 1]
    assert before_idle["state"] == "ACTIVE" and before_idle["key_presses"] == len(marker)

    assert any(p["pid"] == agent.proc.pid for p in agent.records("process"))
    assert agent.records("system")
    # the typed text is nowhere: not on stdout, not in the log, not on disk
    assert marker not in stdout and marker not in stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert marker.encode() not in path.read_bytes(), path
    assert not data_dir.exists() or not any(data_dir.iterdir())  # print mode stores nothing


def test_sigint_prints_the_open_spans_and_exits_zero(desktop, tmp_path):
    win = desktop.open_window("e2e-sigint-0b12")
    desktop.activate(win)
    agent = RunningAgent(desktop, tmp_path / "data")
    agent.wait_started()
    time.sleep(1.0)
    assert agent.stop(signal.SIGINT) == 0
    spans = merge_continued(agent.records("window"))
    assert [s["title"] for s in spans] == ["e2e-sigint-0b12"]
    assert spans[0]["duration_ms"] >= 900
    states = [a["state"] for a in merge_continued(agent.records("activity"))]
    assert states in (["ACTIVE"], ["IDLE"], ["ACTIVE", "IDLE"])


def test_excluded_app_and_redacted_title_end_to_end(desktop, tmp_path):
    secret = desktop.open_window("e2e-Payroll Q3 salaries-77aa", wm_class="LedgerVault")
    invoice = desktop.open_window("e2e-Invoice 4711 for ACME-77aa")
    desktop.activate(secret)
    agent = RunningAgent(desktop, tmp_path / "data",
                         WORKLENS_PRIVACY_EXCLUDE_APPS="ledgervault",
                         WORKLENS_PRIVACY_REDACT_TITLES=r'["\\d{4}"]')
    agent.wait_started()
    time.sleep(1.0)
    desktop.activate(invoice)
    time.sleep(1.0)
    assert agent.stop() == 0
    spans = merge_continued(agent.records("window"))
    assert [(s["excluded"], s["app"], s["title"], s["pid"], s["exe"]) for s in spans] == [
        (True, "", "", 0, ""), (False, "xterm", "e2e-Invoice [redacted] for ACME-77aa",
                                invoice.proc.pid, spans[1]["exe"])]
    out = "".join(agent.stdout) + "".join(agent.stderr)
    assert "Payroll" not in out and "LedgerVault" not in out and "4711" not in out


def test_outside_the_schedule_nothing_is_sampled(desktop, tmp_path):
    win = desktop.open_window("e2e-off-hours-5c3d")
    desktop.activate(win)
    other_day = (datetime.now() + timedelta(days=2)).strftime("%a")
    agent = RunningAgent(desktop, tmp_path / "data",
                         WORKLENS_PRIVACY_SCHEDULE=f"{other_day} 00:00-24:00")
    agent.wait_started()
    time.sleep(1.0)
    desktop.type("abc")
    time.sleep(1.5)   # past a process interval too
    assert agent.stop() == 0
    assert agent.records() == []
    assert "outside the monitoring schedule" in "".join(agent.stderr)


def test_a_bad_schedule_stops_the_agent_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLENS_")}
    env["WORKLENS_PRIVACY_SCHEDULE"] = "Mon-Fri 8-18"
    done = subprocess.run([*AGENT, "run", "--print", "--data-dir", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "[privacy] schedule" in lines[0], done.stderr


def test_the_agent_survives_a_killed_x_server_and_picks_up_the_new_one(fresh_desktop, tmp_path):
    desk = fresh_desktop
    win = desk.open_window("e2e-before-crash-e5f6")
    desk.activate(win)
    agent = RunningAgent(desk, tmp_path / "data")
    agent.wait_started()
    time.sleep(1.0)
    desk.kill_x()
    # the open window span closes (no window can be seen); the agent runs on
    wait_for(lambda: agent.records("window"), timeout=30, what="the span to close")
    time.sleep(1.0)
    assert agent.proc.poll() is None
    desk.restart_x()
    after = desk.open_window("e2e-after-restart-e5f6")
    desk.activate(after)
    time.sleep(4.0)   # reconnection backoff starts at 1s
    assert agent.stop() == 0
    # The window manager may hold focus for a moment after the X restart (its own
    # "Openbox" window is then recorded, rightly); the test's windows must both
    # be there, in order, once each.
    titles = [s["title"] for s in merge_continued(agent.records("window"))
              if s["title"].endswith("-e5f6")]
    assert titles == ["e2e-before-crash-e5f6", "e2e-after-restart-e5f6"]
    stderr = "".join(agent.stderr)
    assert "lost the X display" in stderr and "reconnected" in stderr
    assert "Traceback" not in stderr


def test_an_agent_started_before_the_x_server_waits_for_it_then_records(desktop, tmp_path):
    """Under a systemd user unit the agent can start before the login's display."""
    display = unused_display()
    agent = RunningAgent(desktop, tmp_path / "data", DISPLAY=display)
    agent.wait_started()
    started = next(line for line in agent.stderr if "sampling every" in line)
    for sensor in ("window", "idle", "input"):
        assert f"{sensor}: x11, waiting for X display {display}" in started, started
    desk = Desktop.start(display=display)
    try:
        win = desk.open_window("e2e-late-display-9a0c")
        desk.activate(win)
        wait_for(lambda: any("input counting started" in line for line in agent.stderr),
                 timeout=30, what="the agent to pick up the display")
        time.sleep(2 * INTERVAL)
        desk.type("late")
        time.sleep(1.0)
        assert agent.stop() == 0
    finally:
        desk.stop()
    stderr = "".join(agent.stderr)
    spans = merge_continued(agent.records("window"))
    assert [s["title"] for s in spans] == ["e2e-late-display-9a0c"]
    typed = sum(a["key_presses"] for a in merge_continued(agent.records("activity")))
    assert typed == 4, stderr
    assert f"connected to X display {display}" in stderr and "Traceback" not in stderr
