"""Summary queries over the rollups: who spent how much active and idle time
in what, when, and how productively. Plain dataclasses out (``to_dict()`` for
JSON); no web framework here — the HTTP API and the CLI both call these.

Dates are whole local days in the requested time zone, DST-aware: a local day
is [local midnight, next local midnight) in UTC, 23 or 25 hours on a DST
change. Rollups are 15-minute UTC buckets, and every zone offset in use is a
multiple of 15 minutes, so every local day and hour is a whole number of
buckets. A zone whose offset on a boundary is not (historic local mean times)
is refused with SummaryError instead of being answered approximately.

Productivity classes count active and passive window time (the time someone
works or is evidently engaged: a call, a video), each as the class of its
window's category unless a rule classifies passive time apart (rules.Rule);
shares are shares of that time. Idle time is not work of any class. The
unclassified share is reported like the others, never hidden.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from worklens.collector.reports.timezones import local_tz_name
from worklens.collector.rollup.buckets import (
    ACTIVE,
    ASLEEP,
    BUCKET_MS,
    IDLE,
    LOCKED,
    PASSIVE,
    bucket_of,
)
from worklens.collector.rollup.rules import PRODUCTIVITY, UNCLASSIFIED, app_key, classifier
from worklens.collector.store import Connection

BY = ("app", "agent", "user", "group", "day", "hour", "category")
CLASSES = (*PRODUCTIVITY, UNCLASSIFIED)
STATE_NAMES = {ACTIVE: "active", IDLE: "idle", LOCKED: "locked", ASLEEP: "asleep",
               PASSIVE: "passive"}
REASON_NAMES = {1: "media", 2: "call", 3: "inhibitor", 4: "rule"}   # PASSIVE spans' reason
TOP_PROCESSES = 5


class SummaryError(ValueError):
    """A query that cannot be answered as asked (bad grouping, unusable zone)."""


class UnknownAgent(LookupError):
    """No agent with that public id."""


# -- time helpers -----------------------------------------------------------------------------

def zone(tz: tzinfo | str | None) -> tzinfo:
    """A tzinfo from a name (IANA) or tzinfo; None means this host's zone."""
    if isinstance(tz, tzinfo):
        return tz
    if not tz:
        return ZoneInfo(local_tz_name())
    return ZoneInfo(tz)


def midnight_ms(day: date, tz: tzinfo) -> int:
    return int(datetime.combine(day, time(0), tzinfo=tz).timestamp() * 1000)


def day_range_ms(first: date, last: date, tz: tzinfo) -> tuple[int, int]:
    """[local midnight of ``first``, local midnight after ``last``) in UTC ms."""
    start, end = midnight_ms(first, tz), midnight_ms(last + timedelta(days=1), tz)
    for edge, day in ((start, first), (end, last + timedelta(days=1))):
        if edge % BUCKET_MS:
            raise SummaryError(f"time zone {tz}: midnight of {day} is not on a 15-minute "
                               "boundary of UTC; summaries need a zone offset that is a "
                               "multiple of 15 minutes")
    return start, end


class LocalLabels:
    """Bucket start -> local day / hour label, memoised (few distinct buckets)."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._days: dict[int, str] = {}
        self._hours: dict[int, str] = {}

    def day(self, bucket: int) -> str:
        label = self._days.get(bucket)
        if label is None:
            label = datetime.fromtimestamp(bucket / 1000, self.tz).date().isoformat()
            self._days[bucket] = label
        return label

    def hour(self, bucket: int) -> str:
        label = self._hours.get(bucket)
        if label is None:
            local = datetime.fromtimestamp(bucket / 1000, self.tz)
            label = local.replace(minute=0, second=0, microsecond=0).isoformat()
            self._hours[bucket] = label
        return label


def iso(ms: int, tz: tzinfo) -> str:
    """ISO 8601 with the zone's offset, milliseconds only when there are some."""
    spec = "milliseconds" if ms % 1000 else "seconds"
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec=spec)


# -- results ----------------------------------------------------------------------------------

@dataclass
class SummaryRow:
    """One group: seconds of active/idle/passive window time, spans started, and the
    active + passive time split by productivity class with each class's share of it."""

    key: str
    active_seconds: float = 0.0
    idle_seconds: float = 0.0
    spans: int = 0
    productive_seconds: float = 0.0
    neutral_seconds: float = 0.0
    unproductive_seconds: float = 0.0
    unclassified_seconds: float = 0.0
    productive_share: float = 0.0
    neutral_share: float = 0.0
    unproductive_share: float = 0.0
    unclassified_share: float = 0.0
    passive_seconds: float = 0.0      # window time while PASSIVE (in the classes too)


