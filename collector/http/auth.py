"""Bearer-token authentication and roles for the HTTP API.

Roles are ordered: viewer < exporter < admin. ``enroll`` tokens exist only for
agents trading the enrollment secret and open nothing here. Tokens are checked
with ``access.tokens.verify_token`` (hashed secrets, constant-time compare),
so unknown, revoked and expired tokens all get the same 401.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from worklens.collector.access import tokens
from worklens.collector.http.errors import ApiError

ROLE_RANK = {"viewer": 1, "exporter": 2, "admin": 3}
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="worklens"'}


@dataclass(frozen=True)
class Principal:
    """Who is calling: what the audit log records and the role checks read."""

    token_id: str
    name: str
    role: str
    groups: tuple[str, ...] = ()

    @property
    def scope(self):
        """What this caller may see (collector.groups.Scope): its groups, or all."""
        from worklens.collector.access.groups import scope_for

        return scope_for(self.role, self.groups)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                       CHALLENGE)
    return secret.strip()


def authenticate(request: Request) -> Principal:
    """The caller's token, verified against the store, or a 401."""
    info = tokens.verify_token(request.app.state.store, _bearer(request))
    if info is None:
        raise ApiError(401, "invalid, revoked or expired token", CHALLENGE)
    return Principal(token_id=info.id, name=info.name, role=info.role, groups=info.groups)


def require(role: str) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the caller must hold ``role`` or a higher one.

    It is a plain ``def`` so that FastAPI runs the store lookup in its
    threadpool instead of on the event loop shared with gRPC ingest.
    """
    needed = ROLE_RANK[role]

    def dependency(request: Request) -> Principal:
        who = authenticate(request)
        if ROLE_RANK.get(who.role, 0) < needed:
            raise ApiError(403, f"this needs the {role} role (or higher); "
                                f"your token has the {who.role} role")
        request.state.principal = who
        return who

    dependency.__name__ = f"require_{role}"
    return dependency
