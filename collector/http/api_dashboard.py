"""Small endpoints the dashboard needs: ``GET /api/v1/me`` (who the token is:
role, name, groups, so the page shows only what the role may use) and
``POST /api/v1/rules/preview`` (admin: what a rule set would reclassify,
before saving it)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from worklens.collector.http.api_query import DATE_HELP
from worklens.collector.http.auth import Principal, require
from worklens.collector.http.context import range_params, store_of
from worklens.collector.http.errors import ApiError
from worklens.collector.reports import rules_preview
from worklens.collector.rollup import rules

router = APIRouter(prefix="/api/v1", tags=["dashboard"])
Viewer = Annotated[Principal, Depends(require("viewer"))]
Admin = Annotated[Principal, Depends(require("admin"))]


@router.get("/me", summary="The calling token: id, name, role and groups (its scope)")
def me(who: Viewer) -> dict[str, Any]:
    return {"token_id": who.token_id, "name": who.name, "role": who.role,
            "groups": list(who.groups) if who.role != "admin" else [],
            "scope": who.scope.to_json()}


class PreviewBody(BaseModel):
    rules: list[dict[str, Any]] = Field(description="candidate rules, as PUT /rules takes them")
    date_from: str = Field("7d", alias="from", description=DATE_HELP)
    date_to: str = Field("today", alias="to", description=DATE_HELP)
    tz: str | None = None


@router.post("/rules/preview", summary="What candidate rules would reclassify (not saved)")
def preview(request: Request, body: PreviewBody, _who: Admin) -> dict[str, Any]:
    rng = range_params(request, body.date_from, body.date_to, body.tz)
    try:
        return rules_preview.preview(store_of(request), body.rules, rng.first, rng.last, rng.tz)
    except rules.RuleError as exc:
        raise ApiError(400, str(exc)) from None
