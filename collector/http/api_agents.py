"""``GET /api/v1/agents``: the enrolled agents with what they last reported."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from collector.http.auth import Principal, require
from collector.http.context import store_of, tz_param

router = APIRouter(prefix="/api/v1", tags=["query"])
Viewer = Annotated[Principal, Depends(require("viewer"))]

_COLUMNS = ("agent_id", "hostname", "os", "os_version", "username", "agent_version",
            "enrolled_ms", "last_seen_ms", "last_sequence", "dropped_events", "revoked_ms")


def _iso(ms: int | None, tz) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz).isoformat(
        timespec="seconds")


@router.get("/agents", summary="Enrolled agents, most recently seen first")
def list_agents(request: Request, _who: Viewer,
                tz: Annotated[str | None, Query(description="IANA time zone")] = None,
                ) -> dict[str, Any]:
    zone = tz_param(request, tz)
    with store_of(request).reader() as conn:
        rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM agents"
                            " ORDER BY last_seen_ms IS NULL, last_seen_ms DESC, agent_id"
                            ).fetchall()
    agents = []
    for row in rows:
        item = dict(zip(_COLUMNS, row, strict=True))
        item["enrolled"] = _iso(item["enrolled_ms"], zone)
        item["last_seen"] = _iso(item["last_seen_ms"], zone)
        item["revoked"] = item["revoked_ms"] is not None
        agents.append(item)
    return {"tz": zone.key, "agents": agents}