class _Acc:
    __slots__ = ("active", "classes", "idle", "passive", "spans")

    def __init__(self) -> None:
        self.active = self.idle = self.spans = self.passive = 0
        self.classes = dict.fromkeys(CLASSES, 0)

    def add(self, productivity: str, active: int, idle: int, spans: int,
            passive: int = 0) -> None:
        self.active += active
        self.idle += idle
        self.spans += spans
        self.passive += passive
        self.classes[productivity] = self.classes.get(productivity, 0) + active + passive

    def row(self, key: str) -> SummaryRow:
        out = SummaryRow(key, self.active / 1000, self.idle / 1000, self.spans,
                         passive_seconds=self.passive / 1000)
        engaged = self.active + self.passive
        for name in CLASSES:
            ms = self.classes.get(name, 0)
            setattr(out, f"{name}_seconds", ms / 1000)
            setattr(out, f"{name}_share", round(ms / engaged, 4) if engaged else 0.0)
        return out


@dataclass
class ProcessUse:
    name: str
    cpu_seconds: float
    peak_rss_bytes: int
    samples: int


@dataclass
class ProcessDay:
    """The top processes of one agent on one local day, by CPU time and by peak RSS."""

    agent_id: str
    date: str
    by_cpu: list[ProcessUse]
    by_memory: list[ProcessUse]


@dataclass
class Summary:
    by: str
    from_date: str
    to_date: str
    tz: str
    agent: str | None
    user: str | None
    rows: list[SummaryRow]
    total: SummaryRow
    top_processes: list[ProcessDay] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- summaries --------------------------------------------------------------------------------

def agent_key(conn: Connection, agent_id: str) -> int:
    row = conn.execute("SELECT id FROM agents WHERE agent_id = ?", (agent_id,)).fetchone()
    if row is None:
        raise UnknownAgent(f"no agent {agent_id!r}")
    return row[0]


def agent_names(conn: Connection) -> dict[int, str]:
    return dict(conn.execute("SELECT id, agent_id FROM agents").fetchall())


_DIMENSION = {"app": "app", "category": "category", "agent": "agent", "user": "username",
              "group": "agent", "day": "bucket", "hour": "bucket"}


def agents_clause(keys: frozenset[int]) -> str:
    """``agent IN (...)`` for a resolved scope (integers only, so inlined safely)."""
    if not keys:
        return "0"
    return f"agent IN ({','.join(str(int(k)) for k in sorted(keys))})"


def _filters(column: str, start: int, end: int, agent: int | None, user: str | None,
             agents: frozenset[int] | None) -> tuple[list[str], list]:
    """WHERE terms and parameters shared by the rollup queries: a time range on
    ``column``, then the scope, the agent and the user when given."""
    where, params = [f"{column} >= ?", f"{column} < ?"], [start, end]
    if agents is not None:
        where.append(agents_clause(agents))
    if agent is not None:
        where.append("agent = ?")
        params.append(agent)
    if user is not None:
        where.append("username = ?")
        params.append(user)
    return where, params


def _query(by: str, start: int, end: int, agent: int | None, user: str | None,
           agents: frozenset[int] | None = None) -> tuple[str, list]:
    """The rollup query: the fleet table when no agent/user/scope filter or dimension
    needs the per-agent table (its rows do not grow with the number of agents)."""
    per_agent = (agent is not None or user is not None or agents is not None
                 or by in ("agent", "user", "group"))
    table = "rollup_window" if per_agent else "rollup_window_all"
    dim = _DIMENSION[by]
    where, params = _filters("bucket", start, end, agent, user, agents)
    sql = (f"SELECT {dim}, productivity, sum(active_ms), sum(idle_ms), sum(spans), "
           f"sum(passive_ms) FROM {table} "
           f"WHERE {' AND '.join(where)} GROUP BY {dim}, productivity")
    return sql, params


DAY_MS = 86_400_000
_DAY_DIMENSION = {"agent": "agent", "user": "username", "group": "agent"}


