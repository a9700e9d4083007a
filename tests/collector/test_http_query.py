"""Summaries, timelines, rules and agents over HTTP against a real collector fed
by real agents over gRPC; every number is worked out by hand below."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from http_support import IDLE, activity, window
from worklens.v1 import agent_pb2

DAY = (datetime.now(UTC) - timedelta(days=2)).date()
T0 = int(datetime(DAY.year, DAY.month, DAY.day, 9, tzinfo=UTC).timestamp() * 1000)
MIN = 60_000
EVIL = '<img src=x onerror=alert(1)> =HYPERLINK("http://x")'
RULES = [{"app": "^code$", "category": "Development", "productivity": "productive"},
         {"app": "slack", "category": "Chat", "productivity": "neutral"}]


pytestmark = pytest.mark.both_engines


@pytest.fixture(scope="module")
def data(col):
    """alice (ws-a): code 09:00-09:30 (active 09:00-09:20, idle 09:20-09:30),
    firefox 09:30-09:40 active. bob (ws-b): slack 10:00-10:15 active."""
    admin = col.token("admin")
    assert col.request("PUT", "/api/v1/rules", admin, json={"rules": RULES}).status_code == 200
    a = col.enroll_agent(hostname="ws-a")
    b = col.enroll_agent(hostname="ws-b")
    col.send(a, "alice", [window(T0, 1800, "code", "main.py - code"),
                          window(T0 + 30 * MIN, 600, "firefox", EVIL)],
             [activity(T0, 1200, keys=300), activity(T0 + 20 * MIN, 600, IDLE),
              activity(T0 + 30 * MIN, 600, clicks=12)], hostname="ws-a")
    col.send(b, "bob", [window(T0 + 60 * MIN, 900, "slack")], [activity(T0 + 60 * MIN, 900)],
             hostname="ws-b")
    col.send(a, "alice", processes=[
        proc(T0 + MIN, "code", "alice", 12.5, 300 << 20),
        proc(T0 + 2 * MIN, "code", "alice", 7.5, 500 << 20),
        proc(T0 + MIN, "postgres", "postgres", 3.0, 900 << 20),
        proc(T0 + 2 * MIN, EVIL, "root", 1.0, 10 << 20),
        proc(T0 + 26 * 60 * MIN, "tomorrow", "alice", 99.0, 1 << 30)], hostname="ws-a")
    return {"a": a.agent_id, "b": b.agent_id, "viewer": col.token("viewer"), "admin": admin}


def proc(at_ms: int, name: str, user: str, cpu_seconds: float, rss: int
         ) -> agent_pb2.ProcessSample:
    return agent_pb2.ProcessSample(time_ms=at_ms, pid=7, name=name, user=user, rss_bytes=rss,
                                   cpu_seconds=cpu_seconds, interval_ms=60_000)


def summary(col, data, **params):
    params = {"from": DAY.isoformat(), "to": DAY.isoformat(), "tz": "UTC", **params}
    resp = col.get("/api/v1/summary", data["viewer"], params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_summary_by_app(col, data):
    got = summary(col, data, by="app")
    assert got["by"] == "app" and got["tz"] == "UTC" and got["from"] == DAY.isoformat()
    rows = {r["app"]: (r["active_seconds"], r["idle_seconds"]) for r in got["rows"]}
    assert rows == {"code": (1200, 600), "slack": (900, 0), "firefox": (600, 0)}
    assert [r["app"] for r in got["rows"]] == ["code", "slack", "firefox"]
    assert got["total"]["active_seconds"] == 2700 and got["total"]["idle_seconds"] == 600


def test_summary_by_user_has_productivity_shares(col, data):
    rows = {r["user"]: r for r in summary(col, data, by="user")["rows"]}
    alice, bob = rows["alice"], rows["bob"]
    assert alice["active_seconds"] == 1800
    assert alice["productive_share"] == pytest.approx(2 / 3, abs=1e-3)
    assert alice["unclassified_share"] == pytest.approx(1 / 3, abs=1e-3)
    assert bob["neutral_share"] == 1.0 and bob["productive_share"] == 0.0


def test_summary_filters_and_other_groupings(col, data):
    by_cat = {r["category"]: r["active_seconds"] for r in summary(col, data, by="category")["rows"]}
    assert by_cat == {"Development": 1200, "Chat": 900, "(unclassified)": 600}
    only_a = summary(col, data, by="app", agent=data["a"])
    assert {r["app"] for r in only_a["rows"]} == {"code", "firefox"}
    only_bob = summary(col, data, by="day", user="bob")
    assert only_bob["rows"] == [pytest.approx(only_bob["rows"][0])]
    assert only_bob["rows"][0]["day"] == DAY.isoformat()
    assert only_bob["rows"][0]["active_seconds"] == 900
    by_agent = {r["agent"]: r["active_seconds"] for r in summary(col, data, by="agent")["rows"]}
    assert by_agent == {data["a"]: 1800, data["b"]: 900}
    hours = summary(col, data, by="hour")["rows"]
    assert [(r["hour"][11:16], r["active_seconds"]) for r in hours] == [("09:00", 1800),
                                                                        ("10:00", 900)]


def test_summary_time_zone_moves_day_boundaries(col, data):
    # In Pacific/Honolulu (UTC-10) alice's 09:00-09:40 UTC is 23:00-23:40 the previous
    # day, and bob's 10:00-10:15 UTC is 00:00-00:15 on DAY.
    prev = (DAY - timedelta(days=1)).isoformat()
    got = summary(col, data, by="day", tz="Pacific/Honolulu", **{"from": prev})
    assert got["tz"] == "Pacific/Honolulu"
    assert [(r["day"], r["active_seconds"]) for r in got["rows"]] == [(prev, 1800),
                                                                      (DAY.isoformat(), 900)]
    only_prev = summary(col, data, by="user", tz="Pacific/Honolulu", **{"from": prev, "to": prev})
    assert [r["user"] for r in only_prev["rows"]] == ["alice"]


def test_summary_unknown_agent_is_404_naming_it(col, data):
    resp = col.get("/api/v1/summary", data["viewer"],
                   params={"from": DAY.isoformat(), "by": "app", "agent": "ag-nope"})
    assert resp.status_code == 404 and "ag-nope" in resp.json()["error"]


def test_timeline_orders_spans_with_states(col, data):
    resp = col.get("/api/v1/timeline", data["viewer"],
                   params={"agent": data["a"], "date": DAY.isoformat(), "tz": "UTC"})
    assert resp.status_code == 200, resp.text
    tl = resp.json()
    assert tl["agent"] == data["a"] and tl["date"] == DAY.isoformat()
    assert tl["end_ms"] - tl["start_ms"] == 86_400_000
    assert [(s["app"], s["start_ms"], s["end_ms"]) for s in tl["spans"]] == [
        ("code", T0, T0 + 30 * MIN), ("firefox", T0 + 30 * MIN, T0 + 40 * MIN)]
    assert tl["spans"][1]["title"] == EVIL  # raw in JSON; the dashboard renders it as text
    assert [s["state"] for s in tl["spans"][0]["states"]] == ["active", "idle"]
    assert tl["spans"][0]["category"] == "Development"
    assert [a["state"] for a in tl["activity"]] == ["active", "idle", "active"]
    assert tl["active_seconds"] == 1800 and tl["idle_seconds"] == 600
    missing = col.get("/api/v1/timeline", data["viewer"], params={"agent": "ag-nope"})
    assert missing.status_code == 404 and "ag-nope" in missing.json()["error"]


def test_rules_round_trip_reapply_to_history_and_are_audited(col, data):
    admin = data["admin"]
    assert col.get("/api/v1/rules", data["viewer"]).json()["rules"] == RULES
    new = [{"app": "firefox", "category": "Research", "productivity": "productive"}, *RULES]
    resp = col.request("PUT", "/api/v1/rules", admin, json={"rules": new})
    assert resp.status_code == 200, resp.text
    try:
        alice = next(r for r in summary(col, data, by="user")["rows"] if r["user"] == "alice")
        assert alice["productive_share"] == 1.0
        entries = col.get("/api/v1/audit", admin, params={"action": "rules"}).json()["entries"]
        assert entries[0]["action"] == "rules.put" and entries[0]["params"]["rules"] == new
    finally:
        col.request("PUT", "/api/v1/rules", admin, json={"rules": RULES})


def test_rules_preview_from_rollups_and_from_raw_titles(col, data):
    """App rules are previewed from the rollups, title rules from the raw spans; the
    saved rules stay. Window time: code 1800 s, firefox 600 s, slack 900 s."""
    day = {"from": DAY.isoformat(), "to": DAY.isoformat(), "tz": "UTC"}
    apps = col.request("POST", "/api/v1/rules/preview", data["admin"], json={**day, "rules": [
        {"app": "firefox", "category": "Web", "productivity": "neutral"}, RULES[0]]}).json()
    assert apps["source"] == "rollups"
    assert (apps["total_seconds"], apps["changed_seconds"], apps["unclassified_seconds"]) == (
        3300.0, 1500.0, 900.0)   # firefox newly Web, slack no longer Chat
    assert [(r["seconds"], r["changed_seconds"]) for r in apps["rules"]] == [(600.0, 600.0),
                                                                              (1800.0, 0.0)]
    titles = col.request("POST", "/api/v1/rules/preview", data["admin"], json={**day, "rules": [
        {"title": "main", "category": "Dev", "productivity": "productive"}]}).json()
    assert titles["source"] == "raw spans (titles)"
    assert (titles["total_seconds"], titles["changed_seconds"]) == (3300.0, 2700.0)
    assert col.get("/api/v1/rules", data["viewer"]).json()["rules"] == RULES


@pytest.mark.parametrize(("body", "words"), [
    ({"rules": [RULES[0], {"app": "([", "category": "X", "productivity": "neutral"}]},
     ["rules[1].app", "regular expression"]),
    ({"rules": [{"app": "x", "category": "X", "productivity": "great"}]},
     ["rules[0].productivity"]),
    ({"rules": "all"}, ["rules"]),
    ({}, ["rules"]),
])
def test_bad_rules_are_400_naming_the_rule_and_change_nothing(col, data, body, words):
    resp = col.request("PUT", "/api/v1/rules", data["admin"], json=body)
    assert resp.status_code == 400, resp.text
    for word in words:
        assert word in resp.json()["error"]
    assert col.get("/api/v1/rules", data["viewer"]).json()["rules"] == RULES


def test_processes_top_by_cpu_and_memory_for_one_agent_and_day(col, data):
    params = {"agent": data["a"], "date": DAY.isoformat(), "tz": "UTC"}
    resp = col.get("/api/v1/processes", data["viewer"], params=params)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert got["agent"] == data["a"] and got["date"] == DAY.isoformat() and got["tz"] == "UTC"
    # code: 12.5 + 7.5 s CPU, peak 500 MiB; "tomorrow" is on the next day, not listed.
    assert [(p["name"], p["user"], p["cpu_seconds"], p["peak_rss_bytes"], p["samples"])
            for p in got["by_cpu"]] == [("code", "alice", 20.0, 500 << 20, 2),
                                        ("postgres", "postgres", 3.0, 900 << 20, 1),
                                        (EVIL, "root", 1.0, 10 << 20, 1)]
    assert [p["name"] for p in got["by_memory"]] == ["postgres", "code", EVIL]
    other = col.get("/api/v1/processes", data["viewer"], params={**params, "agent": data["b"]})
    assert other.status_code == 200 and other.json()["by_cpu"] == []


def test_processes_refuses_no_token_bad_date_and_unknown_agent(col, data):
    params = {"agent": data["a"], "date": DAY.isoformat()}
    assert col.get("/api/v1/processes", params=params).status_code == 401
    bad = col.get("/api/v1/processes", data["viewer"], params={**params, "date": "2024-13-45"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("date:")
    bad_tz = col.get("/api/v1/processes", data["viewer"], params={**params, "tz": "Mars/Base"})
    assert bad_tz.status_code == 400 and bad_tz.json()["error"].startswith("tz:")
    missing = col.get("/api/v1/processes", data["viewer"], params={"agent": "ag-nope"})
    assert missing.status_code == 404 and "ag-nope" in missing.json()["error"]
    doc = col.get("/api/v1/openapi.json").json()["paths"]["/api/v1/processes"]["get"]
    assert {p["name"] for p in doc["parameters"]} == {"agent", "date", "tz"}
