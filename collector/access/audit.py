"""The audit trail (table ``audit_log``, migration 0003): who exported what and
who changed tokens, agents or rules — over the HTTP API (the bearer token's
identity) or with the store-direct CLI (the local operator's login). Written
before the action's response is sent so that an export cannot leave without
its record."""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from worklens.collector.store import Connection


class Actor(Protocol):
    """Who did it: an API principal (collector.http.auth.Principal) or the
    local operator of a CLI command."""

    token_id: str
    name: str
    role: str


@dataclass(frozen=True)
class LocalOperator:
    """A person running a store-direct command on the collector's machine:
    no token, full rights, identified by login and host."""

    token_id: str = "-"
    name: str = ""
    role: str = "admin"


def local_operator() -> LocalOperator:
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary container uid
        login = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return LocalOperator(name=f"{login}@{socket.gethostname()} (cli)")


@dataclass
class AuditEntry:
    id: int
    time_ms: int
    token_id: str
    token_name: str
    role: str
    action: str
    params: dict[str, Any]
    client: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def record(store: Any, who: Actor, action: str, params: dict[str, Any],
           client: str = "") -> None:
    """Append one audit row in its own write transaction (durable on return).
    An API caller's scope is recorded with the parameters (``scope``: its groups,
    null for all), so an export can be reproduced with what that caller could see."""
    scope = getattr(who, "scope", None)   # API readers; an admin always sees everything
    if scope is not None and who.role != "admin":
        params = {**params, "scope": scope.to_json()}
    row = (int(time.time() * 1000), who.token_id, who.name, who.role, action,
           json.dumps(params, sort_keys=True, default=str), client)

    def insert(conn: Connection) -> None:
        conn.execute("INSERT INTO audit_log (time_ms, token_id, token_name, role, action,"
                     " params, client) VALUES (?, ?, ?, ?, ?, ?, ?)", row)

    store.write(insert)


def recent(store: Any, limit: int = 100, action: str | None = None) -> list[AuditEntry]:
    """Newest first, optionally only actions starting with ``action``."""
    sql = ("SELECT id, time_ms, token_id, token_name, role, action, params, client"
           " FROM audit_log")
    args: list[Any] = []
    if action:   # a prefix compare, not LIKE: that is case-sensitive on PostgreSQL only
        prefix = f"{action}."
        sql += " WHERE action = ? OR substr(action, 1, ?) = ?"
        args += [action, len(prefix), prefix]
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(limit)
    with store.reader() as conn:
        rows = conn.execute(sql, args).fetchall()
    return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6] or "{}"), r[7])
            for r in rows]
