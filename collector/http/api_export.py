"""``GET /api/v1/export/{kind}.csv`` (role exporter): CSV streamed straight
from the database. The rows and their format (RFC 4180, ISO 8601 with offset,
formula neutralising) are ``reports.csvexport``'s;
this module audits the export, then streams it from a worker thread."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from worklens.collector.access import audit
from worklens.collector.http import queries
from worklens.collector.http.api_query import DATE_HELP
from worklens.collector.http.auth import Principal, require
from worklens.collector.http.context import client_address, range_params, store_of
from worklens.collector.http.errors import ApiError
from worklens.collector.http.scope import visible_for
from worklens.collector.http.stream import threaded_chunks

router = APIRouter(prefix="/api/v1", tags=["export"])
Exporter = Annotated[Principal, Depends(require("exporter"))]


@router.get("/export/{kind}.csv", summary="CSV export (streamed)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}})
def export_csv(request: Request, kind: str, who: Exporter,
               date_from: Annotated[str, Query(alias="from", description=DATE_HELP)],
               date_to: Annotated[str, Query(alias="to", description=DATE_HELP)] = "today",
               tz: Annotated[str | None, Query(description="IANA time zone")] = None,
               agent: Annotated[str | None, Query(description="only this agent id")] = None,
               user: Annotated[str | None, Query(description="only this user")] = None,
               group: Annotated[str | None, Query(description="only agents in this group "
                                                              "(and its subgroups)")] = None,
               ) -> StreamingResponse:
    if kind not in queries.EXPORT_KINDS:
        raise ApiError(404, f"kind: unknown export {kind!r} (expected one of "
                            f"{', '.join(queries.EXPORT_KINDS)})")
    rng = range_params(request, date_from, date_to, tz)
    store = store_of(request)
    seen = visible_for(request, store, group or None)
    rows = queries.export_csv(store, kind, rng, agent=agent or None, user=user or None,
                              seen=seen)
    audit.record(store, who, f"export.{kind}",
                 {"kind": kind, "from": rng.first.isoformat(), "to": rng.last.isoformat(),
                  "tz": rng.tz.key, "agent": agent, "user": user, "group": group},
                 client_address(request))
    filename = f"worklens-{kind}-{rng.first.isoformat()}-{rng.last.isoformat()}.csv"
    return StreamingResponse(
        threaded_chunks(lambda: rows, name=f"export-{kind}"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"',
                 "Cache-Control": "no-store"})
