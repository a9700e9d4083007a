"""``GET/PUT /api/v1/rules``: the ordered productivity/category rules.
Reading needs viewer, replacing needs admin; a bad rule is a 400 that names
it, and every change is audited. Validation and re-applying the rules to
history are ``rollup.rules`` and ``rollup.buckets.set_rules``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from worklens.collector.access import audit
from worklens.collector.http import queries
from worklens.collector.http.auth import Principal, require
from worklens.collector.http.context import client_address, store_of

router = APIRouter(prefix="/api/v1", tags=["rules"])
Viewer = Annotated[Principal, Depends(require("viewer"))]
Admin = Annotated[Principal, Depends(require("admin"))]


@router.get("/rules", summary="The ordered category rules")
def get_rules(request: Request, _who: Viewer) -> dict[str, Any]:
    return {"rules": queries.get_rules(store_of(request))}


@router.put("/rules", summary="Replace the rules (re-applied to history)")
def put_rules(request: Request, who: Admin,
              body: Annotated[dict[str, Any], Body(examples=[{"rules": [
                  {"app": "^code$", "category": "Development", "productivity": "productive"}]}])],
              ) -> dict[str, Any]:
    store = store_of(request)
    rules = queries.put_rules(store, body.get("rules"))
    audit.record(store, who, "rules.put", {"rules": rules}, client_address(request))
    return {"rules": rules}