_CLASS_SUMS = ", ".join(f"sum({c}_ms)" for c in CLASSES)
_CLASS_CASES = ", ".join(f"CASE productivity WHEN '{c}' THEN active_ms + passive_ms ELSE 0 "
                         f"END AS {c}_ms" for c in CLASSES)


def _agent_query(by: str, start: int, end: int, agent: int | None, user: str | None,
                 agents: frozenset[int] | None, all_keys: frozenset[int]) -> tuple[str, list]:
    """By agent, user or group: whole UTC days from ``rollup_agent_day`` (a row per
    agent-day and user, classes in columns), the edges of a range in another zone
    from ``rollup_window``, read through its (agent, bucket) key agent by agent.
    Rows: (dim, <class>_ms for each of CLASSES (active + passive), idle_ms, spans,
    passive_ms)."""
    dim = _DAY_DIMENSION[by]
    d0, d1 = -(-start // DAY_MS) * DAY_MS, end // DAY_MS * DAY_MS
    keys = frozenset((agent,)) if agent is not None else agents
    extra, extra_params = "", []
    if user is not None:
        extra, extra_params = " AND username = ?", [user]
    parts, params = [], []
    if d1 > d0:
        only = "" if keys is None else f" AND {agents_clause(keys)}"
        parts.append(f"SELECT {dim} AS dim, {', '.join(f'{c}_ms' for c in CLASSES)}, idle_ms, "
                     f"spans, passive_ms FROM rollup_agent_day WHERE day >= ? AND day < ?"
                     f"{only}{extra}")
        params += [d0, d1, *extra_params]
        edges = [(start, d0), (d1, end)]
    else:
        edges = [(start, end)]
    for lo, hi in edges:
        if hi > lo:   # an IN list of agents: the (agent, bucket) key, not a table scan
            parts.append(f"SELECT {dim} AS dim, {_CLASS_CASES}, idle_ms, spans, passive_ms FROM "
                         f"rollup_window WHERE {agents_clause(keys or all_keys)} AND "
                         f"bucket >= ? AND bucket < ?{extra}")
            params += [lo, hi, *extra_params]
    sql = (f"SELECT dim, {_CLASS_SUMS}, sum(idle_ms), sum(spans), sum(passive_ms) FROM "
           f"({' UNION ALL '.join(parts)}) AS parts GROUP BY dim")
    return sql, params


def _app_day_query(by: str, start: int, end: int, agents: frozenset[int]) -> tuple[str, list]:
    """By app or category for some agents (a scope or group): whole UTC days from
    ``rollup_app_day``, the edges of a range in another zone from ``rollup_window``
    through its (agent, bucket) key. Rows: (dim, class, active_ms, idle_ms, spans,
    passive_ms)."""
    dim = _DIMENSION[by]
    d0, d1 = -(-start // DAY_MS) * DAY_MS, end // DAY_MS * DAY_MS
    only = agents_clause(agents)
    parts, params = [], []
    if d1 > d0:
        parts.append(f"SELECT {dim} AS dim, productivity, active_ms, idle_ms, spans, "
                     f"passive_ms FROM rollup_app_day WHERE day >= ? AND day < ? AND {only}")
        params += [d0, d1]
        edges = [(start, d0), (d1, end)]
    else:
        edges = [(start, end)]
    for lo, hi in edges:
        if hi > lo:
            parts.append(f"SELECT {dim} AS dim, productivity, active_ms, idle_ms, spans, "
                         f"passive_ms FROM rollup_window WHERE {only} AND bucket >= ? "
                         "AND bucket < ?")
            params += [lo, hi]
    sql = (f"SELECT dim, productivity, sum(active_ms), sum(idle_ms), sum(spans), "
           f"sum(passive_ms) FROM ({' UNION ALL '.join(parts)}) AS parts "
           "GROUP BY dim, productivity")
    return sql, params


def _utc_days(first: date, last: date, tz: tzinfo) -> bool:
    """Every local midnight of the range is a UTC midnight (UTC, or a zone at +00:00
    throughout): local days are then rows of ``rollup_agent_day`` as they are."""
    return all(midnight_ms(first + timedelta(days=i), tz) % DAY_MS == 0
               for i in range((last - first).days + 2))


def _agent_day_query(start: int, end: int, agent: int | None, user: str | None,
                     agents: frozenset[int] | None) -> tuple[str, list]:
    """By day for some agents or a user, local days being UTC days; rows as
    ``_agent_query``'s with the day's UTC midnight as dim."""
    where, params = _filters("day", start, end, agent, user, agents)
    return (f"SELECT day, {_CLASS_SUMS}, sum(idle_ms), sum(spans), sum(passive_ms) "
            f"FROM rollup_agent_day "
            f"WHERE {' AND '.join(where)} GROUP BY day", params)


def _class_rows(rows: Any) -> Any:
    """Wide rows (dim, <class>_ms..., idle, spans, passive), the classes counting
    active + passive time, as the narrow ones the summary loop adds up: (dim, class,
    active, idle, spans, passive). Idle, spans and passive are counted once, on the
    first class's row, whose active time is its class time less the passive time:
    each class then adds up to its own time and the active times to the group's."""
    for dim, *rest in rows:
        idle, spans, passive = rest[-3], rest[-2], rest[-1]
        for i, name in enumerate(CLASSES):
            if i == 0:
                yield (dim, name, rest[i] - passive, idle, spans, passive)
            else:
                yield (dim, name, rest[i], 0, 0, 0)


def summarize(store: Any, from_date: date, to_date: date, by: str,
              tz: tzinfo | str | None = None, agent: str | None = None,
              user: str | None = None, agents: frozenset[int] | None = None,
              groups_of: dict[int, list[str]] | None = None,
              no_group: str = "(no group)") -> Summary:
    """Active/idle/passive seconds, spans and productivity per group over whole local days
    ``from_date``..``to_date`` (inclusive) in ``tz``, read from the rollups.

    ``agents``: only these agent keys (a resolved scope, collector.groups); None =
    all. ``by="group"`` counts an agent's time in each of its ``groups_of`` (an
    agent in two groups is in both rows, once in the total); ``no_group`` for
    agents in none."""
    if by not in BY:
        raise SummaryError(f"by: expected one of {', '.join(BY)}, got {by!r}")
    if from_date > to_date:
        raise SummaryError(f"from: {from_date} is after to ({to_date})")
    tz = zone(tz)
    start, end = day_range_ms(from_date, to_date, tz)
    labels = LocalLabels(tz)
    groups: dict[Any, _Acc] = defaultdict(_Acc)
    total = _Acc()
    with store.reader() as conn:
        key = agent_key(conn, agent) if agent is not None else None
        if key is not None and agents is not None and key not in agents:
            raise UnknownAgent(f"no agent {agent!r}")
        names = agent_names(conn) if by == "agent" else {}
        wide = True
        if by == "day" and (key is not None or user is not None or agents is not None) \
                and _utc_days(from_date, to_date, tz):
            sql, params = _agent_day_query(start, end, key, user, agents)
        elif by in _DAY_DIMENSION:
            every = frozenset(k for (k,) in conn.execute("SELECT id FROM agents"))
            sql, params = _agent_query(by, start, end, key, user, agents, every)
        elif by in ("app", "category") and agents is not None and key is None \
                and user is None:
            sql, params = _app_day_query(by, start, end, agents)
            wide = False
        else:
            sql, params = _query(by, start, end, key, user, agents)
            wide = False
        rows = conn.execute(sql, params)
        for dim, productivity, active, idle, spans, passive in (_class_rows(rows) if wide
                                                                 else rows):
            if by == "group":
                total.add(productivity, active, idle, spans, passive)
                for grp in (groups_of or {}).get(dim) or (no_group,):
                    groups[grp].add(productivity, active, idle, spans, passive)
                continue
            if by == "day":
                dim = labels.day(dim)
            elif by == "hour":
                dim = labels.hour(dim)
            elif by == "agent":
                dim = names.get(dim, str(dim))
            groups[dim].add(productivity, active, idle, spans, passive)
            total.add(productivity, active, idle, spans, passive)
        top = _top_processes(conn, start, end, labels, key, names or agent_names(conn)
                             ) if key is not None else []
    if by in ("day", "hour"):
        order = sorted(groups, key=lambda k: _chronological(k, by))
    else:
        order = sorted(groups, key=lambda k: (-groups[k].active, -groups[k].idle, k))
    return Summary(by, from_date.isoformat(), to_date.isoformat(), str(tz), agent, user,
                   [groups[k].row(k) for k in order], total.row("total"), top)


def _chronological(label: str, by: str) -> Any:
    if by == "hour":  # two 02:00 hours on a fall-back night: order by the UTC instant
        return datetime.fromisoformat(label).astimezone(UTC)
    return label


# -- top processes ----------------------------------------------------------------------------

def _top_processes(conn: Connection, start: int, end: int, labels: LocalLabels,
                   agent: int | None, names: dict[int, str], limit: int = TOP_PROCESSES
                   ) -> list[ProcessDay]:
    sql = ("SELECT agent, bucket, name, cpu_seconds, peak_rss_bytes, samples FROM rollup_process "
           "WHERE bucket >= ? AND bucket < ?")
    params: list = [start, end]
    if agent is not None:
        sql = sql.replace("WHERE", "WHERE agent = ? AND")
        params.insert(0, agent)
    days: dict[tuple[int, str], dict[str, list]] = defaultdict(dict)
    for agent_key_, bucket, name, cpu, peak, samples in conn.execute(sql, params):
        use = days[(agent_key_, labels.day(bucket))].setdefault(name, [0.0, 0, 0])
        use[0] += cpu
        use[1] = max(use[1], peak)
        use[2] += samples
    out = []
    for (key, day), procs in sorted(days.items()):
        uses = [ProcessUse(n, round(v[0], 3), v[1], v[2]) for n, v in procs.items()]
        out.append(ProcessDay(
            names.get(key, str(key)), day,
            sorted(uses, key=lambda u: (-u.cpu_seconds, u.name))[:limit],
            sorted(uses, key=lambda u: (-u.peak_rss_bytes, u.name))[:limit]))
    return out


def top_processes(store: Any, from_date: date, to_date: date, tz: tzinfo | str | None = None,
                  agent: str | None = None, limit: int = TOP_PROCESSES) -> list[ProcessDay]:
    """Top processes by CPU time and by peak memory per agent and local day."""
    tz = zone(tz)
    start, end = day_range_ms(from_date, to_date, tz)
    with store.reader() as conn:
        key = agent_key(conn, agent) if agent is not None else None
        return _top_processes(conn, start, end, LocalLabels(tz), key, agent_names(conn), limit)


# -- timeline ---------------------------------------------------------------------------------

@dataclass
class StateSegment:
    start_ms: int
    end_ms: int
    state: str


@dataclass
class PassiveSegment:
    """A stretch of PASSIVE time inside window span number ``span`` (of the day's
    spans), with the category and class that time counts as: its window's own,
    unless a rule classifies passive time apart (rules.Rule.passive)."""

    start_ms: int
    end_ms: int
    span: int
    category: str
    productivity: str


@dataclass
class TimelineSpan:
    """One window span, clipped to the day, with the activity states inside it and
    the category and class of its passive time (its own unless a rule sets it apart)."""

    start: str
    end: str
    start_ms: int
    end_ms: int
    app: str
    title: str
    category: str
    productivity: str
    active_seconds: float
    idle_seconds: float
    states: list[StateSegment]
    passive_seconds: float = 0.0
    passive_category: str = ""
    passive_productivity: str = ""


@dataclass
class Timeline:
    agent_id: str
    date: str
    tz: str
    start_ms: int
    end_ms: int
    spans: list[TimelineSpan]
    activity: list[StateSegment]
    active_seconds: float
    idle_seconds: float
    passive_seconds: float = 0.0
    passive_segments: list[PassiveSegment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _longest(conn: Connection, agent: int) -> tuple[int, int]:
    row = conn.execute("SELECT max_window_ms, max_state_ms FROM rollup_agent WHERE agent = ?",
                       (agent,)).fetchone()
    return tuple(row) if row else (0, 0)


def timeline(store: Any, agent_id: str, day: date, tz: tzinfo | str | None = None) -> Timeline:
    """The agent's window spans of one local day, in order, each with its activity
    states; spans crossing midnight are clipped to the day. Parts of one span that
    the agent cut at its flushes (``continued``) are shown joined, as one span. The
    passive stretches within the spans are also listed apart with the category and
    class their time counts as, which a rule may set apart from the span's own: the
    dashboard colours them by it, so the timeline agrees with the summaries."""
    tz = zone(tz)
    lo, hi = day_range_ms(day, day, tz)
    with store.reader() as conn:
        key = agent_key(conn, agent_id)
        max_w, max_a = _longest(conn, key)
        clf = classifier(conn)
        windows = conn.execute(
            "SELECT start_ms, duration_ms, app, title, excluded, continued FROM window_spans "
            "WHERE agent = ? AND start_ms >= ? AND start_ms < ? ORDER BY start_ms",
            (key, lo - max_w, hi)).fetchall()
        acts = conn.execute(
            "SELECT start_ms, duration_ms, state, continued FROM activity_spans WHERE agent = ? "
            "AND start_ms >= ? AND start_ms < ? ORDER BY start_ms",
            (key, lo - max_a, hi)).fetchall()
    windows = _joined(windows, key_columns=(2, 3, 4))
    activity = [StateSegment(max(s, lo), min(s + d, hi), STATE_NAMES.get(st, "unknown"))
                for s, d, st in _joined(acts, key_columns=(2,))
                if s + d > lo and min(s + d, hi) > max(s, lo)]
    starts = [a.start_ms for a in activity]   # sorted: the query orders by start
    longest = max((a.end_ms - a.start_ms for a in activity), default=0)
    spans, passive_segments = [], []
    total_active = total_idle = total_passive = 0
    for start, dur, app, title, excluded in windows:
        s, e = max(start, lo), min(start + dur, hi)
        if e <= s:
            continue
        name = app_key(app, excluded)
        (category, productivity), passive_class = clf.classes(name, "" if excluded else title)
        states = []
        for i in range(bisect.bisect_left(starts, s - longest), bisect.bisect_left(starts, e)):
            a = activity[i]
            if a.end_ms > s:
                states.append(StateSegment(max(s, a.start_ms), min(e, a.end_ms), a.state))
        active = sum(x.end_ms - x.start_ms for x in states if x.state == "active")
        idle = sum(x.end_ms - x.start_ms for x in states if x.state == "idle")
        passive = sum(x.end_ms - x.start_ms for x in states if x.state == "passive")
        total_active += active
        total_idle += idle
        total_passive += passive
        passive_segments += [PassiveSegment(x.start_ms, x.end_ms, len(spans), *passive_class)
                             for x in states if x.state == "passive"]
        spans.append(TimelineSpan(iso(s, tz), iso(e, tz), s, e, name, "" if excluded else title,
                                  category, productivity, active / 1000, idle / 1000, states,
                                  passive / 1000, *passive_class))
    return Timeline(agent_id, day.isoformat(), str(tz), lo, hi, spans, activity,
                    total_active / 1000, total_idle / 1000, total_passive / 1000,
                    passive_segments)


def _joined(rows: list[tuple], key_columns: tuple[int, ...]) -> list[tuple]:
    """Rows ``(start, duration, *columns, continued)`` in start order with each
    continued part added to the span before it (same key columns, ending where the
    part starts); the ``continued`` column is dropped."""
    out: list[list] = []
    for start, duration, *rest in rows:
        *columns, continued = rest
        if continued and out:
            last = out[-1]
            if last[0] + last[1] == start and all(last[i] == rest[i - 2]
                                                  for i in key_columns):
                last[1] += duration
                continue
        out.append([start, duration, *columns])
    return [tuple(r) for r in out]


# -- agents -----------------------------------------------------------------------------------

@dataclass
class AgentInfo:
    agent_id: str
    hostname: str
    os: str
    os_version: str
    username: str
    agent_version: str
    enrolled_ms: int
    last_seen_ms: int | None
    last_sequence: int
    dropped_events: int
    revoked: bool
    previous_user: str = ""              # the user reported before the last change
    user_changed_ms: int | None = None   # when the reported user last changed


def list_agents(store: Any) -> list[AgentInfo]:
    """Enrolled agents, most recently seen first (never their credential hashes)."""
    with store.reader() as conn:
        rows = conn.execute(
            "SELECT agent_id, hostname, os, os_version, username, agent_version, enrolled_ms, "
            "last_seen_ms, last_sequence, dropped_events, revoked_ms IS NOT NULL, "
            "previous_user, user_changed_ms FROM agents").fetchall()
    # sorted here: agent ids in byte order whatever the engine's collation
    rows.sort(key=lambda row: (-(row[7] if row[7] is not None else row[6]), row[0]))
    return [AgentInfo(*row[:10], bool(row[10]), *row[11:]) for row in rows]


__all__ = ["BY", "AgentInfo", "PassiveSegment", "ProcessDay", "ProcessUse", "Summary",
           "SummaryError", "SummaryRow", "Timeline", "TimelineSpan", "UnknownAgent", "bucket_of",
           "day_range_ms", "list_agents", "summarize", "timeline", "top_processes", "zone"]
