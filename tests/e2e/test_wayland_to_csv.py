"""The agent on a real Wayland desktop, end to end: a headless sway (wlroots)
with foot terminals, focus moved with swaymsg and typing with wtype, the real
`worklens-agent run` as the desktop's ordinary user (compositors refuse root),
a real `worklens-collector serve`, and the operator's CSV export: window spans,
titles and active/idle spans match what was done to within a second."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from collector_harness import collector_command
from e2e_support import clean_env
from polling import wait_for
from sway import agent_desktop

pytestmark = pytest.mark.system

INTERVAL = 0.2          # window_interval
IDLE_THRESHOLD = 3.0
FLUSH = 1.0
SECOND = 1.0            # "to within a second"
ALPHA, BETA = "wl Quarterly report 9d41", "wl Team mail 9d41"
MARKER = "qv" + "58" + "wl" + "31" + "kz"


def iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def export(col, kind: str, token: str) -> list[dict[str, str]]:
    today = datetime.now(UTC).date()
    done = subprocess.run(collector_command(
        "export", kind, "--url", col.http_url, "--token", token, "--tz", "UTC",
        "--from", str(today - timedelta(days=1)), "--to", str(today)),
        env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return joined(list(csv.DictReader(io.StringIO(done.stdout))))


def joined(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """One row per span: a ``continued`` row (a part the agent cut at a flush, see
    docs/freshness-and-live.md) is added to the row before it."""
    out: list[dict[str, str]] = []
    for row in rows:
        if row.get("continued") == "true" and out:
            before = out[-1]
            assert before["end"] == row["start"], (before, row)
            seconds = float(before["duration_seconds"]) + float(row["duration_seconds"])
            out[-1] = {**before, "end": row["end"], "duration_seconds": str(seconds)}
        else:
            out.append(row)
    return out


@pytest.fixture
def sway():
    yield from agent_desktop()


def test_focus_and_typing_on_sway_become_window_and_activity_spans(
        sway, collector_proc_factory):
    col = collector_proc_factory()
    col.start()
    terminals = {ALPHA: sway.open_window(ALPHA).pid, BETA: sway.open_window(BETA).pid}
    sway.focus(BETA)
    data = sway.work / "agent"
    env = clean_env(**sway.env, **{
        "WORKLENS_COLLECTOR_ADDRESS": col.grpc_address,
        "WORKLENS_COLLECTOR_ENROLL_SECRET": col.create_token("enroll"),
        "WORKLENS_SAMPLING_WINDOW_INTERVAL": f"{int(INTERVAL * 1000)}ms",
        "WORKLENS_SAMPLING_IDLE_THRESHOLD": f"{IDLE_THRESHOLD:g}s",
        "WORKLENS_DELIVERY_FLUSH_INTERVAL": f"{FLUSH:g}s"})
    env.pop("DISPLAY", None)
    agent = subprocess.Popen(sway.agent("run", "--data-dir", str(data)),
                             env=env, cwd="/", stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(line.rstrip() for line in agent.stdout),
                     daemon=True).start()
    try:
        wait_for(lambda: any("sampling every" in line for line in lines)
                 or agent.poll() is not None, what="the agent to enroll itself and sample")
        output = "\n".join(lines)
        assert agent.poll() is None, output
        assert "window: wlroots; idle: wayland" in output, output
        if sway.python is not None:                          # it ran as the desktop's user
            assert os.stat(data).st_uid == sway.user.pw_uid
        time.sleep(IDLE_THRESHOLD + 0.5)     # nobody at the keyboard yet: idle

        sway.focus(ALPHA)
        alpha_from = first_input = time.time()
        sway.type(MARKER, delay_ms=250)
        sway.focus(BETA)
        alpha_to = time.time()
        for _ in range(4):                    # a key now and then in the mail window
            time.sleep(0.5)
            sway.type("k")
        last_input = time.time()
        time.sleep(IDLE_THRESHOLD + 1.5)      # idle again before the agent stops
        agent.terminate()
        assert agent.wait(90) == 0, "\n".join(lines)
    finally:
        if agent.poll() is None:
            agent.kill()
    output = "\n".join(lines)
    assert "Traceback" not in output, output

    exporter = col.create_token("exporter")
    spans = export(col, "spans", exporter)
    by_title: dict[str, list[dict]] = {}
    for row in spans:
        by_title.setdefault(row["title"], []).append(row)
    assert set(by_title) == {ALPHA, BETA}, spans
    # the app is the app_id; the process (pid, executable) comes from sway's IPC
    for row in spans:
        assert (row["app"], row["pid"]) == ("foot", str(terminals[row["title"]])), row
        assert row["exe"].endswith("/foot"), row
    (alpha,) = by_title[ALPHA]
    assert abs(iso(alpha["start"]) - alpha_from) <= SECOND, (alpha, alpha_from)
    assert abs(iso(alpha["end"]) - alpha_to) <= SECOND, (alpha, alpha_to)

    activity = export(col, "activity", exporter)
    active = [row for row in activity if row["state"] == "active"]
    assert len(active) == 1, activity
    assert abs(iso(active[0]["start"]) - first_input) <= SECOND, (active, first_input)
    assert abs(iso(active[0]["end"]) - last_input) <= SECOND, (active, last_input)
    idle = [row for row in activity if row["state"] == "idle"]
    assert len(idle) == 2 and iso(idle[1]["start"]) == iso(active[0]["end"]), activity
    # input counts are not measured on Wayland: zero in the data, "unavailable" in status
    assert {row["key_presses"] for row in activity} == {"0"}
    status = json.loads(subprocess.run(
        sway.agent("status", "--json", "--data-dir", str(data)), env=env,
        cwd="/", capture_output=True, text=True, timeout=60, check=True).stdout)
    sensors = {s["name"]: s for s in status["sensors"]}
    assert (sensors["window"]["backend"], sensors["idle"]["backend"]) == ("wlroots", "wayland")
    assert not sensors["input"]["available"] and "Wayland" in sensors["input"]["reason"]
    for path in data.rglob("*"):
        if path.is_file():
            assert MARKER.encode() not in path.read_bytes(), path
