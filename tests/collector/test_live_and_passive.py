"""Continued parts, PASSIVE time and the live view over HTTP, against a real
collector fed over gRPC; every number is worked out by hand below."""

from __future__ import annotations

import csv
import io
import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest
from http_support import ACTIVE, IDLE, activity, window
from polling import wait_for
from worklens.v1 import agent_pb2

PASSIVE = agent_pb2.ACTIVITY_STATE_PASSIVE
MEDIA, CALL = agent_pb2.PASSIVE_REASON_MEDIA, agent_pb2.PASSIVE_REASON_CALL
DAY = (datetime.now(UTC) - timedelta(days=2)).date()
T0 = int(datetime(DAY.year, DAY.month, DAY.day, 9, tzinfo=UTC).timestamp() * 1000)
MIN = 60_000
RULES = [{"app": "^vlc$", "category": "Training", "productivity": "productive"}]


def part(span, continued=True, **fields):
    span.continued = continued
    for name, value in fields.items():
        setattr(span, name, value)
    return span


def send(col, agent, windows=(), acts=(), **batch_fields):
    seq = next(col.sequences.setdefault(agent.agent_id, itertools.count(1)))
    batch = agent_pb2.Batch(
        agent_id=agent.agent_id, sequence=seq, created_ms=int(time.time() * 1000),
        host=agent_pb2.HostInfo(hostname="ws-live", os="linux", user="carol"),
        windows=list(windows), activity=list(acts), **batch_fields)
    assert [a.sequence for a in col.upload(agent, [batch])] == [seq]


pytestmark = pytest.mark.both_engines


@pytest.fixture(scope="module")
def data(col):
    """carol: code 09:00-09:20 active, sent as two parts cut at 09:10 (one span);
    vlc 09:20-09:30 PASSIVE (media), sent as two parts; 09:30-09:35 idle in vlc."""
    admin = col.token("admin")
    assert col.request("PUT", "/api/v1/rules", admin, json={"rules": RULES}).status_code == 200
    a = col.enroll_agent(hostname="ws-live")
    send(col, a, [window(T0, 600, "code", "main.py")],
         [activity(T0, 600, keys=40)])
    send(col, a, [part(window(T0 + 10 * MIN, 600, "code", "main.py")),
                  window(T0 + 20 * MIN, 300, "vlc", "Training video")],
         [part(activity(T0 + 10 * MIN, 600, keys=60)),
          part(activity(T0 + 20 * MIN, 300, PASSIVE), False, reason=MEDIA)])
    send(col, a, [part(window(T0 + 25 * MIN, 600, "vlc", "Training video"))],
         [part(activity(T0 + 25 * MIN, 300, PASSIVE), reason=MEDIA),
          activity(T0 + 30 * MIN, 300, IDLE)])
    return {"agent": a.agent_id, "viewer": col.token("viewer"),
            "exporter": col.token("exporter")}


def get(col, data, path, role="viewer", **params):
    reply = col.get(path, data[role], params={"tz": "UTC", **params})
    assert reply.status_code == 200, reply.text
    return reply


def day_params():
    return {"from": DAY.isoformat(), "to": DAY.isoformat()}


def test_continued_parts_add_up_to_one_span(col, data):
    rows = {r["app"]: r for r in get(col, data, "/api/v1/summary", by="app",
                                     **day_params()).json()["rows"]}
    assert (rows["code"]["active_seconds"], rows["code"]["spans"]) == (1200, 1)
    spans = list(csv.DictReader(io.StringIO(get(col, data, "/api/v1/export/spans.csv",
                                                "exporter", **day_params()).text)))
    assert [(r["app"], r["duration_seconds"], r["continued"]) for r in spans] == [
        ("code", "600.0", "false"), ("code", "600.0", "true"),
        ("vlc", "300.0", "false"), ("vlc", "600.0", "true")]
    timeline = get(col, data, "/api/v1/timeline", agent=data["agent"],
                   date=DAY.isoformat()).json()
    assert [(s["app"], s["end_ms"] - s["start_ms"]) for s in timeline["spans"]] == [
        ("code", 1200_000), ("vlc", 900_000)]
    assert [(a["state"], a["end_ms"] - a["start_ms"]) for a in timeline["activity"]] == [
        ("active", 1200_000), ("passive", 600_000), ("idle", 300_000)]


