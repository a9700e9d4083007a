"""Summaries against hand-computed answers on the fixed dataset (tests/collector/dataset.py),
ingested through the real store write path."""

from __future__ import annotations

from datetime import date, datetime

import dataset as ds
import pytest
from worklens.collector.reports.summary import (
    SummaryError,
    UnknownAgent,
    list_agents,
    summarize,
    timeline,
    top_processes,
)

SPRING, AUTUMN = ds.SPRING_DAY, ds.AUTUMN_DAY
BEFORE = date(2026, 3, 28)
pytestmark = pytest.mark.both_engines


@pytest.fixture
def store(store_url):
    store = ds.open_store(store_url)
    ds.load(store)
    yield store
    store.close()


def rows(summary):
    return {r.key: r for r in summary.rows}


def test_day_totals_and_productivity_shares_in_berlin(store):
    s = summarize(store, BEFORE, SPRING, "day", ds.ZONE, user="alice")
    by_day = rows(s)
    assert list(by_day) == ["2026-03-28", "2026-03-29"]
    day = by_day["2026-03-29"]
    want = ds.ALICE_SPRING_DAY
    assert (day.active_seconds, day.idle_seconds, day.spans) == (
        want["active"], want["idle"], want["spans"])
    assert (day.productive_seconds, day.neutral_seconds, day.unproductive_seconds,
            day.unclassified_seconds) == (want["productive"], want["neutral"],
                                          want["unproductive"], want["unclassified"])
    assert day.productive_share == round(45 / 115, 4)
    assert day.unclassified_share == round(40 / 115, 4)
    assert day.neutral_share == round(10 / 115, 4) and day.unproductive_share == round(20 / 115, 4)
    before = by_day["2026-03-28"]
    assert (before.active_seconds, before.idle_seconds, before.spans) == (
        ds.ALICE_DAY_BEFORE["active"], ds.ALICE_DAY_BEFORE["idle"], ds.ALICE_DAY_BEFORE["spans"])
    assert s.total.active_seconds == want["active"] + ds.ALICE_DAY_BEFORE["active"]


def test_hours_across_the_spring_dst_change(store):
    s = summarize(store, SPRING, SPRING, "hour", ds.ZONE, agent=ds.ALICE)
    got = {k: {"active": r.active_seconds, "idle": r.idle_seconds, "spans": r.spans}
           for k, r in rows(s).items()}
    assert got == ds.ALICE_SPRING_HOURS
    assert [r.key for r in s.rows] == sorted(ds.ALICE_SPRING_HOURS)   # chronological


def test_the_repeated_autumn_hour_is_two_rows_in_order(store):
    s = summarize(store, AUTUMN, AUTUMN, "hour", ds.ZONE, user="bob")
    got = {k: {"active": r.active_seconds, "idle": r.idle_seconds, "spans": r.spans}
           for k, r in rows(s).items()}
    assert got == ds.BOB_AUTUMN_HOURS
    assert [r.key for r in s.rows] == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]
    day = summarize(store, AUTUMN, AUTUMN, "day", ds.ZONE, agent=ds.BOB).rows[0]
    assert (day.active_seconds, day.idle_seconds, day.spans, day.productive_share) == (
        ds.BOB_AUTUMN_DAY["active"], ds.BOB_AUTUMN_DAY["idle"], ds.BOB_AUTUMN_DAY["spans"], 1.0)


def test_categories_follow_rule_order(store):
    s = summarize(store, BEFORE, SPRING, "category", ds.ZONE, agent=ds.ALICE)
    assert {k: r.active_seconds for k, r in rows(s).items()} == ds.ALICE_CATEGORIES
    # the fleet-wide table (no filter) gives the same for these days (bob has none)
    fleet = summarize(store, BEFORE, SPRING, "category", ds.ZONE)
    assert {k: r.active_seconds for k, r in rows(fleet).items()} == ds.ALICE_CATEGORIES
    video = rows(fleet)["Video"]
    assert video.unproductive_share == 1.0 and video.productive_seconds == 0.0


def test_apps_with_excluded_time_and_idle_inside_a_span(store):
    s = summarize(store, BEFORE, SPRING, "app", ds.ZONE)
    got = {k: (r.active_seconds, r.idle_seconds, r.spans) for k, r in rows(s).items()}
    assert got == ds.ALICE_APPS
    assert s.rows[0].key == "code"   # most active first


def test_agent_and_user_groupings(store):
    s = summarize(store, BEFORE, AUTUMN, "agent", ds.ZONE)
    assert {k: r.active_seconds for k, r in rows(s).items()} == {
        ds.ALICE: 125 * ds.MIN, ds.BOB: 60 * ds.MIN}
    u = summarize(store, BEFORE, AUTUMN, "user", ds.ZONE)
    assert {k: (r.active_seconds, r.idle_seconds) for k, r in rows(u).items()} == {
        "alice": (125 * ds.MIN, 5 * ds.MIN), "bob": (60 * ds.MIN, 15 * ds.MIN)}
    assert summarize(store, BEFORE, AUTUMN, "user", ds.ZONE, user="nobody").rows == []


