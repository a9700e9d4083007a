"""Streamed CSV exports for spreadsheets and BI tools (SPEC "CSV").

RFC 4180 (the csv module, CRLF line ends), UTF-8, a header row, ISO 8601
timestamps with the requested zone's offset (always with milliseconds, so every
row has the same shape), durations in seconds as plain numbers.

Window titles, app names and user names come from monitored machines, so any
text cell a spreadsheet would run as a formula (leading ``=``, ``+``, ``-``,
``@``, tab or carriage return; OWASP "CSV injection") gets a leading ``'``,
and so does one starting with any other whitespace (line feed, space...) or a
full-width equals, plus, minus or at sign (U+FF1D, U+FF0B, U+FF0D, U+FF20, which
some spreadsheets fold to ASCII). Control
characters (NUL, ESC...) and the bidirectional controls that make a
spreadsheet show other text than the one stored (e.g. U+202E RIGHT-TO-LEFT
OVERRIDE) are written as a visible ``<U+XXXX>``; the store keeps them as sent
(docs/security.md).

Why generators over a private connection: an export of millions of rows must
not hold them in memory, and a streaming HTTP response advances the generator
from whichever worker thread is free. Rows are fetched ``CHUNK_ROWS`` at a
time from a read-only connection the generator owns and closes (one read
snapshot for the whole export, consistent even while ingest goes on).

Which rows: ``spans``, ``activity`` and ``processes`` are raw records that
START in the date range (in the requested zone); ``daily`` and ``apps`` are
rollup totals per local day, the same numbers as the summaries.

Row order: raw kinds come agent by agent (by agent_id), each agent's rows by
start time — (agent, start), what BI tools and spreadsheets group by anyway.
Why not one global time order: the raw tables are indexed by (agent, time)
only (the store keeps no global time index, it cost ingest a B-tree per row),
and the per-agent walk reads each agent's rows contiguously: faster than the
global order ever was, with the per-export memos (agent, user, app/title,
minute) kept across agents.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any

from worklens.collector.access.groups import memberships
from worklens.collector.reports.summary import (
    CLASSES,
    REASON_NAMES,
    STATE_NAMES,
    LocalLabels,
    UnknownAgent,
    day_range_ms,
    zone,
)
from worklens.collector.rollup.rules import app_key, classifier
from worklens.collector.store import Connection, blocks
from worklens.collector.store.base import POSTGRESQL, dialect

KINDS = ("spans", "activity", "processes", "daily", "apps")
CHUNK_ROWS = 5000
_FORMULA_START = frozenset("=+-@\t\r")

# ``group`` (last, so that columns existing consumers read keep their places): the
# agent's groups as the caller's scope may show them, ";"-separated, "" for none.
HEADERS = {
    "spans": ["agent_id", "user", "start", "end", "duration_seconds", "app", "title", "category",
              "productivity", "exe", "pid", "continued", "group"],
    "activity": ["agent_id", "user", "start", "end", "duration_seconds", "state", "key_presses",
                 "clicks", "mouse_moves", "scrolls", "reason", "continued", "group"],
    "processes": ["agent_id", "time", "pid", "name", "user", "cpu_percent", "rss_bytes",
                  "cpu_seconds", "interval_seconds", "group"],
    "daily": ["date", "agent_id", "user", "active_seconds", "idle_seconds", "spans",
              *(f"{c}_seconds" for c in CLASSES), "state_active_seconds", "state_idle_seconds",
              "locked_seconds", "asleep_seconds", "key_presses", "clicks", "mouse_moves",
              "scrolls", "dropped_events", "passive_seconds", "state_passive_seconds", "group"],
    "apps": ["date", "agent_id", "user", "app", "category", "productivity", "active_seconds",
             "idle_seconds", "spans", "passive_seconds", "group"],
}


class ExportError(ValueError):
    """An export that cannot be made as asked (unknown kind...)."""


_FULL_WIDTH_FORMULA = frozenset("\uff1d\uff0b\uff0d\uff20")   # full-width = + - @
_SHOWN = {c: f"<U+{c:04X}>" for c in (*range(0x20), *range(0x7F, 0xA0), 0x061C, 0x200E,
                                      0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))}
del _SHOWN[0x09], _SHOWN[0x0A], _SHOWN[0x0D]   # tab, LF, CR: quoted by RFC 4180
_HIDDEN = frozenset(map(chr, _SHOWN))


def safe(text: str) -> str:
    """Neutralise a text cell a spreadsheet would evaluate as a formula or show as
    other text than the one stored."""
    if not text:
        return text
    if not _HIDDEN.isdisjoint(text):
        text = text.translate(_SHOWN)
    first = text[0]
    if first in _FORMULA_START or first in _FULL_WIDTH_FORMULA or first.isspace():
        return "'" + text
    return text


class IsoTime:
    """Epoch ms -> ISO 8601 with offset, fast: the date/time/offset prefix is computed
    once per minute (offsets only change on whole minutes)."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.minutes: dict[int, tuple[str, str]] = {}

    def minute(self, minute: int) -> tuple[str, str]:
        """("YYYY-MM-DDTHH:MM:", "+HH:MM") of a minute since the epoch (memoised)."""
        parts = self.minutes.get(minute)
        if parts is None:
            local = datetime.fromtimestamp(minute * 60, self.tz)
            text = local.isoformat(timespec="minutes")
            parts = (text[:16] + ":", text[16:] or "+00:00")
            if len(self.minutes) > 100_000:
                self.minutes.clear()
            self.minutes[minute] = parts
        return parts

    def __call__(self, ms: int) -> str:
        minute, rest = divmod(ms, 60_000)
        parts = self.minutes.get(minute) or self.minute(minute)
        return f"{parts[0]}{_SECONDS[rest]}{parts[1]}"


