"""CSV exports over HTTP from a real collector: streamed, parseable, safe,
matching the JSON summaries, audited, and flat in memory."""

from __future__ import annotations

import csv
import io
import threading
import time
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from http_support import IDLE, activity, window
from worklens.v1 import agent_pb2

DAY = (datetime.now(UTC) - timedelta(days=3)).date()
T0 = int(datetime(DAY.year, DAY.month, DAY.day, 8, tzinfo=UTC).timestamp() * 1000)
MIN = 60_000
FORMULA = '=HYPERLINK("http://x")'


pytestmark = pytest.mark.both_engines


@pytest.fixture(scope="module")
def data(col):
    a = col.enroll_agent(hostname="ws-x")
    col.send(a, "alice", [window(T0, 600, "code", "main.py"),
                          window(T0 + 10 * MIN, 300, "firefox", FORMULA),
                          window(T0 + 15 * MIN, 120, "-cmd", "@SUM(A1)")],
             [activity(T0, 480, keys=120), activity(T0 + 8 * MIN, 300, IDLE),
              activity(T0 + 13 * MIN, 240, clicks=7)],
             [agent_pb2.ProcessSample(time_ms=T0 + MIN, pid=7, name="code", user="alice",
                                      cpu_percent=25.0, rss_bytes=300 << 20, cpu_seconds=15.0,
                                      interval_ms=60_000)])
    return {"a": a.agent_id, "exporter": col.token("exporter", "ops-export"),
            "viewer": col.token("viewer"), "admin": col.token("admin")}


def export(col, token, kind, **params):
    params = {"from": DAY.isoformat(), "to": DAY.isoformat(), "tz": "UTC", **params}
    return col.get(f"/api/v1/export/{kind}.csv", token, params=params)


def parse(resp) -> list[dict[str, str]]:
    assert resp.status_code == 200, resp.text
    return list(csv.DictReader(io.StringIO(resp.content.decode("utf-8"), newline="")))


def test_spans_csv_is_a_streamed_attachment_with_safe_cells(col, data):
    resp = export(col, data["exporter"], "spans")
    assert resp.headers["content-type"] == "text/csv; charset=utf-8"
    assert resp.headers["content-disposition"] == (
        f'attachment; filename="worklens-spans-{DAY}-{DAY}.csv"')
    assert resp.content.startswith(b"agent_id,") and b"\r\n" in resp.content
    rows = parse(resp)
    assert [(r["app"], r["title"]) for r in rows] == [
        ("code", "main.py"), ("firefox", "'" + FORMULA), ("'-cmd", "'@SUM(A1)")]
    assert rows[0]["start"] == f"{DAY}T08:00:00.000+00:00"
    assert rows[0]["end"] == f"{DAY}T08:10:00.000+00:00"
    assert float(rows[0]["duration_seconds"]) == 600
    assert all(r["agent_id"] == data["a"] and r["user"] == "alice" for r in rows)


def test_export_in_another_zone_shows_its_offset(col, data):
    rows = parse(export(col, data["exporter"], "activity", tz="Asia/Kolkata"))
    assert rows[0]["start"].endswith("+05:30")
    assert rows[0]["start"].startswith(f"{DAY}T13:30:00")
    assert [r["state"] for r in rows] == ["active", "idle", "active"]


def test_daily_and_apps_csv_match_the_json_summary(col, data):
    params = {"from": DAY.isoformat(), "to": DAY.isoformat(), "tz": "UTC"}
    by_app = col.get("/api/v1/summary", data["viewer"], params={**params, "by": "app"}).json()
    apps = parse(export(col, data["exporter"], "apps"))
    assert {r["app"]: (float(r["active_seconds"]), float(r["idle_seconds"])) for r in apps} == {
        ("'" + k if k.startswith("-") else k): (v1, v2)
        for k, v1, v2 in ((r["app"], r["active_seconds"], r["idle_seconds"])
                          for r in by_app["rows"])}
    daily = parse(export(col, data["exporter"], "daily"))
    assert len(daily) == 1
    total = by_app["total"]
    assert float(daily[0]["active_seconds"]) == total["active_seconds"] == 720
    assert float(daily[0]["idle_seconds"]) == total["idle_seconds"] == 300
    assert int(daily[0]["key_presses"]) == 120 and int(daily[0]["clicks"]) == 7
    procs = parse(export(col, data["exporter"], "processes"))
    assert [(p["name"], float(p["cpu_seconds"])) for p in procs] == [("code", 15.0)]


def test_exports_are_audited_with_their_query(col, data):
    export(col, data["exporter"], "spans", tz="Europe/Paris", user="alice").close()
    entries = col.get("/api/v1/audit", data["admin"], params={"action": "export"}).json()
    last = entries["entries"][0]
    assert last["action"] == "export.spans" and last["role"] == "exporter"
    assert last["token_name"] == "ops-export"
    assert last["params"] == {"kind": "spans", "from": DAY.isoformat(), "to": DAY.isoformat(),
                              "tz": "Europe/Paris", "agent": None, "user": "alice",
                              "group": None, "scope": None}   # unscoped token: sees all


def test_export_errors_are_json_before_any_csv(col, data):
    resp = export(col, data["exporter"], "spans", agent="ag-missing")
    assert resp.status_code == 404 and "ag-missing" in resp.json()["error"]
    resp = export(col, data["viewer"], "spans")
    assert resp.status_code == 403 and "exporter" in resp.json()["error"]


def _rss_sampler(pid: int, stop: threading.Event, peak: list[int]) -> None:
    proc = psutil.Process(pid)
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.02)


def test_a_large_export_streams_with_flat_memory(col, data):
    """300,000 spans (~40 MB of CSV) pass through while the collector's RSS grows by far
    less than the export's size: nothing is buffered whole."""
    agent = col.enroll_agent(hostname="ws-big")
    start = T0 - 6 * 3600 * 1000
    per_batch, batches = 50_000, 6
    for b in range(batches):
        spans = [window(start + (b * per_batch + i) * 100, 0.1, f"app{i % 50}",
                        f"document {i} - editor")
                 for i in range(per_batch)]
        col.send(agent, "bulk", spans)
    proc = psutil.Process(col.proc.pid)
    baseline = proc.memory_info().rss
    stop, peak = threading.Event(), [baseline]
    sampler = threading.Thread(target=_rss_sampler, args=(col.proc.pid, stop, peak))
    sampler.start()
    size = lines = 0
    try:
        with col.get("/api/v1/export/spans.csv", data["exporter"], stream=True,
                     params={"from": DAY.isoformat(), "to": DAY.isoformat(), "tz": "UTC",
                             "agent": agent.agent_id}) as resp:
            assert resp.status_code == 200
            for chunk in resp.iter_content(1 << 16):
                size += len(chunk)
                lines += chunk.count(b"\n")   # a CRLF may straddle two chunks
    finally:
        stop.set()
        sampler.join()
    assert lines == per_batch * batches + 1
    growth = peak[0] - baseline
    assert size > 30e6
    assert growth < size / 2, f"RSS grew {growth / 1e6:.0f} MB for a {size / 1e6:.0f} MB export"
