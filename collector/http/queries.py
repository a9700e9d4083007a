"""The one place where the HTTP layer calls the reports and rules
(``reports.summary``, ``reports.csvexport``, ``rollup.rules``), so the routers
stay about HTTP and a change of those interfaces touches one file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from worklens.collector.access.groups import NO_GROUP, Visible
from worklens.collector.http.errors import ApiError
from worklens.collector.reports import csvexport
from worklens.collector.reports import summary as summaries
from worklens.collector.reports.dates import DateRange
from worklens.collector.rollup import buckets, rules
from worklens.collector.store import blocks

EXPORT_KINDS = csvexport.KINDS   # owned by the CSV module


def summary(store: Any, rng: DateRange, by: str, agent: str | None, user: str | None,
            seen: Visible | None = None) -> dict[str, Any]:
    """``rows`` (each keyed by the grouping's name, e.g. ``{"app": "firefox", ...}``),
    ``total`` and, for one agent, ``top_processes`` per day; only over the agents
    ``seen`` (the caller's resolved scope)."""
    try:
        result = summaries.summarize(store, rng.first, rng.last, by, rng.tz, agent=agent,
                                     user=user, agents=seen.keys if seen else None,
                                     groups_of=seen.groups_of if seen else None,
                                     no_group=NO_GROUP)
    except summaries.UnknownAgent:
        raise ApiError(404, f"agent: no agent with id {agent!r}") from None
    except summaries.SummaryError as exc:
        raise ApiError(400, str(exc)) from None
    # Rows are flat dataclasses: vars() instead of asdict()'s deep copy (1,000 rows for
    # the dashboard's people table).
    rows = []
    for row in result.rows:
        fields = dict(vars(row))
        rows.append({by: fields.pop("key"), **fields})
    total = dict(vars(result.total))
    total.pop("key", None)
    return {"rows": rows, "total": total,
            "top_processes": [asdict(p) for p in result.top_processes]}


def timeline(store: Any, agent_id: str, day: date, tz: ZoneInfo) -> dict[str, Any] | None:
    """The day's window spans (clipped to the day, with their activity states) and the
    activity segments; None when there is no such agent."""
    try:
        result = summaries.timeline(store, agent_id, day, tz)
    except summaries.UnknownAgent:
        return None
    except summaries.SummaryError as exc:
        raise ApiError(400, str(exc)) from None
    return {"start_ms": result.start_ms, "end_ms": result.end_ms, "spans": result.spans,
            "activity": result.activity, "active_seconds": result.active_seconds,
            "idle_seconds": result.idle_seconds,
            "passive_seconds": result.passive_seconds,
            "passive_segments": result.passive_segments}   # dataclasses: serialised by orjson


def processes(store: Any, agent_id: str, day: date, tz: ZoneInfo) -> dict[str, Any] | None:
    """The agent's top processes of one local day by CPU time and by peak memory, each
    with the user(s) it ran as; None when there is no such agent. The rollups keep no
    user, so it is read from the raw samples ("" once retention has dropped them)."""
    try:
        days = summaries.top_processes(store, day, day, tz, agent=agent_id)
        lo, hi = summaries.day_range_ms(day, day, tz)
    except summaries.UnknownAgent:
        return None
    except summaries.SummaryError as exc:
        raise ApiError(400, str(exc)) from None
    by_cpu, by_memory = (days[0].by_cpu, days[0].by_memory) if days else ([], [])
    users = _process_users(store, agent_id, lo, hi, {p.name for p in (*by_cpu, *by_memory)})

    def shape(uses: list) -> list[dict[str, Any]]:
        return [{**asdict(u), "user": users.get(u.name, "")} for u in uses]

    return {"by_cpu": shape(by_cpu), "by_memory": shape(by_memory)}


def _process_users(store: Any, agent_id: str, lo: int, hi: int, names: set[str]
                   ) -> dict[str, str]:
    """Process name -> its distinct users in [lo, hi), comma-separated, sorted."""
    if not names:
        return {}
    users: dict[str, set[str]] = {}
    with store.reader() as conn:
        key = summaries.agent_key(conn, agent_id)
        for samples in blocks.read(conn, key, lo, hi):
            for sample in samples:
                if sample[3] in names:
                    users.setdefault(sample[3], set()).add(sample[4])
    return {name: ", ".join(sorted(u for u in found if u)) for name, found in users.items()}


def agents(store: Any, seen: Visible | None = None) -> list[dict[str, Any]]:
    """The agents the caller may see, each with its groups (as the scope shows them)."""
    with store.reader() as conn:
        keys = dict(conn.execute("SELECT agent_id, id FROM agents").fetchall())
    out = []
    for a in summaries.list_agents(store):
        key = keys.get(a.agent_id)
        if key is None or (seen is not None and not seen.allows(key)):
            continue
        out.append({**asdict(a), "groups": seen.groups_of.get(key, []) if seen else []})
    return out


def export_csv(store: Any, kind: str, rng: DateRange, agent: str | None = None,
               user: str | None = None, seen: Visible | None = None) -> Iterable[bytes]:
    """Check the request now (so errors are a 400/404 before any byte is sent) and
    return the generator of UTF-8 CSV chunks, which owns its own connection."""
    try:
        return csvexport.export(store, kind, rng.first, rng.last, rng.tz, agent=agent,
                                user=user, agents=seen.keys if seen else None,
                                groups_of=seen.groups_of if seen else None)
    except summaries.UnknownAgent:
        raise ApiError(404, f"agent: no agent with id {agent!r}") from None
    except (csvexport.ExportError, summaries.SummaryError) as exc:
        raise ApiError(400, str(exc)) from None


def get_rules(store: Any) -> list[dict[str, Any]]:
    return [r.to_dict() for r in rules.get_rules(store)]


def put_rules(store: Any, raw: Any) -> list[dict[str, Any]]:
    """Validate and replace (re-applied to history); a bad rule is a 400 naming it."""
    if raw is None:
        raise ApiError(400, 'rules: expected {"rules": [...]}')
    try:
        checked = buckets.set_rules(store, raw)
    except rules.RuleError as exc:
        raise ApiError(400, str(exc)) from None
    return [r.to_dict() for r in checked]
