"""Prometheus metrics of the ingest path (default registry; the HTTP layer
exposes them at /metrics). Label values are fixed, small sets so that a
misbehaving agent cannot blow up the series count."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BATCHES = Counter("worklens_batches", "Batches received, by outcome",
                  ["result"])  # stored | duplicate | rejected
EVENTS = Counter("worklens_events", "Events (spans, samples, totals) stored")
REJECTS = Counter("worklens_rejects", "Rejected calls or batches, by reason",
                  ["reason"])  # invalid | malformed | unauthenticated | permission | too_large |
                               # busy | unavailable | internal
ACK_LATENCY = Histogram("worklens_ack_latency_seconds",
                        "From a batch's arrival to its ack (includes the group commit)",
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                                 2.5, 5.0))
CONNECTED_AGENTS = Gauge("worklens_connected_agents", "Upload streams currently open")


def rejected(reason: str) -> None:
    REJECTS.labels(reason=reason).inc()
