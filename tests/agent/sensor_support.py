"""Helpers for the agent's sensor-side tests (imported as ``sensor_support``)."""

from __future__ import annotations

import itertools

from worklens.agent import config as agent_config
from worklens.common import settings as shared_config


class ListSink:
    """A Sink that keeps everything, to assert on what the sampler handed over."""

    def __init__(self) -> None:
        self.records: list = []
        self.checkpoints: list[list] = []
        self.heartbeats = 0
        self.closed = False

    def write(self, records) -> None:
        assert not self.closed, "write after close"
        self.records.extend(records)

    def checkpoint(self, open_records, closed=(), heartbeat=False) -> None:
        self.checkpoints.append(list(open_records))
        self.heartbeats += heartbeat
        self.write(closed)

    def close(self) -> None:
        self.closed = True

    def of(self, type_name: str) -> list:
        return [r for r in self.records if type(r).__name__ == type_name]


def make_config(**sections):
    """An AgentConfig from defaults plus ``sampling={...}``-style overrides
    (the process environment's WORKLENS_* variables are ignored)."""
    return shared_config.load(agent_config.AgentConfig, None, env={}, overrides=sections)


def assert_contiguous(spans) -> None:
    """Spans of one kind, in order: none overlaps the next."""
    for before, after in itertools.pairwise(spans):
        assert before.start_ms + before.duration_ms <= after.start_ms, (before, after)
