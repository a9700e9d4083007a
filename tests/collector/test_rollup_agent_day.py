"""``rollup_agent_day`` and ``rollup_app_day`` (migrations 0007, 0008) stay the
per-UTC-day sums of ``rollup_window`` through everything that changes it -
ingest, a rules change, a rebuild, retention - and the summaries that read them
(by agent/user/group; by app/category for some agents) give the same numbers as
summing the 15-minute rows, in any time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dataset as ds
import pytest
from worklens.collector.reports.summary import CLASSES, _query, summarize
from worklens.collector.rollup import buckets as rollup

pytestmark = pytest.mark.both_engines
DAY_MS = 86_400_000


@pytest.fixture
def store(store_url):
    store = ds.open_store(store_url)
    ds.load(store)
    yield store
    store.close()


def by_day(store) -> dict[tuple, tuple]:
    with store.reader() as conn:
        expected: dict = {}
        present = set()
        for day, agent, user, cls, active, idle, spans, passive in conn.execute(
                "SELECT bucket - bucket % 86400000, agent, username, productivity, "
                "sum(active_ms), sum(idle_ms), sum(spans), sum(passive_ms) FROM rollup_window "
                "GROUP BY 1, 2, 3, 4"):
            present.add((cls, day, agent, user))
            expected[(day, agent, user, cls)] = active
            for k, v in (("idle", idle), ("spans", spans), ("passive", passive)):
                expected[(day, agent, user, k)] = expected.get((day, agent, user, k), 0) + v
        stored = {}
        for day, agent, user, *classes, idle, spans, passive in conn.execute(
                "SELECT day, agent, username, productive_ms, neutral_ms, unproductive_ms, "
                "unclassified_ms, idle_ms, spans, passive_ms FROM rollup_agent_day"):
            for cls, active in zip(CLASSES, classes, strict=True):
                if active or (cls, day, agent, user) in present:
                    stored[(day, agent, user, cls)] = active
            stored[(day, agent, user, "idle")] = idle
            stored[(day, agent, user, "spans")] = spans
            stored[(day, agent, user, "passive")] = passive
    return expected, stored


def app_days(store) -> tuple[dict, dict]:
    with store.reader() as conn:
        expected = {tuple(r[:5]): tuple(r[5:]) for r in conn.execute(
            "SELECT bucket - bucket % 86400000, agent, app, category, productivity, "
            "sum(active_ms), sum(idle_ms), sum(spans), sum(passive_ms) FROM rollup_window "
            "GROUP BY 1, 2, 3, 4, 5")}
        stored = {tuple(r[:5]): tuple(r[5:]) for r in conn.execute(
            "SELECT day, agent, app, category, productivity, active_ms, idle_ms, spans, "
            "passive_ms FROM rollup_app_day")}
    return expected, stored


def slow_rows(store, first, last, by, tz):
    """The same summary through the 15-minute table (the pre-0007 query)."""
    from worklens.collector.reports.summary import day_range_ms, zone

    start, end = day_range_ms(first, last, zone(tz))
    with store.reader() as conn:
        sql, params = _query("agent" if by == "group" else by, start, end, None, None)
        out: dict = {}
        for dim, prod, active, idle, spans, _passive in conn.execute(sql, params):
            out[(dim, prod)] = (active, idle, spans)
    return out


def test_the_day_table_follows_every_change(store):
    expected, stored = by_day(store)
    assert expected and stored == expected
    # app-only rules: re-applied by UPDATE of the rollups' class (the "move" trigger)
    rollup.set_rules(store, [{"app": "firefox", "category": "Web", "productivity": "neutral"}])
    assert by_day(store)[1] == by_day(store)[0]
    assert app_days(store)[1] == app_days(store)[0]
    rollup.set_rules(store, [{"app": "firefox", "category": "Web", "productivity": "unproductive"}])
    assert by_day(store)[1] == by_day(store)[0]
    assert app_days(store)[1] == app_days(store)[0]
    # title rules: window rollups recomputed (delete + insert)
    rollup.set_rules(store, [{"app": "firefox", "category": "Web", "productivity": "neutral"},
                            {"title": "main", "category": "Code", "productivity": "productive"}])
    expected, stored = by_day(store)
    assert stored == expected
    store.write(lambda conn: rollup.rebuild_in(conn))
    assert by_day(store)[1] == by_day(store)[0]
    assert app_days(store)[1] == app_days(store)[0]
    store.write(lambda conn: conn.execute(
        "DELETE FROM rollup_window WHERE bucket < (SELECT max(bucket) FROM rollup_window)"))
    expected, stored = by_day(store)
    assert stored == expected      # zero rows are removed, not left behind
    assert app_days(store)[1] == app_days(store)[0]


@pytest.mark.parametrize("tz", ["UTC", ds.ZONE, "Asia/Kathmandu", "America/St_Johns"])
@pytest.mark.parametrize("by", ["agent", "user"])
def test_summaries_by_agent_and_user_match_the_fine_rollups(store, tz, by):
    first, last = ds.SPRING_DAY - timedelta(days=2), ds.AUTUMN_DAY + timedelta(days=1)
    for a, b in ((first, last), (ds.SPRING_DAY, ds.SPRING_DAY), (date(2026, 3, 28), ds.SPRING_DAY)):
        fast = summarize(store, a, b, by, tz)
        slow = slow_rows(store, a, b, by, tz)
        assert fast.total.active_seconds * 1000 == sum(v[0] for v in slow.values())
        assert fast.total.idle_seconds * 1000 == sum(v[1] for v in slow.values())
        assert fast.total.spans == sum(v[2] for v in slow.values())
        assert len(fast.rows) == len({k[0] for k in slow})



def test_by_day_for_one_user_in_utc_reads_whole_days(store):
    first, last = ds.SPRING_DAY - timedelta(days=2), ds.AUTUMN_DAY + timedelta(days=1)
    fast = summarize(store, first, last, "day", "UTC", user="alice")
    with store.reader() as conn:
        slow = {datetime.fromtimestamp(day / 1000, UTC).date().isoformat(): active / 1000
                for day, active in conn.execute(
                    "SELECT bucket - bucket % 86400000, sum(active_ms) FROM rollup_window "
                    "WHERE username = 'alice' GROUP BY 1")}
    assert {r.key: r.active_seconds for r in fast.rows if r.active_seconds} == {
        k: v for k, v in slow.items() if v}
    assert fast.rows == sorted(fast.rows, key=lambda r: r.key)


@pytest.mark.parametrize("tz", ["UTC", ds.ZONE, "Asia/Kathmandu"])
@pytest.mark.parametrize("by", ["app", "category"])
def test_scoped_summaries_by_app_match_the_fine_rollups(store, tz, by):
    with store.reader() as conn:
        keys = frozenset(k for (k,) in conn.execute("SELECT id FROM agents"))
    one = frozenset([min(keys)])
    first, last = ds.SPRING_DAY - timedelta(days=2), ds.AUTUMN_DAY + timedelta(days=1)
    for agents in (keys, one):
        fast = summarize(store, first, last, by, tz, agents=agents)
        slow = summarize(store, first, last, by, tz, agent=None, user=None)  # fleet table
        if agents == keys:
            assert fast.rows == slow.rows and fast.total == slow.total
        else:
            from worklens.collector.reports.summary import agent_names

            with store.reader() as conn:
                name = agent_names(conn)[min(keys)]
            mine = summarize(store, first, last, by, tz, agent=name)   # the agent filter
            assert fast.rows == mine.rows and fast.total == mine.total
