"""Process samples stored as blocks (collector/store/blocks.py): every sample comes
back exactly, in its bucket, whatever order or spread a batch has; the rollup
totals computed before the writer add up; and a database from before blocks is
converted without losing or double-counting a sample."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from worklens.collector.rollup import buckets as rollup
from worklens.collector.store import blocks, migrate
from worklens.collector.store.records import extract
from worklens.v1 import agent_pb2

B = blocks.BUCKET_MS
T0 = 1_790_000_000_000 - 1_790_000_000_000 % B   # a bucket start


def batch_with(times: list[int], users: tuple[str, ...] = ("alice",)) -> agent_pb2.Batch:
    batch = agent_pb2.Batch(agent_id="ag-1", sequence=4, created_ms=T0,
                            host=agent_pb2.HostInfo(hostname="pc", user="alice"))
    batch.windows.add(start_ms=T0, duration_ms=1000, app="code", title="secret.txt")
    for i, t in enumerate(times):
        batch.processes.add(time_ms=t, pid=100 + i, name=f"p{i % 3}", user=users[i % len(users)],
                            cpu_percent=1.5 * i, rss_bytes=(i + 1) << 20, cpu_seconds=i / 3,
                            interval_ms=60_000)
    return batch


def sample_rows(key: int, batch: agent_pb2.Batch) -> list[tuple]:
    return extract(key, batch).processes


def packed(key: int, batch: agent_pb2.Batch) -> tuple[list[tuple], list[tuple]]:
    """(rows as extracted, block rows) — pack consumes the batch, so rows come first."""
    rows = sample_rows(key, batch)
    return rows, blocks.pack(key, batch, rows)


def test_a_batch_over_three_buckets_becomes_three_blocks_holding_exactly_its_samples():
    times = [T0 + 10_000, T0 + 60_000, T0 + B, T0 + B + 1, T0 + 2 * B + 5]
    rows, out = packed(7, batch_with(times))
    assert [(agent, bucket, n) for agent, bucket, n, _ in out] == \
        [(7, T0, 2), (7, T0 + B, 2), (7, T0 + 2 * B, 1)]
    assert [s for *_, data in out for s in blocks.unpack(7, data)] == rows
    for *_, data in out:   # only process samples are stored in a block
        message = agent_pb2.Batch.FromString(data)
        assert not message.windows and not message.HasField("host") and message.sequence == 0


@pytest.mark.parametrize("times", [
    [T0 + B, T0, T0 + B + 1, T0 + 2],                       # a bucket comes back
    [T0 + i * B for i in range(blocks.MAX_TAIL_CUTS + 3)],  # a long backlog in one batch
])
def test_samples_out_of_order_or_over_many_buckets_still_come_back_exactly(times):
    rows, out = packed(3, batch_with(times))
    assert [b[1] for b in out] == sorted({t - t % B for t in times})
    assert sum(b[2] for b in out) == len(times)
    assert sorted(s for *_, data in out for s in blocks.unpack(3, data)) == sorted(rows)
    for _, bucket, _, data in out:
        assert {s[1] - s[1] % B for s in blocks.unpack(3, data)} == {bucket}


def test_fields_this_collector_does_not_know_are_not_stored():
    batch = batch_with([T0 + 1])
    unknown = b"\xf8\x3e\x2a"   # field 1007 = 42, known to no message here
    sample = agent_pb2.ProcessSample(time_ms=T0 + 2, pid=1).SerializeToString() + unknown
    nested = b"\x3a" + bytes([len(sample)]) + sample   # one more Batch.processes entry
    parsed = agent_pb2.Batch.FromString(batch.SerializeToString() + nested + unknown)
    rows, out = packed(1, parsed)
    ((_, _, count, data),) = out
    assert count == 2 and unknown not in data
    assert blocks.unpack(1, data) == rows


def test_totals_sum_cpu_keep_the_peak_and_count_per_bucket_and_name():
    rows = [(5, T0 + 1, 1, "code", "u", 0.0, 100, 1.5, 60_000),
            (5, T0 + 2, 2, "code", "u", 0.0, 300, 2.0, 60_000),
            (5, T0 + 3, 3, "sh", "u", 0.0, 50, 0.25, 60_000),
            (5, T0 + B, 1, "code", "u", 0.0, 200, 4.0, 60_000)]
    assert sorted(blocks.totals(5, rows)) == [(5, T0, "code", 3.5, 300, 2),
                                             (5, T0, "sh", 0.25, 50, 1),
                                             (5, T0 + B, "code", 4.0, 200, 1)]
    one_bucket = rows[:3]   # the usual batch: all in one bucket
    assert sorted(blocks.totals(5, one_bucket)) == [(5, T0, "code", 3.5, 300, 2),
                                                   (5, T0, "sh", 0.25, 50, 1)]


@pytest.fixture
def conn(tmp_path):
    c = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    migrate.apply(c)
    yield c
    c.close()


def store_blocks(conn, key: int, batch: agent_pb2.Batch) -> list[tuple]:
    rows, out = packed(key, batch)
    conn.executemany(blocks.INSERT_BLOCKS, out)
    return rows


def test_read_gives_a_time_range_in_time_order_with_an_optional_user(conn):
    late = store_blocks(conn, 1, batch_with([T0 + 50, T0 + 70, T0 + B + 10]))
    early = store_blocks(conn, 1, batch_with([T0 + 20, T0 + 60], users=("bob",)))
    store_blocks(conn, 2, batch_with([T0 + 30]))                       # another agent
    got = [s for piece in blocks.read(conn, 1, T0 + 30, T0 + B + 10) for s in piece]
    assert [s[1] for s in got] == [T0 + 50, T0 + 60, T0 + 70]          # end is exclusive
    assert {s[0] for s in got} == {1}
    alices = [s for piece in blocks.read(conn, 1, T0, T0 + 2 * B, user="alice") for s in piece]
    assert alices == sorted(late, key=lambda s: s[1])
    assert len(early) == 2


def rolled_up_processes(conn) -> list[tuple]:
    return sorted((a, b, n, round(c, 9), r, s) for a, b, n, c, r, s in conn.execute(
        "SELECT agent, bucket, name, cpu_seconds, peak_rss_bytes, samples FROM rollup_process"))


def test_migration_moves_old_sample_rows_into_blocks_and_rolls_each_up_once(tmp_path):
    old = tmp_path / "before-blocks"
    old.mkdir()
    for m in migrate.available():
        if m.version < 5:
            shutil.copy(m.path, old / m.path.name)
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    migrate.apply(conn, old)
    samples = [(agent, T0 + i * 240_000, 100 + i % 4, f"p{i % 3}", "alice", 2.5, (i + 1) << 20,
                i / 7, 60_000) for agent in (1, 2) for i in range(12)]
    conn.executemany("INSERT INTO process_samples VALUES (?,?,?,?,?,?,?,?,?)", samples)
    rolled = samples[:15]   # the rollups had caught up with the first 15 rows only
    conn.execute("UPDATE rollup_cursor SET last_rowid = 15 WHERE name = 'process_samples'")
    conn.executemany("INSERT INTO rollup_process VALUES (?,?,?,?,?,?)",
                     [t for a in (1, 2) for t in blocks.totals(a, [r for r in rolled
                                                                  if r[0] == a])])

    assert migrate.apply(conn) == [v for v in (m.version for m in migrate.available()) if v >= 5]
    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "process_samples" not in tables
    stored = [s for a, d in conn.execute("SELECT agent, data FROM process_blocks")
              for s in blocks.unpack(a, d)]
    assert sorted(stored) == sorted(samples)
    conn.execute("BEGIN")
    assert rollup.catch_up(conn) == len(samples) - len(rolled)
    conn.execute("COMMIT")
    expected = [t for a in (1, 2) for t in blocks.totals(a, [r for r in samples if r[0] == a])]
    assert rolled_up_processes(conn) == sorted((a, b, n, round(c, 9), r, s)
                                               for a, b, n, c, r, s in expected)
    conn.close()
