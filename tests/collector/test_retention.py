"""Retention: purge removes raw records and rollups older than the window and
keeps the rest, from the library, the scheduled job and the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import dataset as ds
import pytest
from worklens.collector.reports.summary import summarize
from worklens.collector.retention import purge, schedule_retention
from worklens.collector.store import partitions
from worklens.v1 import agent_pb2

# "now" is 2026-10-26T00:00Z: alice's spring data is ~211 days old, bob's autumn data 1 day.
NOW = ds.ms("2026-10-26T00:00")
pytestmark = pytest.mark.both_engines
DAY_S = 86400.0


def counts(store) -> dict[str, int]:
    with store.reader() as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in (
            "window_spans", "activity_spans", "process_blocks", "rollup_window",
            "rollup_window_all", "rollup_activity", "rollup_process")}


@pytest.fixture
def store(store_url):
    store = ds.open_store(store_url)
    ds.load(store)
    yield store
    store.close()


def test_purge_removes_old_and_keeps_new(store):
    before = counts(store)
    result = purge(store, 30 * DAY_S, now_ms=NOW)
    assert result.deleted["window_spans"] == 6 and result.deleted["activity_spans"] == 5
    after = counts(store)
    assert after["window_spans"] == 2 and after["activity_spans"] == 2   # bob's
    assert after["process_blocks"] == before["process_blocks"] > 0   # processes are recent
    assert 0 < after["rollup_window"] < before["rollup_window"]
    spring = summarize(store, date(2026, 3, 28), date(2026, 3, 29), "day", ds.ZONE)
    assert spring.rows == []
    autumn = summarize(store, ds.AUTUMN_DAY, ds.AUTUMN_DAY, "day", ds.ZONE, agent=ds.BOB)
    assert autumn.rows[0].active_seconds == ds.BOB_AUTUMN_DAY["active"]
    assert purge(store, 30 * DAY_S, now_ms=NOW).total == 0   # idempotent


def test_rollups_keep_working_after_the_newest_rows_were_purged(store):
    """SQLite may reuse a purged top rowid; the rollup cursor must not skip the new row."""
    purge(store, 1.0, now_ms=NOW + 400 * 86_400_000)        # everything goes
    assert counts(store)["window_spans"] == 0
    batch = agent_pb2.Batch(agent_id=ds.ALICE, sequence=99, host=agent_pb2.HostInfo(user="alice"))
    batch.windows.append(ds.window("2026-11-02T10:00", "2026-11-02T10:10", "code", "x"))
    batch.activity.append(ds.activity("2026-11-02T10:00", "2026-11-02T10:10", ds.ACTIVE))
    ds.ingest(store, 1, [batch])
    day = summarize(store, date(2026, 11, 2), date(2026, 11, 2), "day", "UTC").rows
    assert [(r.active_seconds, r.spans) for r in day] == [(600.0, 1)]


def test_scheduled_purge_runs_on_an_asyncio_loop(store_url, monkeypatch):
    monkeypatch.setattr("worklens.collector.retention.FIRST_RUN_S", 0.0)
    store = ds.open_store(store_url)
    try:
        ds.load(store)
        keep_s = 1.0   # everything in the dataset is older than a second

        async def run() -> None:
            scheduler = schedule_retention(asyncio.get_running_loop(), store, keep_s,
                                           every_s=3600)
            try:
                deadline = time.monotonic() + 60
                while counts(store)["window_spans"] and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
            finally:
                scheduler.shutdown(wait=False)
        asyncio.run(run())
        assert counts(store)["window_spans"] == 0 and counts(store)["rollup_window"] == 0
    finally:
        store.close()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worklens.collector", *args],
                          capture_output=True, text=True, timeout=120)


def test_purge_command(store_url):
    store = ds.open_store(store_url)
    ds.load(store)
    store.close()
    db = store_url
    keep = _cli("purge", "--older-than", "36500d", "--db", db)   # a century: nothing goes
    assert keep.returncode == 0, keep.stderr
    assert keep.stdout.startswith("deleted 0 rows older than")
    gone = _cli("purge", "--older-than", "1s", "--db", db)
    assert gone.returncode == 0 and "deleted 0 rows" not in gone.stdout
    store = ds.open_store(store_url)
    try:
        assert counts(store)["window_spans"] == 0
    finally:
        store.close()
    for bad in ("forever", "0s", "-5d"):
        failed = _cli("purge", "--older-than", bad, "--db", db)
        assert failed.returncode in (1, 2), failed
        assert "older-than" in failed.stderr and "Traceback" not in failed.stderr
        if failed.returncode == 1:
            assert failed.stderr.count("\n") == 1


def test_serve_purges_on_its_schedule(store_url, monkeypatch):
    """The collector's serve starts the retention job: data older than [retention] keep
    disappears without any command (the dataset's spring days are months old)."""
    from worklens.collector.config import load
    from worklens.collector.server import Collector

    monkeypatch.setattr("worklens.collector.retention.FIRST_RUN_S", 0.0)

    store = ds.open_store(store_url)
    ds.load(store)
    store.close()
    cfg = load(overrides={"grpc": {"listen": "127.0.0.1:0"},
                          "retention": {"keep": 86400.0 * (datetime.now(UTC) - datetime(
                              2026, 10, 1, tzinfo=UTC)).days}})

    async def run() -> dict[str, int]:
        collector = Collector(cfg, store_url, http=False)
        await collector.start()
        try:
            deadline = time.monotonic() + 60
            while counts(collector.store)["window_spans"] != 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return counts(collector.store)
        finally:
            await collector.stop(grace=0)
    left = asyncio.run(run())
    assert left["window_spans"] == 2 and left["activity_spans"] == 2   # bob's autumn day stays


@pytest.fixture
def empty_store(store_url):
    store = ds.open_store(store_url)
    yield store
    store.close()


def test_whole_days_go_at_once_and_the_cut_day_row_by_row(empty_store, engine):
    """Days wholly before the cutoff go at once (on PostgreSQL their day partitions
    are dropped); the day the cutoff falls in loses only its rows before the cutoff,
    and the rollups go with their raw rows."""
    store = empty_store
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    key = ds.add_agent(store, ds.ALICE, "alice")
    batch = agent_pb2.Batch(agent_id=ds.ALICE, sequence=1, host=agent_pb2.HostInfo(user="alice"))
    starts = [day + timedelta(hours=h) for h in (10, 30, 42, 58)]   # days 0, 1, 1, 2
    for start in starts:
        text = start.strftime("%Y-%m-%dT%H:%M")
        end = (start + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M")
        batch.windows.append(ds.window(text, end, "code", "x"))
        batch.activity.append(ds.activity(text, end, ds.ACTIVE))
    ds.ingest(store, key, [batch])
    cutoff = day + timedelta(hours=36)   # day 1, 12:00
    result = purge(store, DAY_S, now_ms=int((cutoff + timedelta(days=1)).timestamp() * 1000))
    assert result.deleted["window_spans"] == 2 and result.deleted["activity_spans"] == 2
    with store.reader() as conn:
        left = [s for (s,) in conn.execute("SELECT start_ms FROM window_spans ORDER BY 1")]
        rolled = conn.execute("SELECT min(bucket), sum(active_ms) FROM rollup_window").fetchone()
        if engine == "postgresql":
            tables = partitions.existing(conn)["window_spans"]
    assert left == [int(s.timestamp() * 1000) for s in starts[2:]]
    assert rolled == (int(starts[2].timestamp() * 1000), 2 * 600_000)
    if engine == "postgresql":
        assert partitions.name("window_spans", int(day.timestamp() * 1000)) not in tables
        assert partitions.name("window_spans", int(cutoff.timestamp() * 1000)) in tables
