"""The store: opening rules, group commit, hooks, and failures that must never be
acknowledged (full disk) or must stop the start (locked, read-only, corrupt). The
tests taking ``store`` run on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import grpc
import pytest
from collector_harness import collector_command, make_batch, query_store
from worklens.collector.store import StoreError, StoreUnavailable, open_store
from worklens.collector.store.records import extract
from worklens.v1 import agent_pb2

pytestmark = pytest.mark.both_engines


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


def add_agent(store, agent_id="ag-test") -> int:
    return store.write(lambda c: c.execute(
        "INSERT INTO agents (agent_id, credential_hash, enrolled_ms) VALUES (?, 'x', 0) "
        "RETURNING id", (agent_id,)).fetchone()[0])


def test_open_creates_the_database_in_wal_mode_with_migrations_recorded(tmp_path):
    url = f"sqlite:///{tmp_path / 'new' / 'dir' / 'w.db'}"
    with open_store(url) as s, s.reader() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]
    assert versions[0] == 1 and versions == sorted(versions)
    with open_store(url) as again, again.reader() as conn:  # re-open: nothing re-applied
        assert [v for (v,) in conn.execute("SELECT version FROM schema_migrations")] == versions


def test_a_second_serving_process_gets_a_clear_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with open_store(url, serving=True):
        with pytest.raises(StoreError, match=r"another collector process \(pid \d+\) is already "
                                              "serving"):
            open_store(url, serving=True)
        with open_store(url) as maintenance:  # token/purge commands still work meanwhile
            add_agent(maintenance)
    with open_store(url, serving=True):  # the lock went with the first store
        pass


@pytest.mark.parametrize("url, words", [
    ("mysql://db/worklens", "bad store URL"),
    ("sqlite://", "bad store URL"),
    ("postgresql://nobody@127.0.0.1:1/worklens",
     "PostgreSQL at postgresql://nobody@127.0.0.1:1/worklens: connection failed"),
])
def test_bad_urls_are_one_line_errors(url, words):
    with pytest.raises(StoreError, match=words) as error:
        open_store(url)
    assert "\n" not in str(error.value)


def test_a_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "w.db"
    path.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        open_store(f"sqlite:///{path}")


@pytest.fixture
def tmpfs(tmp_path):
    """A real, small filesystem we can fill up or make read-only (needs mount rights;
    as root in a container or CI this works, elsewhere the test is skipped)."""
    point = tmp_path / "mnt"
    point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    def remount(options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True)

    yield point, remount
    subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_read_only_filesystem_stops_the_command_with_one_line(tmpfs):
    point, remount = tmpfs
    data = point / "data"
    with open_store(f"sqlite:///{data / 'worklens.db'}"):
        pass
    remount("ro")
    for args in (["token", "list"], ["serve", "--grpc-listen", "127.0.0.1:0",
                                     "--http-listen", "127.0.0.1:0"]):
        done = subprocess.run(collector_command(*args, "--data-dir", str(data)),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stderr
        assert "read-only" in done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_file_stops_the_command_with_one_line(tmp_path):
    data = tmp_path / "data"
    with open_store(f"sqlite:///{data / 'worklens.db'}"):
        pass
    for f in data.iterdir():
        f.chmod(0o444)
    done = subprocess.run(collector_command("token", "list", "--data-dir", str(data)),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "read-only" in done.stderr
    assert done.stderr.count("\n") == 1


def test_a_really_full_disk_is_not_acknowledged_then_recovers(tmpfs, collector_factory):
    point, remount = tmpfs
    from collector_harness import collector_config
    instance = collector_factory(collector_config(store={"url": f"sqlite:///{point}/w.db"}))
    agent = instance.enroll_agent()
    instance.db_path = point / "w.db"
    sequence, failure = 0, None
    while failure is None and sequence < 200:
        sequence += 1
        try:
            instance.upload(agent, [make_batch(agent.agent_id, sequence, windows=500,
                                               activity=500, title="t" * 400)])
        except grpc.RpcError as exc:
            failure = exc
    assert failure is not None, "4 MB never filled up"
    assert failure.code() == grpc.StatusCode.UNAVAILABLE
    assert "full" in failure.details()
    assert instance.count("batches", agent.agent_id) == sequence - 1
    remount("size=64m")
    acks = instance.upload(agent, [make_batch(agent.agent_id, sequence, windows=500,
                                              activity=500, title="t" * 400)])
    assert [(a.sequence, a.duplicate) for a in acks] == [(sequence, False)]
    assert instance.count("batches", agent.agent_id) == sequence


def test_ingest_returns_after_commit_and_data_is_visible_to_a_new_connection(store):
    key = add_agent(store)
    batch = make_batch("ag-test", 1)

    async def go():
        return await store.ingest(key, batch)

    assert asyncio.run(go()).duplicate is False
    assert query_store(store.url, "SELECT count(*) FROM window_spans") == [(3,)]


def test_concurrent_batches_share_commits_and_keep_per_batch_results(store):
    key = add_agent(store)
    commits = []   # a group hook runs once per group transaction
    store.add_group_hook(lambda conn, group: commits.append(len(group)))

    async def go():
        batches = [make_batch("ag-test", s) for s in range(1, 101)]
        return await asyncio.gather(*(store.ingest(key, b) for b in [*batches, batches[0]]))

    results = asyncio.run(go())
    assert_one_copy_duplicate(results, 0)
    assert len(commits) < 50  # grouped: far fewer commits than batches
    with store.reader() as conn:
        assert conn.execute("SELECT count(*) FROM batches").fetchone() == (100,)


def assert_one_copy_duplicate(results: list, index: int) -> None:
    """Every batch new but the one sent twice (at ``index`` and last): one copy of it
    is a duplicate. Which one is the engine's choice: PostgreSQL's writer threads
    commit concurrent groups in either order."""
    flags = [r.duplicate for r in results]
    assert sorted((flags[index], flags[-1])) == [False, True]
    assert not any(flags[:index] + flags[index + 1:-1])


def test_a_failing_hook_fails_only_its_batch(store):
    key = add_agent(store)
    seen = []

    def hook(conn, agent, batch):
        if batch.sequence == 3:
            raise RuntimeError("rollup exploded")
        seen.append(batch.sequence)

    store.add_ingest_hook(hook)

    assert_only_batch_3_refused(store, key)
    with store.reader() as conn:
        assert conn.execute("SELECT count(*) FROM window_spans").fetchone() == (12,)


def assert_only_batch_3_refused(store, key: int) -> None:
    """Batches 1-5 ingested together, with a hook that fails on batch 3: only batch 3 is
    refused (StoreUnavailable) and missing; the others of its group commit are stored."""
    async def go():
        return await asyncio.gather(*(store.ingest(key, make_batch("ag-test", s))
                                      for s in range(1, 6)), return_exceptions=True)

    results = asyncio.run(go())
    assert isinstance(results[2], StoreUnavailable)
    assert [r.duplicate for i, r in enumerate(results) if i != 2] == [False] * 4
    with store.reader() as conn:
        assert [s for (s,) in conn.execute("SELECT sequence FROM batches ORDER BY 1")] == \
            [1, 2, 4, 5]


def test_a_group_hook_sees_each_new_batch_once_with_its_rows(store):
    key = add_agent(store)
    calls = []
    store.add_group_hook(lambda conn, group: calls.append(
        [(g.key, g.batch.sequence, len(g.records.windows), g.received_ms) for g in group]))

    async def go():
        batches = [make_batch("ag-test", s) for s in range(1, 41)]
        return await asyncio.gather(*(store.ingest(key, b) for b in [*batches, batches[5]]))

    results = asyncio.run(go())
    assert_one_copy_duplicate(results, 5)
    seen = [item for call in calls for item in call]
    assert sorted(s for _k, s, _n, _t in seen) == list(range(1, 41))   # once each, no dup
    assert {(k, n) for k, _s, n, _t in seen} == {(key, 3)}
    assert len(calls) < 40 and all(len({t for *_x, t in call}) == 1 for call in calls)


def test_a_failing_group_hook_fails_only_its_batch(store):
    key = add_agent(store)

    def hook(conn, group):
        if any(g.batch.sequence == 3 for g in group):
            raise RuntimeError("rollup exploded")

    store.add_group_hook(hook)

    assert_only_batch_3_refused(store, key)


def test_raw_tables_keep_only_their_agent_time_index(store, engine):
    """Migration 0004: one time index per raw table (ingest pays a B-tree per index per
    row); exports and purges walk agent by agent."""
    with store.reader() as conn:
        indexes = {}
        for table in ("window_spans", "activity_spans", "process_blocks", "system_totals"):
            if engine == "postgresql":   # the partitioned parent's indexes, in key order
                indexes[table] = [tuple(columns) for (columns,) in conn.execute(
                    "SELECT array_agg(a.attname ORDER BY k.n) FROM pg_index i "
                    "JOIN pg_class t ON t.oid = i.indrelid "
                    "CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
                    "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
                    "WHERE t.relname = ? GROUP BY i.indexrelid", (table,))]
                continue
            names = [n for (n,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
                (table,))]
            indexes[table] = [tuple(c for (_seq, _cid, c) in conn.execute(
                "SELECT seqno, cid, name FROM pragma_index_info(?) ORDER BY seqno", (n,)))
                for n in names]
    assert indexes == {"window_spans": [("agent", "start_ms")],
                       "activity_spans": [("agent", "start_ms")],
                       "process_blocks": [("agent", "bucket")],
                       "system_totals": [("agent", "time_ms")]}


def test_records_extract_keeps_column_order():
    batch = make_batch("ag-x", 1, user="eve")
    records = extract(7, batch)
    w = batch.windows[0]
    assert records.windows[0] == (7, w.start_ms, w.duration_ms, "code", w.title, 4242,
                                  "/usr/bin/code", False, "eve", False)
    a = batch.activity[0]
    assert records.activity[0] == (7, a.start_ms, a.duration_ms, a.state, a.key_presses,
                                   a.clicks, a.mouse_moves, a.scrolls, "eve", False, 0)
    assert records.count == 9


def test_the_writer_refuses_work_after_close(store_url):
    s = open_store(store_url)
    s.close()
    s.close()  # twice is fine
    with pytest.raises(StoreError):
        s.write(lambda c: None)

    async def go():
        await s.ingest(1, agent_pb2.Batch(sequence=1))

    with pytest.raises(StoreUnavailable):
        asyncio.run(go())


def test_sqlite_url_forms(tmp_path):
    from worklens.collector.store import sqlite_path
    assert sqlite_path("sqlite:///abs/w.db") == Path("/abs/w.db")
    assert sqlite_path("sqlite:////abs/w.db") == Path("/abs/w.db")
    assert sqlite_path("sqlite:rel.db") == Path.cwd() / "rel.db"


def test_a_writer_process_store_takes_only_hooks_that_can_travel(tmp_path):
    from worklens.collector.store import SqliteStore

    store = SqliteStore(tmp_path / "w.db", writer_process=True)
    try:
        with pytest.raises(StoreError, match="must pickle"):
            store.add_group_hook(lambda conn, group: None)
        with pytest.raises(StoreError, match="in-process writer"):
            store.add_ingest_hook(lambda conn, agent, batch: None)
    finally:
        store.close()


def test_when_the_writer_process_dies_the_store_stops_taking_writes(tmp_path):
    import time

    from worklens.collector.store import SqliteStore

    store = SqliteStore(tmp_path / "w.db", writer_process=True)
    died = []
    store.on_writer_failure(died.append)
    try:
        os.kill(store._process.pid, signal.SIGKILL)   # what the OOM killer would do
        deadline = time.monotonic() + 30
        while not died and time.monotonic() < deadline:
            time.sleep(0.05)
        assert died and "writer process is gone" in str(died[0])
        with pytest.raises(StoreError):  # refused at once, not queued for nobody
            store.write(lambda conn: None)
    finally:
        store.close()
