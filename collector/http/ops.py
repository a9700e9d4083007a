"""Unauthenticated operations endpoints: ``/healthz`` for load balancers and
``/metrics`` for Prometheus (ingest counters from ``collector.metrics`` plus
the store size measured here at scrape time)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest

log = logging.getLogger(__name__)
router = APIRouter(tags=["ops"])

try:  # registers the ingest counters on the default registry (INGEST engineer's module)
    import worklens.collector.metrics  # noqa: F401
except ImportError:  # pragma: no cover - only while that module is being written
    log.debug("worklens.collector.metrics not available; /metrics shows the store size only")

STORE_SIZE = Gauge("worklens_store_size_bytes",
                   "Bytes used by the store's database (pages in use, WAL excluded).")


def store_size_bytes(store: Any) -> int:
    """Size of the database as its engine reports it (``Store.size_bytes``)."""
    return store.size_bytes()


@router.get("/healthz", summary="200 when the store answers, 503 when it does not")
def healthz(request: Request) -> JSONResponse:
    try:
        with request.app.state.store.reader() as conn:
            conn.execute("SELECT 1").fetchone()
    except Exception as exc:  # whatever the store raises, it is not serving
        log.warning("health check failed: %s", exc)
        return JSONResponse({"status": "unavailable", "error": str(exc).splitlines()[0]},
                            status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/metrics", summary="Prometheus text format", response_class=Response)
def metrics(request: Request) -> Response:
    try:
        STORE_SIZE.set(store_size_bytes(request.app.state.store))
    except Exception as exc:  # a metrics scrape must not fail because the store did
        log.warning("cannot measure the store size: %s", exc)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
