"""Summaries and timelines (role viewer). The numbers come from the
reports' ``reports.summary`` (rollups, not raw spans); this
module only parses parameters and shapes JSON."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from worklens.collector.http import queries
from worklens.collector.http.auth import Principal, require
from worklens.collector.http.context import range_params, store_of, tz_param
from worklens.collector.http.errors import ApiError, bad_param
from worklens.collector.http.jsonresp import FastJSONResponse
from worklens.collector.http.scope import check_agent, scope_of, visible_for
from worklens.collector.reports import summary as summaries
from worklens.collector.reports.dates import DateError, parse_date

# Handlers return FastJSONResponse themselves: FastAPI's generic encoder would walk a
# day's timeline (thousands of nested objects) many times slower than orjson.
router = APIRouter(prefix="/api/v1", tags=["query"])
Viewer = Annotated[Principal, Depends(require("viewer"))]
SUMMARY_BY = summaries.BY

DATE_HELP = "YYYY-MM-DD, today, yesterday or Nd (last N days)"
TzParam = Query(description="IANA time zone (default: the collector's [summary] timezone)")


@router.get("/summary", summary="Active/idle time and productivity, grouped")
def summary(request: Request, _who: Viewer,
            date_from: Annotated[str, Query(alias="from", description=DATE_HELP)],
            date_to: Annotated[str, Query(alias="to", description=DATE_HELP)
                               ] = "today",
            by: Annotated[str, Query(description="one of " + ", ".join(SUMMARY_BY))] = "app",
            agent: Annotated[str | None, Query(description="only this agent id")] = None,
            user: Annotated[str | None, Query(description="only this user")] = None,
            group: Annotated[str | None, Query(description="only agents in this group "
                                                           "(and its subgroups)")] = None,
            tz: Annotated[str | None, TzParam] = None) -> FastJSONResponse:
    if by not in SUMMARY_BY:
        raise bad_param("by", f"unknown grouping {by!r} (expected one of {', '.join(SUMMARY_BY)})")
    rng = range_params(request, date_from, date_to, tz)
    seen = visible_for(request, store_of(request), group or None)
    result = queries.summary(store_of(request), rng, by, agent=agent or None, user=user or None,
                             seen=seen)
    return FastJSONResponse({"from": rng.first.isoformat(), "to": rng.last.isoformat(),
                             "tz": rng.tz.key, "by": by, "agent": agent, "user": user,
                             "group": group, "scope": scope_of(request).to_json(), **result})


@router.get("/timeline", summary="One agent's day: ordered window and activity spans")
def timeline(request: Request, _who: Viewer,
             agent: Annotated[str, Query(description="agent id")],
             date: Annotated[str, Query(description=DATE_HELP)] = "today",
             tz: Annotated[str | None, TzParam] = None) -> FastJSONResponse:
    return agent_day(request, agent, date, tz, queries.timeline)


@router.get("/processes", summary="One agent's day: top processes by CPU time and peak memory")
def processes(request: Request, _who: Viewer,
              agent: Annotated[str, Query(description="agent id")],
              date: Annotated[str, Query(description=DATE_HELP)] = "today",
              tz: Annotated[str | None, TzParam] = None) -> FastJSONResponse:
    """``by_cpu`` and ``by_memory``: name, user, cpu_seconds, peak_rss_bytes, samples."""
    return agent_day(request, agent, date, tz, queries.processes)


def agent_day(request: Request, agent: str, date: str, tz: str | None,
              query: Callable[..., dict[str, Any] | None]) -> FastJSONResponse:
    """One agent's local day through ``query(store, agent, day, zone)``; 404 when
    the agent is unknown."""
    zone, day = day_params(request, date, tz)
    check_agent(request, store_of(request), agent)
    result = query(store_of(request), agent, day, zone)
    if result is None:
        raise ApiError(404, f"agent: no agent with id {agent!r}")
    return FastJSONResponse({"agent": agent, "date": day.isoformat(), "tz": zone.key, **result})


def day_params(request: Request, date: str, tz: str | None) -> tuple[ZoneInfo, dt.date]:
    """The ``tz`` and one-day ``date`` parameters; a bad one is a 400 naming it."""
    zone = tz_param(request, tz)
    try:
        return zone, parse_date(date, zone)
    except DateError as exc:
        raise bad_param("date", str(exc)) from exc
