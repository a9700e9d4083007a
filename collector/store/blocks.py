"""Process samples stored as blocks: one row per agent and 15-minute bucket (per
batch), holding that stretch's samples as protobuf bytes.

Why: process samples are most of what agents send (the top 10 processes every
minute against one window span and one activity span), and a row per sample made
the group commit insert and index ten rows for every span — the serial writer's
biggest cost. A block is one row and one index entry for about a hundred samples,
and the bytes are the samples as validated, in the wire protocol's own encoding
(a ``worklens.v1.Batch`` with only ``processes`` set: a documented, versioned
format, readable with any protobuf library). Nothing filters process
samples by value in SQL: exports and timelines read an agent's stretch of time,
rollups sum per bucket, retention drops whole buckets.

The per-bucket totals the rollups need (CPU seconds, peak memory and sample
count per process name) are computed here, before the writer, from the rows that
validation already built, so the writer never walks the samples one by one.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby
from operator import itemgetter

from worklens.v1 import agent_pb2

# Blocks and the process totals are per bucket of this size: the rollups' bucket.
BUCKET_MS = 15 * 60 * 1000
# A batch whose samples span more buckets than this (a long backlog) is cut by
# copying samples into a message per bucket instead of serialising tails.
MAX_TAIL_CUTS = 8
_NOT_PROCESSES = tuple(f.name for f in agent_pb2.Batch.DESCRIPTOR.fields
                       if f.name != "processes")

_TIME = itemgetter(1)   # time_ms of a sample row

INSERT_BLOCKS = "INSERT INTO process_blocks (agent, bucket, samples, data) VALUES (?,?,?,?)"
SAMPLE_COLUMNS = ("agent, time_ms, pid, name, username, cpu_percent, rss_bytes, cpu_seconds, "
                  "interval_ms")


def bucket_of(time_ms: int) -> int:
    return time_ms - time_ms % BUCKET_MS


def pack(key: int, batch: agent_pb2.Batch, samples: list[tuple]) -> list[tuple]:
    """Block rows ``(agent, bucket, samples, data)`` for ``batch``'s process samples
    (``samples``: their rows as ``records.extract`` made them, in the same order).

    Consumes ``batch``: every other field is cleared and its processes are cut, so
    that each block's bytes come from serialising what is left (upb's C code) instead
    of copying messages one by one in Python — the bytes of a repeated field are the
    concatenation of its elements', so a block is ``whole[:len(whole) - len(tail)]``.
    """
    if not samples:
        return []
    first, last = min(map(_TIME, samples)), max(map(_TIME, samples))
    for name in _NOT_PROCESSES:
        batch.ClearField(name)
    batch.DiscardUnknownFields()
    if bucket_of(first) == bucket_of(last):   # the usual case
        return [(key, bucket_of(first), len(samples), batch.SerializeToString())]
    buckets = [t - t % BUCKET_MS for t in map(_TIME, samples)]
    runs = [(bucket, len(list(run))) for bucket, run in groupby(buckets)]
    if len(runs) > MAX_TAIL_CUTS + 1 or len(runs) != len(set(buckets)):
        return _copied(key, batch, buckets)
    blocks, whole = [], batch.SerializeToString()
    for bucket, count in runs[:-1]:
        del batch.processes[:count]
        tail = batch.SerializeToString()
        blocks.append((key, bucket, count, whole[:len(whole) - len(tail)]))
        whole = tail
    blocks.append((key, runs[-1][0], runs[-1][1], whole))
    return blocks


def _copied(key: int, batch: agent_pb2.Batch, buckets: list[int]) -> list[tuple]:
    """Blocks for samples out of time order or spread over many buckets."""
    by_bucket: dict[int, list[int]] = {}
    for index, bucket in enumerate(buckets):
        by_bucket.setdefault(bucket, []).append(index)
    processes = batch.processes
    return [(key, bucket, len(indexes),
             agent_pb2.Batch(processes=[processes[i] for i in indexes]).SerializeToString())
            for bucket, indexes in sorted(by_bucket.items())]


def totals(key: int, samples: list[tuple]) -> list[tuple]:
    """Per (bucket, process name): ``(agent, bucket, name, cpu_seconds, peak_rss_bytes,
    samples)`` — what the process rollup adds up."""
    acc: dict[tuple, list] = {}
    for _agent, time_ms, _pid, name, _user, _cpu, rss, cpu_seconds, _interval in samples:
        slot = (time_ms - time_ms % BUCKET_MS, name)
        cur = acc.get(slot)
        if cur is None:
            acc[slot] = [cpu_seconds, rss, 1]
        else:
            cur[0] += cpu_seconds
            if rss > cur[1]:
                cur[1] = rss
            cur[2] += 1
    return [(key, bucket, name, *v) for (bucket, name), v in acc.items()]


def unpack(agent: int, data: bytes) -> list[tuple]:
    """A block's samples as rows (``SAMPLE_COLUMNS``), in the order they were sent."""
    return [(agent, p.time_ms, p.pid, p.name, p.user, p.cpu_percent, p.rss_bytes,
             p.cpu_seconds, p.interval_ms)
            for p in agent_pb2.Batch.FromString(data).processes]


