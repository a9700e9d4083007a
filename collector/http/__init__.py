"""The collector's operator-facing HTTP side: JSON API, CSV exports, metrics
and the dashboard, as one ASGI app that ``collector.server`` runs with uvicorn
in the same event loop as gRPC ingest.

Every endpoint that touches the store is a plain ``def`` so that FastAPI runs it
in its threadpool: a slow summary or a long export never stalls ingest acks.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


def create_app(store: Any, cfg: Any) -> FastAPI:
    """Build the HTTP app over an open store (``collector.store.Store``) and the
    collector config (``collector.config.CollectorConfig``)."""
    app = FastAPI(title="Worklens collector", version="1", openapi_url="/api/v1/openapi.json",
                  docs_url=None, redoc_url=None)
    app.state.store = store
    app.state.cfg = cfg

    @app.get("/healthz", tags=["ops"])
    def healthz() -> JSONResponse:
        """200 when the store answers a query, 503 when it does not."""
        try:
            with store.reader() as conn:
                conn.execute("SELECT 1").fetchone()
        except Exception as exc:  # any store failure means "not healthy"
            log.warning("health check failed: %s", exc)
            return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok"})

    return app
