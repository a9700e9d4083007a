"""``GET /api/v1/live`` (role viewer): each agent's state right now, its current
application and title (as the agent's privacy settings let them through), since
when, its last contact and its spool backlog. See ``collector.live``."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from worklens.collector.http.auth import Principal, require
from worklens.collector.http.context import store_of, tz_param
from worklens.collector.http.jsonresp import FastJSONResponse
from worklens.collector.http.scope import visible_for
from worklens.collector.reports import live as live_view

router = APIRouter(prefix="/api/v1", tags=["query"])
Viewer = Annotated[Principal, Depends(require("viewer"))]
_TIMES = ("since", "app_since", "data_until", "last_contact")


def _iso(ms: int | None, tz: Any) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz).isoformat(
        timespec="seconds")


@router.get("/live", summary="What each agent is doing now (state, app, since, last contact)")
def live(request: Request, _who: Viewer,
         tz: Annotated[str | None, Query(description="IANA time zone")] = None,
         ) -> FastJSONResponse:
    """``state`` is active, passive (with ``reason``), idle, locked, asleep, offline
    (two of the agent's flushes missing) or unknown (no activity stored yet). A token
    scoped to groups sees only the agents in them."""
    zone = tz_param(request, tz)
    now = int(time.time() * 1000)
    agents = []
    seen = visible_for(request, store_of(request))      # a group-scoped token sees its own
    for agent in live_view.live(store_of(request), now, seen.allows):
        item = agent.to_dict()
        for name in _TIMES:
            item[name] = _iso(item[f"{name}_ms"], zone)
        agents.append(item)
    return FastJSONResponse({"tz": zone.key, "now": _iso(now, zone), "now_ms": now,
                             "agents": agents})
