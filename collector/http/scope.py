"""Scoped reads for the HTTP API: every endpoint that answers about agents
resolves the caller's scope (collector.groups) here, so that an agent, user or
group outside it is answered exactly like one that does not exist: 404 for a
named agent or group, absent from lists, totals, rollups and CSVs.

A new read endpoint must go through ``visible_for`` (or ``check_agent``):
tests/collector/test_http_scope.py enumerates the served OpenAPI routes and
fails for a route it has no scope check for.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from worklens.collector.access import groups
from worklens.collector.http.errors import ApiError


def scope_of(request: Request) -> groups.Scope:
    principal = getattr(request.state, "principal", None)
    return principal.scope if principal is not None else groups.EVERYTHING


def visible_for(request: Request, store: Any, group: str | None = None) -> groups.Visible:
    """The agents this request may see, narrowed to ``group`` when given; a group
    that is malformed is a 400, one the caller cannot see (or that has no agent) a 404."""
    scope = scope_of(request)
    if group is not None:
        try:
            group = groups.check_group(group)
        except groups.GroupError as exc:
            raise ApiError(400, f"group: {exc}") from None
    with store.reader() as conn:
        seen = groups.visible(conn, scope, group)
    if group is not None and not seen.keys:
        raise ApiError(404, f"group: no group {group!r}")
    return seen


def check_agent(request: Request, store: Any, agent_id: str) -> groups.Visible:
    """404 unless ``agent_id`` exists and the caller may see it."""
    seen = visible_for(request, store)
    with store.reader() as conn:
        row = conn.execute("SELECT id FROM agents WHERE agent_id = ?", (agent_id,)).fetchone()
    if row is None or not seen.allows(row[0]):
        raise ApiError(404, f"agent: no agent with id {agent_id!r}")
    return seen
