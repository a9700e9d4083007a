"""Rollups: per-agent, per-15-minute totals (active/idle/locked/asleep time per
app and category, process CPU and memory, dropped events) kept current in the
same transaction as every stored batch, so that summaries over months answer
from a few thousand rows instead of millions of spans. ``rules`` holds the
productivity categories the rollups are labelled with; a rules change
re-labels history here (``buckets.set_rules``), never in the store.

Data flows store -> rollup -> reports: the store calls the hook this package
registers, and knows nothing else of it.
"""

from __future__ import annotations

from worklens.collector.rollup.buckets import install, rebuild, set_rules
from worklens.collector.store import Store, open_store

__all__ = ["install", "open_with_rollups", "rebuild", "set_rules"]


def open_with_rollups(url: str, *, serving: bool = False) -> Store:
    """The store as the collector serves it: rollups kept in every ingest commit."""
    store = open_store(url, serving=serving)
    install(store)
    return store