@dataclass(frozen=True)
class _Selection:
    """Which agents an export walks (``keys`` None = all) and each one's group cell."""

    keys: frozenset[int] | None
    groups_of: dict[int, list[str]] | None


def export(store: Any, kind: str, from_date: date, to_date: date,
           tz: tzinfo | str | None = None, agent: str | None = None,
           user: str | None = None, agents: frozenset[int] | None = None,
           groups_of: dict[int, list[str]] | None = None) -> Iterator[bytes]:
    """Validate now (so an API can answer 400/404 before streaming), then return a
    generator of UTF-8 CSV chunks. ``agents``: only these agent keys (a resolved
    scope; an ``agent`` outside it is unknown); ``groups_of``: the group column's
    content (default: every group of each agent)."""
    if kind not in KINDS:
        raise ExportError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if from_date > to_date:
        raise ExportError(f"from: {from_date} is after to ({to_date})")
    tz = zone(tz)
    start, end = day_range_ms(from_date, to_date, tz)
    key = None
    if agent is not None:
        with store.reader() as conn:
            row = conn.execute("SELECT id FROM agents WHERE agent_id = ?", (agent,)).fetchone()
        if row is None or (agents is not None and row[0] not in agents):
            raise UnknownAgent(f"no agent {agent!r}")
        key = row[0]
    keys = frozenset((key,)) if key is not None else agents
    return _stream(store, kind, start, end, tz, _Selection(keys, groups_of), user)


def _stream(store: Any, kind: str, start: int, end: int, tz: tzinfo, agent: _Selection,
            user: str | None) -> Iterator[bytes]:
    with store.snapshot() as conn:   # one snapshot for the whole export
        if agent.groups_of is None:
            agent = _Selection(agent.keys, memberships(conn))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(HEADERS[kind])
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
        for rows in _ROWS[kind](conn, start, end, tz, agent, user):
            if rows and isinstance(rows[0], str):   # lines already assembled
                yield "".join(rows).encode("utf-8")
                continue
            writer.writerows(rows)
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()


def _filters(column: str, start: int, end: int, agent: int | None, user: str | None,
             user_column: str = "username") -> tuple[str, list]:
    where, params = [f"{column} >= ?", f"{column} < ?"], [start, end]
    if agent is not None:
        where.append("agent = ?")
        params.append(agent)
    if user is not None:
        where.append(f"{user_column} = ?")
        params.append(user)
    return " AND ".join(where), params


def _chunks(conn: Connection, sql: str, params: tuple) -> Iterator[list[tuple]]:
    """The rows of ``sql`` CHUNK_ROWS at a time, never all of them in memory: SQLite's
    cursor steps lazily; on PostgreSQL ``chunks`` pages through a server-side cursor."""
    if dialect(conn) == POSTGRESQL:
        yield from conn.chunks(sql, params, CHUNK_ROWS)
        return
    cursor = conn.execute(sql, params)
    while rows := cursor.fetchmany(CHUNK_ROWS):
        yield rows


