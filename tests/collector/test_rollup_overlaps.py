"""Spans that overlap ACROSS batches (issue 18): raw rows are stored as sent,
and the rollups count each instant of an agent's timeline once, for the span
stored first. Summaries never show more time than the wall clock for one
agent, and a rebuild from raw rows gives the rollups ingest kept."""

from __future__ import annotations

import asyncio
import os
from datetime import date

import dataset as ds
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_rollup import snapshot
from worklens.collector.reports.summary import summarize
from worklens.collector.rollup import buckets as rollup
from worklens.v1 import agent_pb2

T0 = ds.ms("2026-03-29T08:00")
HOUR = 3_600_000
DAY = date(2026, 3, 29)
ACTIVE, IDLE = agent_pb2.ACTIVITY_STATE_ACTIVE, agent_pb2.ACTIVITY_STATE_IDLE


@pytest.fixture
def store(tmp_path):
    store = ds.open_store(tmp_path)
    yield store
    store.close()


def batch(seq: int, windows=(), activity=()) -> agent_pb2.Batch:
    out = agent_pb2.Batch(agent_id=ds.ALICE, sequence=seq,
                          host=agent_pb2.HostInfo(user="alice"))
    for start, length, app in windows:
        out.windows.add(start_ms=start, duration_ms=length, app=app, title=app)
    for start, length, state in activity:
        out.activity.add(start_ms=start, duration_ms=length, state=state, key_presses=1)
    return out


def day_total(store):
    return summarize(store, DAY, DAY, "day", "UTC").total


def test_the_same_hour_sent_in_ten_batches_counts_once(store):
    key = ds.add_agent(store, ds.ALICE, "alice")
    batches = [batch(i + 1, windows=[(T0, HOUR, "code")]) for i in range(10)]
    batches.append(batch(11, activity=[(T0, HOUR, ACTIVE)]))
    ds.ingest(store, key, batches)
    assert day_total(store).active_seconds == 3600
    with store.reader() as conn:   # raw rows as sent
        assert conn.execute("SELECT count(*) FROM window_spans").fetchone()[0] == 10
    ingested = snapshot(store)
    rollup.rebuild(store)
    assert snapshot(store) == ingested


def test_overlapping_week_long_spans_in_many_batches_never_exceed_the_wall_clock(store):
    key = ds.add_agent(store, ds.ALICE, "alice")
    week = 7 * 24 * HOUR
    batches = []
    for i in range(60):
        batches.append(batch(2 * i + 1, windows=[(T0 + i * 1000, week, f"app{i}")]))
        batches.append(batch(2 * i + 2, activity=[(T0 + i * 1000, week,
                                                   ACTIVE if i % 2 else IDLE)]))

    async def run():   # as agents do: many batches share group commits
        await asyncio.gather(*(store.ingest(key, b) for b in batches))
    asyncio.run(run())
    summary = summarize(store, DAY, date(2026, 4, 6), "day", "UTC")
    wall = week + 59 * 1000
    assert (summary.total.active_seconds + summary.total.idle_seconds) * 1000 <= wall
    ingested = snapshot(store)
    rollup.rebuild(store)
    assert snapshot(store) == ingested


def test_late_spans_that_do_not_overlap_count_in_full(store):
    """An agent's spans arriving newest first (no overlap): nothing is cut."""
    key = ds.add_agent(store, ds.ALICE, "alice")
    batches = [batch(i + 1, windows=[(T0 + (9 - i) * 60_000, 60_000, "code")],
                     activity=[(T0 + (9 - i) * 60_000, 60_000, ACTIVE)]) for i in range(10)]
    ds.ingest(store, key, batches)
    assert day_total(store).active_seconds == 600
    with store.reader() as conn:
        assert conn.execute("SELECT overlaps FROM rollup_agent").fetchone()[0] == 0


spans = st.lists(st.tuples(st.sampled_from(["windows", "activity"]),
                           st.integers(0, 40), st.integers(1, 30),
                           st.sampled_from([ACTIVE, IDLE, agent_pb2.ACTIVITY_STATE_LOCKED,
                                            agent_pb2.ACTIVITY_STATE_PASSIVE])),
                 min_size=1, max_size=25)


@settings(max_examples=int(os.environ.get("OVERLAP_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(spans, st.integers(1, 4))
def test_any_overlapping_input_counts_at_most_the_wall_clock_and_rebuilds_the_same(
        tmp_path_factory, spans, per_batch):
    store = ds.open_store(tmp_path_factory.mktemp("overlaps"))
    try:
        # passive time of some apps in a category of its own: rollup rows apart
        rollup.set_rules(store, [{"app": "^a1", "category": "C", "productivity": "neutral",
                                  "passive": "productive", "passive_category": "P"}])
        key = ds.add_agent(store, ds.ALICE, "alice")
        batches = []
        for seq, i in enumerate(range(0, len(spans), per_batch), start=1):
            b = batch(seq)
            for kind, start, length, state in spans[i:i + per_batch]:
                start_ms, length_ms = T0 + start * 60_000, length * 60_000
                if kind == "windows":
                    b.windows.add(start_ms=start_ms, duration_ms=length_ms, app=f"a{start}")
                else:
                    b.activity.add(start_ms=start_ms, duration_ms=length_ms, state=state,
                                   key_presses=1)
            batches.append(b)
        ds.ingest(store, key, [_clipped(b) for b in batches])
        total = day_total(store)
        windows = [(s, s + n) for k, s, n, _ in spans if k == "windows"]
        acts = [(s, s + n) for k, s, n, _ in spans if k == "activity"]
        covered = len(set().union(*[range(s, e) for s, e in windows])) * 60
        assert total.active_seconds + total.idle_seconds + total.passive_seconds <= covered
        state_time = len(set().union(*[range(s, e) for s, e in acts])) * 60
        with store.reader() as conn:
            active, idle, locked, passive = conn.execute(
                "SELECT coalesce(sum(active_ms), 0), coalesce(sum(idle_ms), 0), "
                "coalesce(sum(locked_ms), 0), coalesce(sum(passive_ms), 0) "
                "FROM rollup_activity").fetchone()
        assert active + idle + locked + passive <= state_time * 1000
        ingested = snapshot(store)
        rollup.rebuild(store)
        assert snapshot(store) == ingested
    finally:
        store.close()


def _clipped(b: agent_pb2.Batch) -> agent_pb2.Batch:
    """What the servicer stores: overlaps within one batch clipped first."""
    from worklens.collector.store.overlaps import clip_overlaps

    clip_overlaps(b)
    return b
