"""The audit trail (table ``audit_log``, migration 0003): who exported what and
who changed tokens, agents or rules. Written before the action's response is
sent so that an export cannot leave without its record."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import Any

from collector.http.auth import Principal


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


def record(store: Any, who: Principal, action: str, params: dict[str, Any],
           client: str = "") -> None:
    """Append one audit row in its own write transaction (durable on return)."""
    row = (int(time.time() * 1000), who.token_id, who.name, who.role, action,
           json.dumps(params, sort_keys=True, default=str), client)

    def insert(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO audit_log (time_ms, token_id, token_name, role, action,"
                     " params, client) VALUES (?, ?, ?, ?, ?, ?, ?)", row)

    store.write(insert)


def recent(store: Any, limit: int = 100, action: str | None = None) -> list[AuditEntry]:
    """Newest first, optionally only actions starting with ``action``."""
    sql = ("SELECT id, time_ms, token_id, token_name, role, action, params, client"
           " FROM audit_log")
    args: list[Any] = []
    if action:
        sql += " WHERE action = ? OR action LIKE ?"
        args += [action, f"{action}.%"]
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(limit)
    with store.reader() as conn:
        rows = conn.execute(sql, args).fetchall()
    return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6] or "{}"), r[7])
            for r in rows]