# -- raw record kinds -------------------------------------------------------------------------

def rfc4180(text: str) -> str:
    """One text cell, neutralised and quoted as RFC 4180 (and csv.QUOTE_MINIMAL) does."""
    text = safe(text)
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


class _Cells(dict):
    """value -> its CSV text; bounded (titles can be as many as spans)."""

    def __missing__(self, key: Any) -> str:
        if len(self) > 20_000:
            self.clear()
        value = self[key] = rfc4180(key)
        return value


_SECONDS = [f"{s:02d}.{m:03d}" for s in range(60) for m in range(1000)]   # ms in minute -> text


def _raw_rows(conn: Connection, table: str, column: str, columns: str, start: int,
              end: int, agent: _Selection, user: str | None
              ) -> Iterator[tuple[str, str, list[tuple]]]:
    """(agent_id, group cell, rows) agent by agent, each agent's rows by ``column``
    (its index order), in pieces of at most CHUNK_ROWS rows."""
    where = f"agent = ? AND {column} >= ? AND {column} < ?"
    if user is not None:
        where += " AND username = ?"
    sql = f"SELECT {columns} FROM {table} WHERE {where} ORDER BY {column}"
    for key, agent_id, group in _agents(conn, agent):
        params = (key, start, end) if user is None else (key, start, end, user)
        for rows in _chunks(conn, sql, params):
            yield agent_id, group, rows


def _pieces(lines: Iterator[list]) -> Iterator[list]:
    """Regroup per-agent pieces into ones of about CHUNK_ROWS rows (fewer, larger
    writes for the HTTP stream however small each agent's day is)."""
    out: list = []
    for piece in lines:
        out += piece
        if len(out) >= CHUNK_ROWS:
            yield out
            out = []
    if out:
        yield out


def _spans(conn, start, end, tz, agent, user) -> Iterator[list[str]]:
    return _pieces(_span_lines(conn, start, end, tz, agent, user))


def _span_lines(conn, start, end, tz, agent, user) -> Iterator[list[str]]:
    """The hot path (millions of rows): lines are assembled directly, text cells come
    from memos of their neutralised, quoted form, times from a per-minute memo and a
    table of the 60,000 second.millisecond texts."""
    iso, clf, seconds = IsoTime(tz), classifier(conn), _SECONDS
    minute_of = iso.minute
    minutes = iso.minutes
    cells = _Cells()
    described: dict[tuple, str] = {}   # (app, title, excluded) -> "app,title,category,class"
    for agent_id, group, rows in _raw_rows(conn, "window_spans", "start_ms",
                                           "username, start_ms, duration_ms, app, title, "
                                           "excluded, exe, pid, continued", start, end, agent,
                                           user):
        head = rfc4180(agent_id) + ","
        tail = "," + rfc4180(group) + "\r\n"
        out = []
        append = out.append
        for u, s, d, app, title, excluded, exe, pid, continued in rows:
            what = described.get((app, title, excluded))
            if what is None:
                name = app_key(app, excluded)
                shown = "" if excluded else title
                category, productivity = clf.classify(name, shown)
                what = f"{cells[name]},{rfc4180(shown)},{cells[category]},{productivity}"
                if len(described) > 20_000:
                    described.clear()
                described[(app, title, excluded)] = what
            e = s + d
            m, r = divmod(s, 60_000)
            a = minutes.get(m) or minute_of(m)
            m, r2 = divmod(e, 60_000)
            b = minutes.get(m) or minute_of(m)
            append(f"{head}{cells[u]},{a[0]}{seconds[r]}{a[1]},{b[0]}{seconds[r2]}{b[1]},"
                   f"{d / 1000},{what},{'' if excluded else cells[exe]},{pid},"
                   f"{'true' if continued else 'false'}{tail}")
        yield out


def _activity(conn, start, end, tz, agent, user) -> Iterator[list[tuple]]:
    iso = IsoTime(tz)
    for agent_id, group, rows in _raw_rows(conn, "activity_spans", "start_ms",
                                           "username, start_ms, duration_ms, state, "
                                           "key_presses, clicks, mouse_moves, scrolls, reason, "
                                           "continued", start, end, agent, user):
        yield [(agent_id, safe(u), iso(s), iso(s + d), d / 1000,
                STATE_NAMES.get(st, "unknown"), k, c, m, sc, REASON_NAMES.get(why, ""),
                "true" if cont else "false", group)
               for u, s, d, st, k, c, m, sc, why, cont in rows]


