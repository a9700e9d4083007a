"""CSV exports parsed back with the csv module: every number matches the summaries,
hostile cells are neutralised, timestamps carry offsets, and a million-row export
streams in flat memory."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
from collections import defaultdict
from datetime import date, datetime

import dataset as ds
import pytest
from worklens.collector.reports.csvexport import KINDS, ExportError, export, rfc4180, safe
from worklens.collector.reports.summary import UnknownAgent, summarize

FIRST, LAST = date(2026, 3, 28), date(2026, 10, 25)
pytestmark = pytest.mark.both_engines


@pytest.fixture(scope="module")
def store(module_store_url):
    store = ds.open_store(module_store_url)
    ds.load(store)
    yield store
    store.close()


def read(store, kind, first=FIRST, last=LAST, tz=ds.ZONE, **kw) -> list[dict[str, str]]:
    raw = b"".join(export(store, kind, first, last, tz, **kw))
    assert raw.endswith(b"\r\n")
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")))


def test_daily_matches_summaries(store):
    rows = read(store, "daily")
    by_day = {(r["date"], r["agent_id"]): r for r in rows}
    assert set(by_day) == {("2026-03-28", ds.ALICE), ("2026-03-29", ds.ALICE),
                           ("2026-10-25", ds.BOB)}
    for (day, agent), row in by_day.items():
        d = date.fromisoformat(day)
        want = summarize(store, d, d, "day", ds.ZONE, agent=agent).rows[0]
        for field in ("active_seconds", "idle_seconds", "productive_seconds", "neutral_seconds",
                      "unproductive_seconds", "unclassified_seconds"):
            assert float(row[field]) == getattr(want, field), (day, field)
        assert int(row["spans"]) == want.spans
    spring = by_day[("2026-03-29", ds.ALICE)]
    assert float(spring["locked_seconds"]) == 60 * ds.MIN    # the whole lock fell on 03-29
    total = defaultdict(float)
    for row in rows:
        if row["agent_id"] == ds.ALICE:
            for field in ("state_active_seconds", "state_idle_seconds", "locked_seconds",
                          "asleep_seconds", "key_presses", "clicks"):
                total[field] += float(row[field])
    assert total == {"state_active_seconds": ds.ALICE_STATES["active"],
                     "state_idle_seconds": ds.ALICE_STATES["idle"],
                     "locked_seconds": ds.ALICE_STATES["locked"], "asleep_seconds": 0.0,
                     "key_presses": 1000.0, "clicks": 100.0}


def test_dropped_events_on_the_day_they_were_received(store):
    today = datetime.now().astimezone().date()
    rows = read(store, "daily", today, today, tz=None, agent=ds.BOB)
    assert [int(r["dropped_events"]) for r in rows] == [ds.BOB_DROPPED]


def test_apps_match_the_app_summary(store):
    rows = read(store, "apps", agent=ds.ALICE)
    totals = defaultdict(lambda: [0.0, 0.0, 0])
    for r in rows:
        t = totals[r["app"]]
        t[0] += float(r["active_seconds"])
        t[1] += float(r["idle_seconds"])
        t[2] += int(r["spans"])
    summary = summarize(store, FIRST, LAST, "app", ds.ZONE, agent=ds.ALICE)
    assert {k: tuple(v) for k, v in totals.items()} == {
        r.key: (r.active_seconds, r.idle_seconds, r.spans) for r in summary.rows}
    assert {k: tuple(v) for k, v in totals.items()} == ds.ALICE_APPS
    video = [r for r in rows if r["category"] == "Video"]
    assert [(r["app"], r["productivity"], float(r["active_seconds"])) for r in video] == [
        ("firefox", "unproductive", 20 * ds.MIN)]


def test_spans_with_offsets_and_a_neutralised_title(store):
    rows = read(store, "spans")
    assert len(rows) == 8 and list(rows[0]) == ["agent_id", "user", "start", "end",
                                                "duration_seconds", "app", "title", "category",
                                                "productivity", "exe", "pid", "continued", "group"]
    hostile = [r for r in rows if "HYPERLINK" in r["title"]]
    assert [r["title"] for r in hostile] == ["'" + ds.HOSTILE_TITLE]
    slack = next(r for r in rows if r["app"] == "slack")   # across the spring DST change
    assert (slack["start"], slack["end"]) == ("2026-03-29T01:50:00.000+01:00",
                                              "2026-03-29T03:20:00.000+02:00")
    for r in rows:
        start, end = datetime.fromisoformat(r["start"]), datetime.fromisoformat(r["end"])
        assert start.utcoffset() is not None
        assert (end - start).total_seconds() == float(r["duration_seconds"])
    excluded = next(r for r in rows if r["app"] == "(excluded)")
    assert excluded["title"] == "" and excluded["exe"] == ""
    # alice 30+20+30+30+10+30 minutes, bob 60+15
    assert sum(float(r["duration_seconds"]) for r in rows) == (150 + 75) * ds.MIN


@pytest.mark.parametrize("kind", ["spans", "activity", "processes"])
def test_raw_rows_come_agent_by_agent_in_time_order(store, kind):
    rows = read(store, kind)
    time_field = "time" if kind == "processes" else "start"
    order = [(r["agent_id"], datetime.fromisoformat(r[time_field])) for r in rows]
    assert rows and order == sorted(order)
    if kind != "processes":
        assert {r["agent_id"] for r in rows} == {ds.ALICE, ds.BOB}


def test_activity_and_processes(store):
    activity = read(store, "activity")
    assert [r["state"] for r in activity if r["agent_id"] == ds.ALICE] == [
        "active", "idle", "active", "locked", "active"]
    assert sum(int(r["key_presses"]) for r in activity if r["agent_id"] == ds.ALICE) == 1000
    procs = read(store, "processes", agent=ds.BOB)
    cpu = defaultdict(float)
    for r in procs:
        cpu[r["name"]] += float(r["cpu_seconds"])
        assert r["time"].endswith("+01:00")
    assert sorted(cpu.items(), key=lambda kv: -kv[1]) == ds.BOB_TOP_CPU


def test_every_kind_has_a_header_even_when_empty(store):
    for kind in KINDS:
        raw = b"".join(export(store, kind, date(2020, 1, 1), date(2020, 1, 1), "UTC"))
        assert raw.count(b"\r\n") == 1 and raw.startswith(b"agent_id" if kind in (
            "spans", "activity", "processes") else b"date")


def test_bad_requests(store):
    with pytest.raises(ExportError, match="kind: expected one of"):
        export(store, "everything", FIRST, LAST, ds.ZONE)
    with pytest.raises(UnknownAgent):
        export(store, "spans", FIRST, LAST, ds.ZONE, agent="ag-nobody")


@pytest.mark.parametrize("text", [
    '=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "a,b", 'say "hi"',
    "line\nbreak", "plain", "", "naïve \u2013 ünïcode", "1-2",
])
def test_cells_neutralised_and_quoted_like_the_csv_module(text):
    line = rfc4180(text)
    parsed = next(csv.reader(io.StringIO(line, newline="")), [""])
    assert parsed == [safe(text)]
    assert safe(text)[:1] not in ("=", "+", "-", "@", "\t", "\r")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow([safe(text)])
    assert line == buf.getvalue()[:-2] or (line == text == "")


MILLION_ROWS = textwrap.dedent("""
    import json, sys, time
    from datetime import date
    from worklens.collector.rollup import open_with_rollups
    from worklens.collector.reports.csvexport import export

    def rss_kb():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

    store = open_with_rollups(sys.argv[1])
    base = 1774742400000  # 2026-03-29T00:00Z
    def fill(conn):
        key = conn.execute("INSERT INTO agents (agent_id, credential_hash, enrolled_ms) "
                           "VALUES ('ag-big', 'x', 0) RETURNING id").fetchone()[0]
        rows = ((key, base + i * 50, 50, "app%d" % (i % 50), "=title %d" % i, 7, "/bin/x", 0,
                 "u", 0) for i in range(1_000_000))
        if sys.argv[1].startswith("postgresql"):
            from worklens.collector.store.postgresql import copy_rows
            copy_rows(conn, "window_spans", rows)
        else:
            conn.executemany("INSERT INTO window_spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             rows)
    store.write(fill)
    rows = size = 0
    baseline = peak = None
    started = time.monotonic()
    for n, chunk in enumerate(export(store, "spans", date(2026, 3, 29), date(2026, 3, 29),
                                     "Europe/Berlin")):
        rows += chunk.count(b"\\n")
        size += len(chunk)
        if n == 20:
            baseline = peak = rss_kb()
        elif n > 20 and n % 10 == 0:
            peak = max(peak, rss_kb())
    elapsed = time.monotonic() - started
    print(json.dumps({"rows": rows - 1, "mb": size / 1e6, "baseline_kb": baseline,
                      "peak_kb": max(peak, rss_kb()), "rows_per_s": rows / elapsed}))
""")


def test_a_million_row_export_streams_in_flat_memory(store_url):
    done = subprocess.run([sys.executable, "-c", MILLION_ROWS, store_url],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["rows"] == 1_000_000
    assert figures["mb"] > 100   # ~130 MB of CSV went through...
    growth_mb = (figures["peak_kb"] - figures["baseline_kb"]) / 1024
    assert growth_mb < 25, figures   # ...while memory stayed flat (bounded memos)
