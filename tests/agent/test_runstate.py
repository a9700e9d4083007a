"""The running agent's self-description that `worklens-agent status` believes only
while that very process is alive."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from worklens.agent import runstate
from worklens.agent.sensors import SensorStatus

SENSORS = [SensorStatus("window", "x11", True), SensorStatus("idle", "x11", True),
           SensorStatus("input", "xrecord", False, "starts inside the monitoring schedule")]


def test_a_live_agents_state_is_read_back(tmp_path):
    runstate.write(tmp_path, SENSORS)
    state = runstate.read(tmp_path)
    assert state is not None and state.pid == os.getpid()
    assert [(s["name"], s["backend"], s["available"]) for s in state.sensors] == [
        ("window", "x11", True), ("idle", "x11", True), ("input", "xrecord", False)]
    assert not list(tmp_path.glob(".*.tmp"))       # written through a temporary file


def test_a_dead_agents_state_is_not_believed(tmp_path):
    subprocess.run([sys.executable, "-c",
                    "import sys; from pathlib import Path; from worklens.agent import runstate; "
                    "runstate.write(Path(sys.argv[1]), [])", str(tmp_path)], check=True)
    assert (tmp_path / runstate.RUNNING_FILE).exists()   # killed: it could not clean up
    assert runstate.read(tmp_path) is None


def test_a_reused_pid_is_not_taken_for_the_agent(tmp_path):
    runstate.write(tmp_path, SENSORS)
    path = tmp_path / runstate.RUNNING_FILE
    raw = json.loads(path.read_text())
    raw["started_ms"] -= 3_600_000   # the agent that wrote it started an hour earlier
    path.write_text(json.dumps(raw))
    assert runstate.read(tmp_path) is None


def test_a_damaged_file_means_no_running_agent(tmp_path):
    (tmp_path / runstate.RUNNING_FILE).write_text('{"pid": ')
    assert runstate.read(tmp_path) is None


def test_clear_removes_only_this_processes_state(tmp_path):
    runstate.write(tmp_path, SENSORS)
    path = tmp_path / runstate.RUNNING_FILE
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({**raw, "pid": raw["pid"] + 1}))   # another agent's
    runstate.clear(tmp_path)
    assert path.exists()
    runstate.write(tmp_path, SENSORS)
    runstate.clear(tmp_path)
    assert not path.exists()
