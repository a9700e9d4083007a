"""Rollups kept at ingest equal a rebuild from raw records, however the batches
arrive (together, late, or many in one group commit)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import date

import dataset as ds
import pytest
from worklens.collector.reports.summary import summarize
from worklens.collector.rollup import buckets as rollup
from worklens.v1 import agent_pb2

pytestmark = pytest.mark.both_engines
TABLES = ("rollup_window", "rollup_window_all", "rollup_activity", "rollup_process",
          "rollup_dropped")


def snapshot(store) -> dict[str, list[tuple]]:
    with store.reader() as conn:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in TABLES}


def assert_same_rollups(got: dict[str, list[tuple]], reference: dict[str, list[tuple]]) -> None:
    """Equal rollups, except that dropped events sit in the bucket their batch was
    received in (which differs between loads): for those, compare the totals."""
    got = dict(got)
    assert sum(r[2] for r in got.pop("rollup_dropped")) == ds.BOB_DROPPED
    want = dict(reference)
    want.pop("rollup_dropped")
    assert got == want


@pytest.fixture
def store(store_url):
    store = ds.open_store(store_url)
    yield store
    store.close()


def test_rebuild_equals_ingest(store):
    ds.load(store)
    ingested = snapshot(store)
    assert ingested["rollup_window"] and ingested["rollup_activity"] and ingested["rollup_process"]
    assert sum(r[2] for r in ingested["rollup_dropped"]) == ds.BOB_DROPPED
    assert rollup.rebuild(store) == 2
    assert snapshot(store) == ingested


def test_partial_rebuild_touches_only_its_range_and_equals_ingest(store):
    ds.load(store)
    ingested = snapshot(store)
    # wipe the spring buckets by hand, then rebuild just 2026-03-28T23:00Z..03-29T01:00Z
    store.write(lambda c: c.execute("DELETE FROM rollup_window WHERE bucket >= ? AND bucket < ?",
                                    (ds.ms("2026-03-28T23:00"), ds.ms("2026-03-29T01:00"))))
    assert snapshot(store) != ingested
    rollup.rebuild(store, ds.ms("2026-03-28T23:00"), ds.ms("2026-03-29T01:00"))
    assert snapshot(store) == ingested


def _split(batches: list[agent_pb2.Batch]) -> list[agent_pb2.Batch]:
    """The same records, one kind per batch, activity LAST (late activity everywhere)."""
    out, seq = [], 1
    for kind in ("windows", "processes", "activity"):
        for b in batches:
            for record in getattr(b, kind):
                nb = agent_pb2.Batch(agent_id=b.agent_id, sequence=seq, host=b.host)
                getattr(nb, kind).append(record)
                out.append(nb)
                seq += 1
    out[-1].dropped_events = sum(b.dropped_events for b in batches)
    return out


def test_arrival_order_does_not_matter(store_urls, store):
    ds.load(store)
    reference = snapshot(store)
    other = ds.open_store(store_urls())
    try:
        from worklens.collector.rollup import set_rules
        set_rules(other, ds.RULES)
        keys = {ds.ALICE: ds.add_agent(other, ds.ALICE, "alice"),
                ds.BOB: ds.add_agent(other, ds.BOB, "bob")}
        late = _split(ds.alice_batches())
        ds.ingest(other, keys[ds.ALICE], list(reversed(late)))   # newest records first
        ds.ingest(other, keys[ds.BOB], _split(ds.bob_batches()))
        assert_same_rollups(snapshot(other), reference)
    finally:
        other.close()


def test_many_batches_in_one_group_commit(store):
    """Concurrent ingest shares commits; windows and their activity in different batches
    of the same commit are still counted once."""
    key = ds.add_agent(store, ds.ALICE, "alice")
    base = ds.ms("2026-03-29T08:00")
    batches = []
    for i in range(200):
        start = base + i * 60_000
        kind = "windows" if i % 2 == 0 else "activity"
        b = agent_pb2.Batch(agent_id=ds.ALICE, sequence=i + 1,
                            host=agent_pb2.HostInfo(user="alice"))
        if kind == "windows":
            b.windows.append(agent_pb2.WindowSpan(start_ms=start, duration_ms=120_000,
                                                  app="code", title="x"))
        else:  # covers the previous window's second half and the next one's first
            b.activity.append(agent_pb2.ActivitySpan(start_ms=start, duration_ms=60_000,
                                                     state=agent_pb2.ACTIVITY_STATE_ACTIVE))
        batches.append(b)

    async def run():
        await asyncio.gather(*(store.ingest(key, b) for b in batches))
    asyncio.run(run())
    day = summarize(store, date(2026, 3, 29), date(2026, 3, 29), "day", "UTC").rows[0]
    # activity covers minutes 1,3,5..199, all inside windows: 100 active minutes
    assert day.active_seconds == 100 * 60 and day.spans == 100
    ingested = snapshot(store)
    rollup.rebuild(store)
    assert snapshot(store) == ingested


def test_late_records_of_many_agents_sharing_group_commits(store):
    """Stored rows are looked up for all agents of a group commit at once: each agent's
    late activity (or late windows) must pair with its own stored rows only."""
    base = ds.ms("2026-03-29T08:00")
    agents = [f"{n:032x}" for n in range(1, 7)]
    keys = [ds.add_agent(store, agent, f"user{n}") for n, agent in enumerate(agents)]

    def batch(agent: str, seq: int, n: int, kind: str) -> agent_pb2.Batch:
        b = agent_pb2.Batch(agent_id=agent, sequence=seq, host=agent_pb2.HostInfo(user="u"))
        for i in range(10):   # agent n's spans are offset by n minutes: overlaps differ
            start = base + n * 60_000 + i * 300_000
            if kind == "windows":
                b.windows.append(agent_pb2.WindowSpan(start_ms=start, duration_ms=240_000,
                                                      app=f"app{n}", title="t"))
            else:
                b.activity.append(agent_pb2.ActivitySpan(
                    start_ms=start + 60_000, duration_ms=(n + 1) * 30_000,
                    state=(agent_pb2.ACTIVITY_STATE_ACTIVE if n % 2 else
                           agent_pb2.ACTIVITY_STATE_IDLE), key_presses=n))
        return b

    async def group(kinds: list[str], seq: int) -> None:
        await asyncio.gather(*(store.ingest(key, batch(agent, seq, n, kinds[n % 2]))
                               for n, (agent, key) in enumerate(zip(agents, keys, strict=True))))
    # first group: even agents send windows, odd ones activity; then the other half
    asyncio.run(group(["windows", "activity"], 1))
    asyncio.run(group(["activity", "windows"], 2))
    ingested = snapshot(store)
    paired = {}   # agent -> window time during ACTIVE or IDLE activity
    for agent, *_rest, active_ms, idle_ms, _spans in ingested["rollup_window"]:
        paired[agent] = paired.get(agent, 0) + active_ms + idle_ms
    assert sorted(paired) == sorted(keys) and all(paired.values())
    rollup.rebuild(store)
    assert snapshot(store) == ingested


def test_rows_stored_without_the_hook_are_caught_up_by_the_next_group(tmp_path):
    """SQLite: the hook rolls up the rows it is handed in memory only when nothing is
    pending below them; rows some other writer stored without rollups (here: a store
    opened without the hook) are read back and counted exactly once all the same.
    (PostgreSQL keeps no rollup cursors: every writer there rolls up what it stores.)"""
    store = ds.open_store(tmp_path / "reference")
    try:
        ds.load(store)
        reference = snapshot(store)
    finally:
        store.close()
    from worklens.collector.rollup import set_rules
    from worklens.collector.store.sqlite import SqliteStore

    path = tmp_path / "bare"
    first = ds.open_store(path)   # schema and rules via the real open_store
    set_rules(first, ds.RULES)
    first.close()
    bare = SqliteStore(path / "worklens.db")   # ... then a writer with no rollup hook
    try:
        keys = {ds.ALICE: ds.add_agent(bare, ds.ALICE, "alice"),
                ds.BOB: ds.add_agent(bare, ds.BOB, "bob")}
        alice = ds.alice_batches()
        ds.ingest(bare, keys[ds.ALICE], alice[:2])
    finally:
        bare.close()
    hooked = ds.open_store(path)
    try:
        ds.ingest(hooked, keys[ds.ALICE], alice[2:])
        ds.ingest(hooked, keys[ds.BOB], ds.bob_batches())
        assert_same_rollups(snapshot(hooked), reference)
    finally:
        hooked.close()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worklens.collector", *args],
                          capture_output=True, text=True, timeout=120)


def test_rollups_rebuild_command(store_url):
    store = ds.open_store(store_url)
    ds.load(store)
    ingested = snapshot(store)
    store.write(lambda c: c.execute("DELETE FROM rollup_window"))
    store.close()
    db = store_url
    done = _cli("rollups", "rebuild", "--db", db, "--from", "2026-03-28", "--to", "2026-03-30")
    assert done.returncode == 0, done.stderr
    assert "rebuilt rollups for 2 agent(s)" in done.stdout
    store = ds.open_store(store_url)
    try:
        got = snapshot(store)
        alice_key = 1
        assert [r for r in got["rollup_window"] if r[0] == alice_key] == [
            r for r in ingested["rollup_window"] if r[0] == alice_key]
    finally:
        store.close()
    assert _cli("rollups", "rebuild", "--db", db).returncode == 0
    bad = _cli("rollups", "rebuild", "--db", db, "--from", "last tuesday")
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "expected YYYY-MM-DD" in bad.stderr
    assert "Traceback" not in bad.stderr
    for flag in ("--from", "--to"):
        bad = _cli("rollups", "rebuild", "--db", db, flag, "2025-02-30")
        assert bad.returncode == 1 and bad.stderr.count("\n") == 1, bad.stderr
        assert bad.stderr.startswith(f"worklens-collector: error: {flag}: '2025-02-30'"), \
            bad.stderr