def test_half_hour_zone_from_15_minute_buckets(store):
    s = summarize(store, SPRING, SPRING, "hour", "Asia/Kolkata", agent=ds.ALICE)
    got = {k: {"active": r.active_seconds, "idle": r.idle_seconds, "spans": r.spans}
           for k, r in rows(s).items()}
    assert got == ds.ALICE_KOLKATA_HOURS
    # +05:45: every span of alice falls on local 2026-03-29, all of it counted
    nepal = summarize(store, SPRING, SPRING, "day", "Asia/Kathmandu", agent=ds.ALICE)
    assert [(r.key, r.active_seconds) for r in nepal.rows] == [("2026-03-29", 125 * ds.MIN)]


def test_utc_splits_the_days_differently(store):
    s = summarize(store, BEFORE, SPRING, "day", "UTC", agent=ds.ALICE)
    # UTC 03-28: W1 22:50-23:20 (active 25, idle 5), W2 20, W3 23:40-23:50 active 10
    assert {k: r.active_seconds for k, r in rows(s).items()} == {
        "2026-03-28": 55 * ds.MIN, "2026-03-29": 70 * ds.MIN}


def test_top_processes_per_agent_day(store):
    days = top_processes(store, AUTUMN, AUTUMN, ds.ZONE, agent=ds.BOB)
    assert len(days) == 1 and days[0].agent_id == ds.BOB and days[0].date == "2026-10-25"
    assert [(p.name, p.cpu_seconds) for p in days[0].by_cpu] == ds.BOB_TOP_CPU
    assert [(p.name, p.peak_rss_bytes) for p in days[0].by_memory] == ds.BOB_TOP_MEMORY
    with_agent = summarize(store, AUTUMN, AUTUMN, "app", ds.ZONE, agent=ds.BOB)
    assert with_agent.top_processes == days


def test_timeline_matches_the_summary(store):
    t = timeline(store, ds.ALICE, SPRING, ds.ZONE)
    assert [s.app for s in t.spans] == ["code", "firefox", "firefox", "slack", "(excluded)",
                                        "code"]
    first = t.spans[0]   # W1 clipped at local midnight
    assert first.start == "2026-03-29T00:00:00+01:00" and first.end == "2026-03-29T00:20:00+01:00"
    assert [(x.state, (x.end_ms - x.start_ms) // 60000) for x in first.states] == [
        ("active", 10), ("idle", 5), ("active", 5)]
    assert t.spans[2].states[-1].state == "locked"
    assert t.spans[3].end == "2026-03-29T03:20:00+02:00"   # across the DST change
    assert t.spans[4].title == "" and t.spans[5].title == ds.HOSTILE_TITLE
    day = summarize(store, SPRING, SPRING, "day", ds.ZONE, agent=ds.ALICE).rows[0]
    assert (t.active_seconds, t.idle_seconds) == (day.active_seconds, day.idle_seconds)
    assert t.to_dict()["spans"][1]["category"] == "Video"


def test_list_agents(store):
    agents = {a.agent_id: a for a in list_agents(store)}
    assert set(agents) == {ds.ALICE, ds.BOB}
    assert agents[ds.BOB].dropped_events == ds.BOB_DROPPED
    assert agents[ds.ALICE].last_sequence == 3 and not agents[ds.ALICE].revoked


def test_bad_queries_are_refused_with_a_message(store):
    with pytest.raises(SummaryError, match="by: expected one of"):
        summarize(store, SPRING, SPRING, "week", ds.ZONE)
    with pytest.raises(SummaryError, match="after"):
        summarize(store, SPRING, BEFORE, "day", ds.ZONE)
    with pytest.raises(UnknownAgent):
        summarize(store, SPRING, SPRING, "day", ds.ZONE, agent="ag-nobody")
    with pytest.raises(SummaryError, match="15-minute"):   # local mean time of 1890
        summarize(store, date(1890, 1, 1), date(1890, 1, 1), "day", "Europe/Berlin")


def test_json_shape(store):
    d = summarize(store, SPRING, SPRING, "user", ds.ZONE).to_dict()
    assert d["by"] == "user" and d["tz"] == ds.ZONE and d["from_date"] == "2026-03-29"
    assert d["rows"][0]["key"] == "alice" and d["total"]["key"] == "total"
    assert datetime.fromisoformat(timeline(store, ds.BOB, AUTUMN, ds.ZONE).spans[0].start)
