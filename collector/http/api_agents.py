"""``GET /api/v1/agents``: the enrolled agents with what they last reported."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from worklens.collector.http import queries
from worklens.collector.http.auth import Principal, require
from worklens.collector.http.context import store_of, tz_param
from worklens.collector.http.jsonresp import FastJSONResponse
from worklens.collector.http.scope import visible_for

router = APIRouter(prefix="/api/v1", tags=["query"])
Viewer = Annotated[Principal, Depends(require("viewer"))]

def _iso(ms: int | None, tz) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz).isoformat(
        timespec="seconds")


@router.get("/agents", summary="Enrolled agents, most recently seen first")
def list_agents(request: Request, _who: Viewer,
                tz: Annotated[str | None, Query(description="IANA time zone")] = None,
                ) -> FastJSONResponse:
    zone = tz_param(request, tz)
    agents = queries.agents(store_of(request), visible_for(request, store_of(request)))
    for item in agents:
        item["enrolled"] = _iso(item["enrolled_ms"], zone)
        item["last_seen"] = _iso(item["last_seen_ms"], zone)
    return FastJSONResponse({"tz": zone.key, "agents": agents})
