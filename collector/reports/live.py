"""What each agent is doing right now: the live view (``GET /api/v1/live``).

Answered from what agents already send, nothing more: agents cut their open
spans at every flush that sends anything, and at least every second flush
(``worklens.agent.spans.SpanTracker.cut``), so an agent's latest activity and
window spans end at one of its last two flushes. A part marked ``continued``
belongs to a span that began earlier: "since when" is the start of the chain of
parts, found by walking the (agent, start_ms) index back to the newest part that
is not a continuation.

Besides the spans, each batch says how big the agent's spool backlog is and
(first batch of a stream) its flush interval; the ingest group hook in
``worklens.collector.rollup.live`` keeps
the latest of those per agent in ``agent_live``, in the same transaction as the
batch. An agent is *offline* when two of its flushes are missing: derived from
its own flush interval and the last batch stored, never guessed from activity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from worklens.collector.reports.summary import REASON_NAMES, STATE_NAMES
from worklens.collector.rollup.rules import app_key
from worklens.collector.store import Connection

DEFAULT_FLUSH_MS = 30_000      # an agent that never said (older agents): the default
MISSED_FOR_OFFLINE = 2         # flushes missing before an agent is called offline
GRACE_MS = 5_000               # delivery delay that is not yet a missed flush
WINDOW_SLACK_MS = 1_000        # a window part may end a little before the activity part
# Batches keep coming but the newest activity ended this long before the last of them:
# the agent reports no activity now (outside its schedule, no idle sensor): "unknown".
# (An ACTIVE part is cut at the last input, so it may lag by up to the idle threshold.)
STALE_MS = 3_600_000

# -- the view ------------------------------------------------------------------------------

@dataclass
class LiveAgent:
    agent_id: str
    hostname: str
    user: str
    state: str                   # active/passive/idle/locked/asleep/offline/unknown (nothing
                                 # about activity in the last hour of batches)
    reason: str                  # passive only: media/call/inhibitor/rule
    since_ms: int | None         # when the current state began
    app: str                     # current application ("" when no window is focused)
    title: str                   # as the agent's privacy settings let it through
    app_since_ms: int | None
    data_until_ms: int | None    # end of the newest activity the collector holds
    last_contact_ms: int | None  # the newest batch stored
    missed_flushes: int
    flush_interval_s: float
    spool_batches: int           # the agent's backlog when it sent its newest batch
    spool_bytes: int
    last_state: str              # the state as of data_until (also for offline agents)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def live(store: Any, now_ms: int,
         allows: Callable[[int], bool] | None = None) -> list[LiveAgent]:
    """Every agent that is not revoked (and that ``allows``, by internal key, lets the
    caller see: a group-scoped token), most recently heard from first."""
    with store.reader() as conn:
        agents = conn.execute(
            "SELECT a.id, a.agent_id, a.hostname, a.username, a.last_seen_ms, "
            "l.received_ms, l.flush_interval_ms, l.spool_batches, l.spool_bytes "
            "FROM agents a LEFT JOIN agent_live l ON l.agent = a.id "
            "WHERE a.revoked_ms IS NULL").fetchall()
        agents.sort(key=lambda row: (-(row[4] or 0), row[1]))   # not the engine's collation
        return [_one(conn, row, now_ms) for row in agents if allows is None or allows(row[0])]


def _one(conn: Connection, row: tuple, now_ms: int) -> LiveAgent:
    key, agent_id, hostname, user, last_seen, received, flush_ms, backlog, backlog_bytes = row
    flush_ms = flush_ms or DEFAULT_FLUSH_MS
    contact = max(filter(None, (last_seen, received)), default=None)
    missed = missed_flushes(contact, flush_ms, now_ms)
    act = _latest(conn, "activity_spans", "state, reason", key)
    state, reason, since, until = "unknown", "", None, None
    if act is not None:
        start, dur, continued, st, why = act
        state, until = STATE_NAMES.get(st, "unknown"), start + dur
        reason = REASON_NAMES.get(why, "") if state == "passive" else ""
        since = _chain_start(conn, "activity_spans", key, start) if continued else start
    app, title, app_since = "", "", None
    win = _latest(conn, "window_spans", "app, title, excluded", key)
    if win is not None:
        start, dur, continued, w_app, w_title, excluded = win
        if until is None or start + dur >= until - WINDOW_SLACK_MS:
            app, title = app_key(w_app, excluded), "" if excluded else w_title
            app_since = _chain_start(conn, "window_spans", key, start) if continued else start
    if until is not None and contact is not None and contact - until > STALE_MS:
        shown = "unknown"
    else:
        shown = state
    if missed >= MISSED_FOR_OFFLINE or contact is None:
        shown = "offline"
    return LiveAgent(agent_id, hostname, user, shown, reason if shown == "passive" else "",
                     since, app, title, app_since, until, contact, missed, flush_ms / 1000,
                     backlog or 0, backlog_bytes or 0, state)


def missed_flushes(contact_ms: int | None, flush_ms: int, now_ms: int) -> int:
    """Whole flush intervals since the last batch, beyond a small delivery grace."""
    if contact_ms is None:
        return 0
    return max(0, (now_ms - contact_ms - GRACE_MS) // max(flush_ms, 1))


def _latest(conn: Connection, table: str, columns: str, key: int) -> tuple | None:
    return conn.execute(
        f"SELECT start_ms, duration_ms, continued, {columns} FROM {table} WHERE agent = ? "
        "ORDER BY start_ms DESC LIMIT 1", (key,)).fetchone()


def _chain_start(conn: Connection, table: str, key: int, start: int) -> int:
    """Where the span that ``start`` continues began: the newest part at or before it
    that is not a continuation (the index is walked backwards, part by part)."""
    row = conn.execute(
        f"SELECT start_ms FROM {table} WHERE agent = ? AND start_ms <= ? AND continued = 0 "
        "ORDER BY start_ms DESC LIMIT 1", (key, start)).fetchone()
    return row[0] if row else start