def _processes(conn, start, end, tz, agent, user) -> Iterator[list[tuple]]:
    iso = IsoTime(tz)
    for key, agent_id, group in _agents(conn, agent):
        for rows in blocks.read(conn, key, start, end, user):
            yield [(agent_id, iso(t), pid, safe(n), safe(u), round(cpu, 3), rss,
                    round(cs, 3), iv / 1000, group)
                   for _a, t, pid, n, u, cpu, rss, cs, iv in rows]


# -- rollup kinds: per agent, aggregated to local days ----------------------------------------

def _agents(conn: Connection, agent: _Selection) -> list[tuple[int, str, str]]:
    """(key, agent_id, group cell) of the selected agents, by agent_id."""
    rows = conn.execute("SELECT id, agent_id FROM agents").fetchall()
    groups_of = agent.groups_of or {}
    return [(key, agent_id, safe(";".join(groups_of.get(key, ()))))
            for key, agent_id in sorted(rows, key=lambda row: row[1])   # any engine's order
            if agent.keys is None or key in agent.keys]


def _daily(conn, start, end, tz, agent, user) -> Iterator[list[tuple]]:
    labels = LocalLabels(tz)
    for key, agent_id, group in _agents(conn, agent):
        where, params = _filters("bucket", start, end, key, user)
        # [active, idle, spans, 4 classes (active + passive time), 4 states, 4 input
        #  counts, dropped, passive (window time), state passive]
        days: dict[tuple[str, str], list] = defaultdict(lambda: [0] * 18)
        for bucket, u, prod, active, idle, spans, passive in conn.execute(
                "SELECT bucket, username, productivity, sum(active_ms), sum(idle_ms), "
                f"sum(spans), sum(passive_ms) FROM rollup_window WHERE {where} "
                "GROUP BY bucket, username, productivity", params):
            row = days[(labels.day(bucket), u)]
            row[0] += active
            row[1] += idle
            row[2] += spans
            row[3 + CLASSES.index(prod)] += active + passive
            row[16] += passive
        for bucket, u, *states, passive in conn.execute(
                "SELECT bucket, username, active_ms, idle_ms, locked_ms, asleep_ms, key_presses, "
                f"clicks, mouse_moves, scrolls, passive_ms FROM rollup_activity WHERE {where}",
                params):
            row = days[(labels.day(bucket), u)]
            for i, value in enumerate(states):
                row[7 + i] += value
            row[17] += passive
        if user is None:
            dwhere, dparams = _filters("bucket", start, end, key, None)
            dropped: dict[str, int] = defaultdict(int)
            for bucket, count in conn.execute("SELECT bucket, dropped_events FROM rollup_dropped "
                                              f"WHERE {dwhere}", dparams):
                dropped[labels.day(bucket)] += count
            for day, count in dropped.items():
                # An agent-wide figure: on the day's first user row (or a row of its own).
                users = sorted(u for d, u in days if d == day) or [""]
                days[(day, users[0])][15] += count
        yield [(day, agent_id, safe(u), *_seconds(v[:2]), v[2], *_seconds(v[3:11]), *v[11:16],
                *_seconds(v[16:18]), group) for (day, u), v in sorted(days.items())]


def _seconds(values: list[int]) -> list[float]:
    return [v / 1000 for v in values]


def _apps(conn, start, end, tz, agent, user) -> Iterator[list[tuple]]:
    labels = LocalLabels(tz)
    for key, agent_id, group in _agents(conn, agent):
        where, params = _filters("bucket", start, end, key, user)
        days: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for bucket, u, app, category, prod, active, idle, spans, passive in conn.execute(
                "SELECT bucket, username, app, category, productivity, active_ms, idle_ms, spans, "
                f"passive_ms FROM rollup_window WHERE {where}", params):
            row = days[(labels.day(bucket), u, app, category, prod)]
            row[0] += active
            row[1] += idle
            row[2] += spans
            row[3] += passive
        yield [(day, agent_id, safe(u), safe(app), safe(cat), prod, a / 1000, i / 1000, n,
                p / 1000, group)
               for (day, u, app, cat, prod), (a, i, n, p) in sorted(days.items())]


_ROWS: dict[str, Callable[..., Iterator[list[tuple]]]] = {
    "spans": _spans, "activity": _activity, "processes": _processes, "daily": _daily,
    "apps": _apps,
}
