"""The live view's facts that only batches carry, kept per agent in
``agent_live`` by an ingest group hook in the same transaction as the batch:
when the newest batch was stored, the agent's spool backlog then and its flush
interval (sent in a stream's first batch; the last non-zero value is kept).
``worklens.collector.reports.live`` answers ``GET /api/v1/live`` from it and
from the spans. Installed beside the rollups (``open_with_rollups``).
"""

from __future__ import annotations

from typing import Any

from worklens.collector.rollup.buckets import upsert
from worklens.collector.store import Connection

_UPSERT = ("INSERT INTO agent_live VALUES (?,?,?,?,?) ON CONFLICT (agent) DO UPDATE SET "
           "received_ms = excluded.received_ms, flush_interval_ms = CASE WHEN "
           "excluded.flush_interval_ms > 0 THEN excluded.flush_interval_ms ELSE "
           "agent_live.flush_interval_ms END, spool_batches = excluded.spool_batches, "
           "spool_bytes = excluded.spool_bytes")


# -- ingest --------------------------------------------------------------------------------

def install(store: Any) -> None:
    """Keep ``agent_live`` current with every stored batch (a group hook)."""
    store.add_group_hook(group_hook)


def group_hook(conn: Connection, group: list[Any]) -> None:
    """One row per agent of the group: its newest batch's backlog and interval."""
    latest: dict[int, tuple] = {}
    for item in group:
        head = item.batch
        old = latest.get(item.key)
        flush = head.flush_interval_ms or (old[2] if old else 0)
        latest[item.key] = (item.key, item.received_ms, flush, head.spool_batches,
                            head.spool_bytes)
    if latest:
        upsert(conn, _UPSERT, list(latest.values()))
