"""The collector's operator-facing HTTP side: JSON API, CSV exports, metrics
and the dashboard, as one ASGI app that ``collector.server`` runs with uvicorn
in the same event loop as gRPC ingest.

Every endpoint that touches the store is a plain ``def`` so that FastAPI runs it
in its threadpool, and exports stream from a worker thread: a slow summary or
a long export never stalls ingest acks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from worklens.collector.http import (
    api_admin,
    api_agents,
    api_dashboard,
    api_export,
    api_groups,
    api_live,
    api_query,
    api_rules,
    errors,
    ops,
)
from worklens.collector.http.headers import SecurityHeaders

STATIC_DIR = Path(__file__).parent / "static"


def create_app(store: Any, cfg: Any) -> FastAPI:
    """Build the HTTP app over an open store (``collector.store.Store``) and the
    collector config (``collector.config.CollectorConfig``)."""
    app = FastAPI(title="Worklens collector", version="1",
                  description="Summaries, timelines and CSV exports of endpoint activity "
                              "(counts and durations only). Bearer tokens with roles "
                              "viewer < exporter < admin.",
                  openapi_url="/api/v1/openapi.json", docs_url=None, redoc_url=None)
    app.state.store = store
    app.state.cfg = cfg
    errors.install(app)
    for module in (ops, api_agents, api_query, api_export, api_rules, api_admin, api_groups,
                   api_dashboard, api_live):
        app.include_router(module.router)
    _mount_dashboard(app)
    app.add_middleware(SecurityHeaders)
    return app


def _mount_dashboard(app: FastAPI) -> None:
    """The dashboard: static files only, no build step, nothing from the network."""

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


# The page loads only its own files and talks only to its own origin.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
