"""A change of the user an agent reports, written down and audited.

Each batch carries the logged-in user (``host.user``) and its records are
stored under it, so an agent could attribute time to any user name. The agent
runs in one user's session, so a change is rare and worth a look: the first
batch of a stream that names another user than the agent's current one writes
the previous user and the time of the change into the agent's row (shown by
``GET /api/v1/agents``), an ``agent.user_changed`` audit entry and a log warning.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from typing import Any

from worklens.collector.ingest.guards import for_log

log = logging.getLogger(__name__)
ACTION = "agent.user_changed"
_pending: set[asyncio.Task] = set()


def note_user_change(store: Any, agent_key: int, agent_id: str, before: str,
                     after: str) -> None:
    """Record that ``agent_id`` now reports ``after`` instead of ``before`` (in the
    background: the batch is not held up by it)."""
    now = int(time.time() * 1000)
    params = json.dumps({"agent_id": agent_id, "from": before, "to": after}, sort_keys=True)

    def write(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE agents SET previous_user = ?, user_changed_ms = ? WHERE id = ?",
                     (before, now, agent_key))
        conn.execute("INSERT INTO audit_log (time_ms, token_id, token_name, role, action, "
                     "params, client) VALUES (?, '-', ?, 'agent', ?, ?, '')",
                     (now, agent_id, ACTION, params))

    log.warning("agent %s now reports user %s (was %s)", agent_id, for_log(after),
                for_log(before))
    task = asyncio.get_running_loop().create_task(store.write_async(write))
    _pending.add(task)
    task.add_done_callback(_done)


def _done(task: asyncio.Task) -> None:
    _pending.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("could not record a user change: %s", task.exception())