def test_passive_time_is_summarised_exported_and_categorised(col, data):
    rows = {r["app"]: r for r in get(col, data, "/api/v1/summary", by="app",
                                     **day_params()).json()["rows"]}
    vlc = rows["vlc"]
    assert (vlc["active_seconds"], vlc["passive_seconds"], vlc["idle_seconds"]) == (0, 600, 300)
    # passive time counts as its app's category and class (vlc: Training, productive)
    assert (vlc["productive_seconds"], vlc["productive_share"]) == (600, 1.0)
    by_category = {r["category"]: r for r in get(col, data, "/api/v1/summary", by="category",
                                                 **day_params()).json()["rows"]}
    assert by_category["Training"]["passive_seconds"] == 600
    total = get(col, data, "/api/v1/summary", by="user", **day_params()).json()["total"]
    assert (total["active_seconds"], total["passive_seconds"]) == (1200, 600)
    # shares of active + passive time: code's 20 min unclassified, vlc's 10 productive
    assert (total["productive_seconds"], total["unclassified_seconds"]) == (600, 1200)
    assert (total["productive_share"], total["unclassified_share"]) == (0.3333, 0.6667)
    activity_csv = list(csv.DictReader(io.StringIO(get(
        col, data, "/api/v1/export/activity.csv", "exporter", **day_params()).text)))
    assert [(r["state"], r["reason"], r["continued"]) for r in activity_csv] == [
        ("active", "", "false"), ("active", "", "true"), ("passive", "media", "false"),
        ("passive", "media", "true"), ("idle", "", "false")]
    daily = list(csv.DictReader(io.StringIO(get(
        col, data, "/api/v1/export/daily.csv", "exporter", **day_params()).text)))
    assert [(r["active_seconds"], r["passive_seconds"], r["state_passive_seconds"],
             r["productive_seconds"], r["unclassified_seconds"]) for r in daily] == [
        ("1200.0", "600.0", "600.0", "600.0", "1200.0")]
    apps = list(csv.DictReader(io.StringIO(get(
        col, data, "/api/v1/export/apps.csv", "exporter", **day_params()).text)))
    assert {r["app"]: r["passive_seconds"] for r in apps} == {"code": "0.0", "vlc": "600.0"}


def test_a_rule_classifies_passive_time_apart(col, data):
    """vlc's passive time as Video/unproductive, its idle time still Training."""
    admin = col.token("admin")
    rules = [{**RULES[0], "passive": "unproductive", "passive_category": "Video"}]
    try:
        put = col.request("PUT", "/api/v1/rules", admin, json={"rules": rules})
        assert put.status_code == 200, put.text
        assert col.get("/api/v1/rules", admin).json()["rules"] == rules
        by_category = {r["category"]: r for r in get(col, data, "/api/v1/summary",
                                                     by="category", **day_params()).json()["rows"]}
        assert (by_category["Video"]["passive_seconds"],
                by_category["Video"]["unproductive_seconds"]) == (600, 600)
        assert (by_category["Training"]["passive_seconds"],
                by_category["Training"]["idle_seconds"]) == (0, 300)
        vlc = {r["app"]: r for r in get(col, data, "/api/v1/summary", by="app",
                                        **day_params()).json()["rows"]}["vlc"]
        assert (vlc["passive_seconds"], vlc["unproductive_seconds"], vlc["spans"]) == (600, 600, 1)
        total = get(col, data, "/api/v1/summary", by="user", **day_params()).json()["total"]
        assert (total["productive_seconds"], total["unproductive_seconds"]) == (0, 600)
        daily = list(csv.DictReader(io.StringIO(get(
            col, data, "/api/v1/export/daily.csv", "exporter", **day_params()).text)))
        assert [(r["productive_seconds"], r["unproductive_seconds"]) for r in daily] == [
            ("0.0", "600.0")]
        apps = list(csv.DictReader(io.StringIO(get(
            col, data, "/api/v1/export/apps.csv", "exporter", **day_params()).text)))
        assert sorted((r["category"], r["productivity"], r["idle_seconds"], r["passive_seconds"])
                      for r in apps if r["app"] == "vlc") == [
            ("Training", "productive", "300.0", "0.0"), ("Video", "unproductive", "0.0", "600.0")]
        # the timeline: vlc's span keeps its category, its passive stretch takes the rule's
        spans, segments = timeline_classes(col, data)
        assert spans == [("code", "(unclassified)", "unclassified", "(unclassified)",
                          "unclassified"),
                         ("vlc", "Training", "productive", "Video", "unproductive")]
        assert segments == [(20, 30, "vlc", "Video", "unproductive")]
    finally:
        assert col.request("PUT", "/api/v1/rules", admin,
                           json={"rules": RULES}).status_code == 200
    vlc = {r["app"]: r for r in get(col, data, "/api/v1/summary", by="app",
                                    **day_params()).json()["rows"]}["vlc"]
    assert (vlc["productive_seconds"], vlc["unproductive_seconds"]) == (600, 0)
    assert timeline_classes(col, data)[1] == [(20, 30, "vlc", "Training", "productive")]


@pytest.mark.parametrize("match", [{"app": "^vlc$"}, {"title": "^Training video$"}],
                         ids=["rollups", "raw-spans"])