def read(conn, agent: int, start: int, end: int, user: str | None = None
         ) -> Iterator[list[tuple]]:
    """``agent``'s samples with ``start <= time_ms < end`` (and of ``user``), in time
    order, a bucket at a time (several blocks of one bucket are merged and sorted)."""
    rows = conn.execute("SELECT bucket, data FROM process_blocks WHERE agent = ? AND "
                        "bucket >= ? AND bucket < ? ORDER BY bucket, rowid",
                        (agent, bucket_of(start), end))
    for _bucket, blocks in groupby(rows, key=lambda r: r[0]):
        samples = [s for _b, data in blocks for s in unpack(agent, data)
                   if start <= s[1] < end and (user is None or s[4] == user)]
        if samples:
            samples.sort(key=lambda s: s[1])
            yield samples


# -- migration 0005: rows of the old process_samples table into blocks ------------------------

def convert_samples(conn) -> None:
    """Move every ``process_samples`` row into blocks and drop that table (in the
    caller's transaction). Rows at or below the rollup cursor (already rolled up)
    become blocks first, so that the cursor can point at the last of those blocks
    and the rest are still rolled up exactly once."""
    found = conn.execute("SELECT last_rowid FROM rollup_cursor WHERE name = "
                         "'process_samples'").fetchone()
    rolled_up = found[0] if found else 0
    _convert(conn, "rowid <= ?", rolled_up)
    cursor = conn.execute("SELECT coalesce(max(rowid), 0) FROM process_blocks").fetchone()[0]
    _convert(conn, "rowid > ?", rolled_up)
    conn.execute("DELETE FROM rollup_cursor WHERE name = 'process_samples'")
    conn.execute("INSERT INTO rollup_cursor VALUES ('process_blocks', ?)", (cursor,))
    conn.execute("DROP TABLE process_samples")


def _convert(conn, where: str, rowid: int) -> None:
    rows = conn.execute(f"SELECT {SAMPLE_COLUMNS} FROM process_samples WHERE {where} "
                        "ORDER BY agent, time_ms, rowid", (rowid,))
    for (agent, bucket), samples in groupby(rows, key=lambda r: (r[0], bucket_of(r[1]))):
        message = agent_pb2.Batch()
        count = 0
        for _a, time_ms, pid, name, user, cpu, rss, cpu_seconds, interval in samples:
            message.processes.add(time_ms=time_ms, pid=pid, name=name, user=user,
                                  cpu_percent=cpu, rss_bytes=rss, cpu_seconds=cpu_seconds,
                                  interval_ms=interval)
            count += 1
        conn.execute(INSERT_BLOCKS, (agent, bucket, count, message.SerializeToString()))
