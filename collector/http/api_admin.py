"""Admin endpoints: API tokens, agent revocation and the audit log. Every
change is written to the audit log before the response goes out."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from worklens.collector.access import audit, enrollment, tokens
from worklens.collector.http.auth import Principal, require
from worklens.collector.http.context import client_address, store_of
from worklens.collector.http.errors import ApiError
from worklens.common.cli import UserError
from worklens.common.durations import parse_duration

router = APIRouter(prefix="/api/v1", tags=["admin"])
Admin = Annotated[Principal, Depends(require("admin"))]


class TokenRequest(BaseModel):
    role: Literal[tokens.ROLES]  # type: ignore[valid-type]
    name: str = Field("", max_length=200)
    expires: str | None = Field(None, description="a duration such as 30d; omitted = never")
    groups: list[str] = Field(default_factory=list, max_length=50,
                              description="enroll: groups of the agents it enrolls; "
                                          "viewer/exporter: sees only agents in these groups")


def _token_json(info: Any) -> dict[str, Any]:
    return asdict(info)


@router.get("/tokens", summary="List tokens (never their secrets)")
def list_tokens(request: Request, _who: Admin) -> dict[str, Any]:
    return {"tokens": [_token_json(t) for t in tokens.list_tokens(store_of(request))]}


@router.post("/tokens", status_code=201, summary="Create a token; its secret is shown once")
def create_token(request: Request, body: TokenRequest, who: Admin) -> JSONResponse:
    expires_s = None
    if body.expires:
        try:
            expires_s = parse_duration(body.expires)
        except ValueError as exc:
            raise ApiError(400, f"expires: {exc}") from exc
        problem = tokens.expires_problem(expires_s)
        if problem:
            raise ApiError(400, f"expires: {problem}")
    try:
        info, secret = tokens.create_token(store_of(request), body.role, name=body.name,
                                           expires_s=expires_s, groups=body.groups)
    except UserError as exc:
        raise ApiError(400, f"groups: {exc}".replace("groups: --group: ", "groups: ")
                       ) from None
    audit.record(store_of(request), who, "token.create",
                 {"id": info.id, "role": info.role, "name": info.name,
                  "expires_ms": info.expires_ms, "groups": list(info.groups)},
                 client_address(request))
    return JSONResponse({"token": _token_json(info), "secret": secret}, status_code=201)


@router.delete("/tokens/{token_id}", summary="Revoke a token")
def revoke_token(request: Request, token_id: str, who: Admin) -> dict[str, Any]:
    if not tokens.revoke_token(store_of(request), token_id):
        raise ApiError(404, f"no token with id {token_id!r}")
    audit.record(store_of(request), who, "token.revoke", {"id": token_id},
                 client_address(request))
    return {"revoked": token_id}


@router.post("/agents/{agent_id}/revoke", summary="Revoke an agent's credential")
def revoke_agent(request: Request, agent_id: str, who: Admin) -> dict[str, Any]:
    # Through worklens.collector.access.enrollment, so that an upload stream the agent has open
    # right now is refused at its next batch, not only at its next connection.
    store = store_of(request)
    if not enrollment.revoke_agent(store, agent_id) and not _agent_exists(store, agent_id):
        raise ApiError(404, f"no agent with id {agent_id!r}")
    audit.record(store, who, "agent.revoke", {"agent_id": agent_id}, client_address(request))
    return {"revoked": agent_id}


@router.post("/agents/{agent_id}/allow-reenroll",
             summary="Let an agent enroll again without its credential (24 h)")
def allow_reenroll(request: Request, agent_id: str, who: Admin) -> dict[str, Any]:
    """For an agent that lost its data directory's credential: its install may enroll
    again with the enrollment secret alone, once, within 24 hours. Without this,
    re-enrolling an existing install needs the agent's current credential."""
    store = store_of(request)
    if not enrollment.allow_reenroll(store, agent_id):
        raise ApiError(404, f"no agent with id {agent_id!r} (or it was revoked)")
    audit.record(store, who, "agent.allow_reenroll", {"agent_id": agent_id},
                 client_address(request))
    return {"allowed": agent_id, "for_seconds": enrollment.REENROLL_APPROVAL_MS // 1000}


def _agent_exists(store, agent_id: str) -> bool:
    with store.reader() as conn:
        return conn.execute("SELECT 1 FROM agents WHERE agent_id = ?",
                            (agent_id,)).fetchone() is not None


@router.get("/audit", summary="The audit log, newest first")
def audit_log(request: Request, _who: Admin,
              limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
              action: str | None = None) -> dict[str, Any]:
    entries = audit.recent(store_of(request), limit=limit, action=action)
    return {"entries": [e.to_json() for e in entries]}