def test_the_rules_preview_moves_passive_time_by_the_candidate_rule(col, data, match):
    """vlc's 10 min of passive time would leave Training/productive for
    Video/unproductive; its 5 idle minutes stay; code stays unclassified."""
    admin = col.token("admin")
    rules = [{**match, "category": "Training", "productivity": "productive",
              "passive": "unproductive", "passive_category": "Video"}]
    got = col.request("POST", "/api/v1/rules/preview", admin,
                      json={"rules": rules, "tz": "UTC", **day_params()})
    assert got.status_code == 200, got.text
    got = got.json()
    assert got["source"] == ("rollups" if "app" in match else "raw spans (titles)")
    assert [(r["seconds"], r["changed_seconds"], r["passive_seconds"],
             r["passive_changed_seconds"]) for r in got["rules"]] == [(900, 600, 600, 600)]
    assert (got["total_seconds"], got["changed_seconds"], got["unclassified_seconds"],
            got["passive_seconds"]) == (2100, 600, 1200, 600)
    assert (got["current"]["productive_seconds"], got["predicted"]["productive_seconds"],
            got["predicted"]["unproductive_seconds"], got["predicted"]["unclassified_seconds"]
            ) == (600, 0, 600, 1200)
    assert col.get("/api/v1/rules", admin).json()["rules"] == RULES     # nothing saved


def timeline_classes(col, data) -> tuple[list[tuple], list[tuple]]:
    """The timeline's spans as (app, category, class, passive category, passive class)
    and its passive segments as (start, end minutes after 09:00, app, category, class)."""
    got = get(col, data, "/api/v1/timeline", agent=data["agent"], date=DAY.isoformat()).json()
    spans = [(s["app"], s["category"], s["productivity"], s["passive_category"],
              s["passive_productivity"]) for s in got["spans"]]
    segments = [((p["start_ms"] - T0) / MIN, (p["end_ms"] - T0) / MIN,
                 got["spans"][p["span"]]["app"], p["category"], p["productivity"])
                for p in got["passive_segments"]]
    return spans, segments


def test_live_shows_state_app_since_and_backlog(col, data):
    b = col.enroll_agent(hostname="ws-now")
    now = int(time.time() * 1000)
    start = now - 25_000
    send(col, b, [window(start, 10, "editor", "notes.txt")], [activity(start, 10)],
         flush_interval_ms=10_000)
    send(col, b, [part(window(start + 10_000, 10, "editor", "notes.txt"))],
         [part(activity(start + 10_000, 10))], spool_batches=3, spool_bytes=2048)
    live = {a["agent_id"]: a for a in get(col, data, "/api/v1/live").json()["agents"]}
    mine = live[b.agent_id]
    assert (mine["state"], mine["app"], mine["title"]) == ("active", "editor", "notes.txt")
    assert mine["since_ms"] == start and mine["app_since_ms"] == start   # the chain's start
    assert (mine["spool_batches"], mine["spool_bytes"]) == (3, 2048)
    assert mine["flush_interval_s"] == 10 and mine["missed_flushes"] == 0
    assert mine["data_until_ms"] == start + 20_000
    assert mine["since"].startswith(datetime.fromtimestamp(start / 1000, UTC).strftime("%Y-"))
    # carol's agent sent history only (two days old): nothing is known about now
    carol = live[data["agent"]]
    assert (carol["state"], carol["last_state"]) == ("unknown", "idle")
    assert col.get("/api/v1/live").status_code == 401


def test_passive_now_and_offline_after_two_missed_flushes(col, data):
    c = col.enroll_agent(hostname="ws-call")
    now = int(time.time() * 1000)
    send(col, c, [window(now - 8_000, 8, "zoom", "Meeting")],
         [activity(now - 8_000, 3), part(activity(now - 5_000, 5, PASSIVE), False, reason=CALL)],
         flush_interval_ms=500)
    mine = next(a for a in get(col, data, "/api/v1/live").json()["agents"]
                if a["agent_id"] == c.agent_id)
    assert (mine["state"], mine["reason"], mine["app"]) == ("passive", "call", "zoom")
    assert mine["since_ms"] == now - 5_000
    # two flushes of 0.5 s missing (after the 5 s delivery grace): offline
    wait_for(lambda: next(a for a in get(col, data, "/api/v1/live").json()["agents"]
                          if a["agent_id"] == c.agent_id)["state"] == "offline",
             timeout=30, what="the agent to be called offline")
    gone = next(a for a in get(col, data, "/api/v1/live").json()["agents"]
                if a["agent_id"] == c.agent_id)
    assert gone["missed_flushes"] >= 2 and gone["last_state"] == "passive"
    assert gone["reason"] == ""


@pytest.mark.parametrize(("state", "reason", "says"), [
    (PASSIVE, 9, "known passive reason"), (ACTIVE, MEDIA, "PASSIVE spans only")])
def test_a_bad_passive_reason_is_refused(col, data, state, reason, says):
    import grpc

    d = col.enroll_agent(hostname="ws-bad")
    bad = agent_pb2.Batch(agent_id=d.agent_id, sequence=1, host=agent_pb2.HostInfo(user="x"),
                          activity=[activity(int(time.time() * 1000) - 5000, 1, state)])
    bad.activity[0].reason = reason
    with pytest.raises(grpc.RpcError) as refused:
        col.upload(d, [bad])
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in refused.value.details()
