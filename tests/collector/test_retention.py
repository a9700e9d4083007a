"""Retention: purge removes raw records and rollups older than the window and
keeps the rest, from the library, the scheduled job and the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, date, datetime

import dataset as ds
import pytest
from worklens.collector.reports.summary import summarize
from worklens.collector.retention import purge, schedule_retention
from worklens.v1 import agent_pb2

# "now" is 2026-10-26T00:00Z: alice's spring data is ~211 days old, bob's autumn data 1 day.
NOW = ds.ms("2026-10-26T00:00")
DAY_S = 86400.0


def counts(store) -> dict[str, int]:
    with store.reader() as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in (
            "window_spans", "activity_spans", "process_blocks", "rollup_window",
            "rollup_window_all", "rollup_activity", "rollup_process")}


@pytest.fixture
def store(tmp_path):
    store = ds.open_store(tmp_path)
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


def test_scheduled_purge_runs_on_an_asyncio_loop(tmp_path, monkeypatch):
    monkeypatch.setattr("worklens.collector.retention.FIRST_RUN_S", 0.0)
    store = ds.open_store(tmp_path)
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


def test_purge_command(tmp_path):
    store = ds.open_store(tmp_path)
    ds.load(store)
    store.close()
    db = f"sqlite:///{tmp_path}/worklens.db"
    keep = _cli("purge", "--older-than", "36500d", "--db", db)   # a century: nothing goes
    assert keep.returncode == 0, keep.stderr
    assert keep.stdout.startswith("deleted 0 rows older than")
    gone = _cli("purge", "--older-than", "1s", "--db", db)
    assert gone.returncode == 0 and "deleted 0 rows" not in gone.stdout
    store = ds.open_store(tmp_path)
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


def test_serve_purges_on_its_schedule(tmp_path, monkeypatch):
    """The collector's serve starts the retention job: data older than [retention] keep
    disappears without any command (the dataset's spring days are months old)."""
    from worklens.collector.config import load
    from worklens.collector.server import Collector

    monkeypatch.setattr("worklens.collector.retention.FIRST_RUN_S", 0.0)

    store = ds.open_store(tmp_path)
    ds.load(store)
    store.close()
    cfg = load(overrides={"grpc": {"listen": "127.0.0.1:0"},
                          "retention": {"keep": 86400.0 * (datetime.now(UTC) - datetime(
                              2026, 10, 1, tzinfo=UTC)).days}})

    async def run() -> dict[str, int]:
        collector = Collector(cfg, f"sqlite:///{tmp_path}/worklens.db", http=False)
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
