"""Process-samples CSV export from the block store.

    python benchmarks/process_export.py --agents 20 --hours 24

Fills a fresh SQLite store through the real ingest path (``Store.ingest``: blocks,
rollups) with each agent's top 10 processes every minute, then streams one day's
``processes`` export (the same generator the HTTP API streams) and times it.
Process samples are stored in blocks (collector/store/blocks.py), so this is the
read side of that design: every block is decoded back into rows.

Last line: {"export_rows_per_s": ..., "rows": ..., "csv_mb": ..., "fill_samples_per_s": ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from worklens.collector.reports.csvexport import export
from worklens.collector.rollup import open_with_rollups
from worklens.v1 import agent_pb2

NAMES = ("code", "firefox", "python3", "Xorg", "slack", "chrome", "gnome-shell", "pulseaudio",
         "dbus-daemon", "systemd")
DAY = date(2026, 11, 20)


def hour_batch(sequence: int, start_ms: int) -> agent_pb2.Batch:
    """An hour of one agent's process samples: the top 10 every minute."""
    batch = agent_pb2.Batch(agent_id="benchmark", sequence=sequence)
    for minute in range(60):
        for i, name in enumerate(NAMES):
            batch.processes.add(time_ms=start_ms + minute * 60_000, pid=100 + i, name=name,
                                user="alice", cpu_percent=1.5 + i, rss_bytes=(i + 1) << 24,
                                cpu_seconds=0.9 + i / 10, interval_ms=60_000)
    return batch


async def fill(store, keys: list[int], hours: int) -> None:
    day_ms = int(datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC).timestamp() * 1000)
    for key in keys:
        await asyncio.gather(*(store.ingest(key, hour_batch(h + 1, day_ms + h * 3_600_000))
                               for h in range(hours)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--hours", type=int, default=24, choices=range(1, 25),
                        metavar="1-24", help="hours of samples per agent, on one day")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="worklens-bench-") as tmp:
        store = open_with_rollups(f"sqlite:///{Path(tmp) / 'worklens.db'}")
        try:
            keys = [store.write(lambda c, i=i: c.execute(
                "INSERT INTO agents (agent_id, credential_hash, enrolled_ms) VALUES (?, 'x', 0)",
                (f"ag-bench-{i:04d}",)).lastrowid) for i in range(args.agents)]
            rows = args.agents * args.hours * 60 * len(NAMES)
            started = time.perf_counter()
            asyncio.run(fill(store, keys, args.hours))
            fill_s = time.perf_counter() - started
            started, size = time.perf_counter(), 0
            for chunk in export(store, "processes", DAY, DAY, "UTC"):
                size += len(chunk)
            export_s = time.perf_counter() - started
        finally:
            store.close()
    print(f"{rows:,} process samples stored in {fill_s:.1f}s; exported {size / 1e6:.1f} MB of "
          f"CSV in {export_s:.2f}s")
    print(json.dumps({"export_rows_per_s": round(rows / export_s), "rows": rows,
                      "csv_mb": round(size / 1e6, 1),
                      "fill_samples_per_s": round(rows / fill_s), "agents": args.agents,
                      "hours": args.hours}))


if __name__ == "__main__":
    main()
