"""The whole product in one test, from a desktop to a summary: a real X desktop
(Xvfb + openbox + xterm, driven with xdotool), the real `worklens-agent run`
enrolling itself with an enrollment secret, a real `worklens-collector serve`,
and the operator's real `worklens-collector summary` / `export` commands
against the collector's HTTP API."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from collector_harness import collector_command
from desktop import Desktop, missing_programs
from e2e_support import agent_command, clean_env
from polling import wait_for

pytestmark = pytest.mark.system

INTERVAL = 0.2        # window_interval
IDLE_THRESHOLD = 3.0   # long enough that a slow focus switch is not idleness
FLUSH = 1.0
TOLERANCE = 2 * INTERVAL + FLUSH   # a couple of sampling intervals + a flush
MARKER = "qv" + "58" + "tnwr" + "31" + "kz"   # typed text that appears nowhere else


def operator(col, *args: str) -> str:
    """`worklens-collector ARGS` as an operator runs it (client commands: HTTP API)."""
    done = subprocess.run(collector_command(*args), env=clean_env(), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def desk():
    missing = missing_programs()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install xvfb openbox xdotool xterm)")
    with Desktop.start() as desk:
        yield desk


def test_focus_and_typing_on_a_desktop_become_the_summary_and_csv(
        desk, tmp_path, collector_proc_factory, agents):
    col = collector_proc_factory()
    col.start()
    report = desk.open_window("e2e Quarterly report 7c1e")
    mail = desk.open_window("e2e Team mail 7c1e")
    desk.activate(mail)
    data = tmp_path / "agent"
    agent = agents.run(data, env={
        "DISPLAY": desk.display,
        "WORKLENS_COLLECTOR_ADDRESS": col.grpc_address,
        "WORKLENS_COLLECTOR_ENROLL_SECRET": col.create_token("enroll"),
        "WORKLENS_SAMPLING_WINDOW_INTERVAL": f"{int(INTERVAL * 1000)}ms",
        "WORKLENS_SAMPLING_IDLE_THRESHOLD": f"{IDLE_THRESHOLD:g}s",
        "WORKLENS_DELIVERY_FLUSH_INTERVAL": f"{FLUSH:g}s"})
    wait_for(lambda: ("enrolled as" in agent.output and "sampling every" in agent.output)
               or agent.proc.poll() is not None, what="the agent to enroll itself and sample")
    assert agent.proc.poll() is None, agent.output
    assert "window: x11; idle: x11; input: x11" in agent.output
    time.sleep(IDLE_THRESHOLD + 0.5)     # nobody at the keyboard yet: the session is idle

    # the report window: focused and typed into
    desk.activate(report)
    first_input = time.time()
    desk.type(MARKER, delay_ms=250)
    # the mail window: focused, the mouse moves now and then
    desk.activate(mail)
    moves = 8
    for i in range(moves):
        desk.move_mouse(200 + 20 * i, 300)
        time.sleep(0.4)
    last_input = time.time()
    time.sleep(IDLE_THRESHOLD + 1.5)     # idle again before the agent stops

    assert agent.terminate() == 0, agent.output
    assert "Traceback" not in agent.output
    status = json.loads(subprocess.run(
        agent_command("status", "--json", "--data-dir", str(data)), env=clean_env(),
        capture_output=True, text=True, timeout=60, check=True).stdout)
    assert status["enrolled"] and status["collector"]["credential_accepted"], status
    assert (status["spool"]["batches"], status["spool"]["unsealed_records"]) == (0, 0), status

    today = datetime.now(UTC).date()
    span = ["--url", col.http_url, "--tz", "UTC", "--from", str(today - timedelta(days=1)),
            "--to", str(today)]
    viewer, exporter = col.create_token("viewer"), col.create_token("exporter")
    summary = json.loads(operator(col, "summary", "--by", "app", "--format", "json",
                                  "--token", viewer, *span))
    apps = {row["app"]: row for row in summary["rows"]}
    focused = last_input - first_input
    assert abs(apps["xterm"]["active_seconds"] - focused) <= TOLERANCE, (focused, apps)
    assert summary["total"]["active_seconds"] == apps["xterm"]["active_seconds"]
    assert apps["xterm"]["idle_seconds"] >= IDLE_THRESHOLD     # before and after the input

    spans_csv = operator(col, "export", "spans", "--token", exporter, *span)
    titles = {row["title"] for row in csv_rows(spans_csv)}
    assert {"e2e Quarterly report 7c1e", "e2e Team mail 7c1e"} <= titles, spans_csv
    activity_csv = operator(col, "export", "activity", "--token", exporter, *span)
    activity = csv_rows(activity_csv)
    assert sum(int(row["key_presses"]) for row in activity) == len(MARKER), activity_csv
    assert sum(int(row["mouse_moves"]) for row in activity) == moves, activity_csv
    assert {row["state"] for row in activity} == {"active", "idle"}

    # keystroke content: counted, never stored or exported
    for text in (spans_csv, activity_csv, json.dumps(summary)):
        assert MARKER not in text
    for directory in (col.data_dir, data):
        for path in Path(directory).rglob("*"):
            if path.is_file():
                assert MARKER.encode() not in path.read_bytes(), path
