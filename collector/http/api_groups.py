"""Groups over HTTP: ``GET /api/v1/groups`` (viewer: the groups the caller's
scope covers, with their agent counts) and ``PUT /api/v1/agents/{id}/groups``
(admin: replace an agent's groups, audited)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from worklens.collector.access import audit, groups
from worklens.collector.http.auth import Principal, require
from worklens.collector.http.context import client_address, store_of
from worklens.collector.http.errors import ApiError
from worklens.collector.http.scope import scope_of

router = APIRouter(prefix="/api/v1", tags=["groups"])
Viewer = Annotated[Principal, Depends(require("viewer"))]
Admin = Annotated[Principal, Depends(require("admin"))]


class GroupsBody(BaseModel):
    groups: list[str] = Field(default_factory=list, max_length=groups.MAX_GROUPS,
                              description="the agent's new groups ([] = none)")


@router.get("/groups", summary="Groups the caller may see, with their agent counts")
def list_groups(request: Request, _who: Viewer) -> dict[str, Any]:
    with store_of(request).reader() as conn:
        found = groups.list_groups(conn, scope_of(request))
    return {"groups": found, "scope": scope_of(request).to_json()}


@router.put("/agents/{agent_id}/groups", summary="Replace an agent's groups")
def set_agent_groups(request: Request, agent_id: str, body: GroupsBody, who: Admin
                     ) -> dict[str, Any]:
    store = store_of(request)
    try:
        checked = groups.set_agent_groups(store, agent_id, body.groups)
    except groups.GroupError as exc:
        raise ApiError(400, f"groups: {exc}") from None
    except groups.UnknownAgentId:
        raise ApiError(404, f"no agent with id {agent_id!r}") from None
    audit.record(store, who, "agent.groups", {"agent_id": agent_id, "groups": list(checked)},
                 client_address(request))
    return {"agent_id": agent_id, "groups": list(checked)}
