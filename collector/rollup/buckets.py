"""Summary rollups, kept in the same transaction as the raw records.

Active time is window time during ACTIVE activity and idle time window time
during IDLE (SPEC "Summaries"): a window span and an activity span of the same
agent contribute their overlap. Both kinds usually arrive in one batch but
either may come late, so each (window, activity) pair is counted exactly once,
when the later of the two is stored:

* ``rollup_cursor`` (by rowid) says which raw rows are rolled up: all rows at
  or below it;
* new windows are intersected with ALL stored activity overlapping them;
* new activity is intersected with the windows stored before (rowid <= the old
  cursor), so a pair of two new rows is not counted twice.

The ingest hook is a GROUP hook (``Store.add_group_hook``): called once per
group commit, right after the group's rows are inserted, it works on the rows
it is handed in memory (re-reading rows just written cost as much as the rest
of the hook). It checks that the rows above the cursors are exactly those rows
(rowids of new rows exceed all older ones); if not — rows stored by a writer
without the hook — it falls back to ``catch_up``, which reads everything above
the cursors back. Either way the cursors end at the top.

Contributions are additive and split exactly at 15-minute UTC bucket
boundaries, so ``rebuild`` (delete a bucket range, recompute it from raw rows,
clipped to the range) gives the same rows as ingest did. Aggregation happens
in Python per group and few rows are upserted: the hook runs inside the ingest
group commit, on the writer thread, and its cost is taken from ingest
throughput one for one.
"""

from __future__ import annotations

import bisect
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate, chain
from typing import Any, Protocol

from worklens.collector.rollup import rules as rules_mod
from worklens.collector.store import Connection, blocks, locks, overlaps
from worklens.collector.store.base import POSTGRESQL, dialect
from worklens.v1 import agent_pb2

log = logging.getLogger(__name__)

BUCKET_MS = blocks.BUCKET_MS   # the store computes process totals per bucket
ACTIVE, IDLE, LOCKED, ASLEEP, PASSIVE = (
    agent_pb2.ACTIVITY_STATE_ACTIVE, agent_pb2.ACTIVITY_STATE_IDLE,
    agent_pb2.ACTIVITY_STATE_LOCKED, agent_pb2.ACTIVITY_STATE_ASLEEP,
    agent_pb2.ACTIVITY_STATE_PASSIVE)
_STATE_COLUMN = {ACTIVE: 0, IDLE: 1, LOCKED: 2, ASLEEP: 3, PASSIVE: 8}
# the states whose window time a summary reports, and their column in window deltas
_PAIRED = {ACTIVE: 0, IDLE: 1, PASSIVE: 3}
_PASSIVE_COLUMN = _PAIRED[PASSIVE]   # counted under the window's passive key
PAIRED_STATES = f"({ACTIVE}, {IDLE}, {PASSIVE})"
NEVER = -(2 ** 62)
FOREVER = 2 ** 62
REBUILD_CHUNK_MS = 7 * 86_400_000
_ALL_STORED = {"window_spans": FOREVER, "activity_spans": FOREVER, "process_blocks": FOREVER}

# Raw rows are handled in the column order of ``collector.store.records`` (the INSERT
# order), so the ingest hook works on the rows it was handed and rebuild on the same
# columns read back.
WINDOW_COLUMNS = ("agent, start_ms, duration_ms, app, title, pid, exe, excluded, username, "
                  "continued")
ACTIVITY_COLUMNS = ("agent, start_ms, duration_ms, state, key_presses, clicks, mouse_moves, "
                    "scrolls, username, continued, reason")
# Process samples are stored in blocks (collector.store.blocks): the ingest hook gets
# their per-bucket totals, rebuild decodes the blocks.
_RAW_TABLES = ("window_spans", "activity_spans", "process_blocks")


def bucket_of(ms: int) -> int:
    return ms - ms % BUCKET_MS


def floor_bucket(ms: int) -> int:
    return bucket_of(ms)


def ceil_bucket(ms: int) -> int:
    return -bucket_of(-ms)


# -- accumulating contributions ---------------------------------------------------------------

@dataclass
class Deltas:
    """Contributions of some raw rows. Hot-loop friendly keys: ``window`` maps
    (bucket, (agent, user, app, category, productivity)) -> [active, idle, spans,
    passive]; ``activity`` maps (bucket, (agent, user)) -> [active, idle, locked, asleep
    ms, keys, clicks, moves, scrolls, passive ms]; ``process`` (agent, bucket, name) -> [cpu, peak,
    samples]; ``dropped`` (agent, bucket) -> events."""

    window: defaultdict = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0]))
    activity: defaultdict = field(default_factory=lambda: defaultdict(lambda: [0] * 9))
    process: dict = field(default_factory=dict)
    dropped: defaultdict = field(default_factory=lambda: defaultdict(int))

    def __bool__(self) -> bool:
        return bool(self.window or self.activity or self.process or self.dropped)


def _spread(acc: defaultdict, key: tuple, column: int, lo: int, hi: int) -> None:
    """Add the time [lo, hi) to ``acc[(bucket, key)][column]`` bucket by bucket (split
    exactly at the boundaries)."""
    while lo < hi:
        bucket = lo - lo % BUCKET_MS
        end = bucket + BUCKET_MS
        if end > hi:
            end = hi
        acc[(bucket, key)][column] += end - lo
        lo = end


class _Windows:
    """Window rows (``records`` layout) as (start, end, rollup key, rollup key of its
    passive time), for overlap sweeps. The two keys differ only where a rule classifies
    passive time apart (rules.Rule.passive). With ``counts`` (a Deltas), each span is
    also counted in the bucket it starts in (what ``add_windows`` does, fused into this
    pass for the ingest hook). A ``continued`` part (a span the agent cut at a flush)
    is not a span of its own: it adds time but no span count (``fresh`` says which
    items start a span)."""

    def __init__(self, rows: Iterable[tuple], clf: rules_mod.Classifier,
                 counts: Deltas | None = None) -> None:
        classes, app_key = clf.classes, rules_mod.app_key
        keys: dict[tuple, tuple] = {}   # (key, passive key) per (agent, user, app, title)
        items = []
        fresh = []
        append = items.append
        acc = counts.window if counts is not None else None
        for agent, start, dur, app, title, _pid, _exe, excluded, user, continued in rows:
            raw = (agent, user, app, title, excluded)
            both = keys.get(raw)
            if both is None:
                name = app_key(app, excluded)
                own, passive = classes(name, "" if excluded else title)
                key = (agent, user, name, *own)
                both = keys[raw] = (key, key if passive is own else (agent, user, name, *passive))
            key = both[0]
            append((start, start + dur, *both))
            fresh.append(not continued)
            if acc is not None and not continued:
                slot = (start - start % BUCKET_MS, key)
                cur = acc.get(slot)
                if cur is None:
                    acc[slot] = [0, 0, 1, 0]
                else:
                    cur[2] += 1
        self.items = items
        self.fresh = fresh


def add_windows(d: Deltas, windows: _Windows, lo: int = NEVER, hi: int = FOREVER) -> None:
    """Span counts (in the bucket where a span starts, if that is in [lo, hi))."""
    acc = d.window
    for (start, _end, key, _passive), fresh in zip(windows.items, windows.fresh, strict=True):
        if fresh and lo <= start < hi:
            acc[(start - start % BUCKET_MS, key)][2] += 1


def add_activity(d: Deltas, rows: Iterable[tuple], lo: int = NEVER, hi: int = FOREVER) -> None:
    """State time (split at buckets, clipped to [lo, hi)) and input counts (bucket of start)."""
    acc = d.activity
    users: dict[tuple, tuple] = {}
    for agent, start, dur, state, keys, clicks, moves, scrolls, user, *_ in rows:
        key = users.get((agent, user))
        if key is None:
            key = users[(agent, user)] = (agent, user)
        column = _STATE_COLUMN.get(state)
        end = start + dur
        if column is not None:
            s = start if start > lo else lo
            e = end if end < hi else hi
            bucket = s - s % BUCKET_MS
            if e <= bucket + BUCKET_MS:
                if e > s:
                    slot = (bucket, key)
                    cur = acc.get(slot)
                    if cur is None:
                        cur = acc[slot] = [0] * 9
                    cur[column] += e - s
            else:
                _spread(acc, key, column, s, e)
        if (keys or clicks or moves or scrolls) and lo <= start < hi:
            slot = (start - start % BUCKET_MS, key)
            counts = acc.get(slot)
            if counts is None:
                counts = acc[slot] = [0] * 9
            counts[4] += keys
            counts[5] += clicks
            counts[6] += moves
            counts[7] += scrolls


def add_pairs(d: Deltas, windows: _Windows, activity: Iterable[tuple], lo: int = NEVER,
              hi: int = FOREVER) -> None:
    """Overlaps of windows with ACTIVE/IDLE/PASSIVE activity (one agent, ``records``
    layout), clipped to [lo, hi); PASSIVE time under the window's passive key."""
    acts = sorted([(a[1], a[1] + a[2], _PAIRED[a[3]]) for a in activity if a[3] in _PAIRED])
    if not acts:
        return
    # reach[i]: the latest end among acts[:i + 1]. Non-decreasing, so a bisection finds
    # the first span that can still overlap a window: one very long span no longer makes
    # every window walk all the spans since its start.
    reach = list(accumulate((a[1] for a in acts), max))
    n = len(acts)
    acc = d.window
    bisect_right = bisect.bisect_right
    for w_start, w_end, own, passive in windows.items:
        if w_start < lo:
            w_start = lo
        if w_end > hi:
            w_end = hi
        i = bisect_right(reach, w_start)
        while i < n:
            a_start, a_end, column = acts[i]
            if a_start >= w_end:
                break
            i += 1
            key = passive if column == _PASSIVE_COLUMN else own
            s = w_start if w_start > a_start else a_start
            e = w_end if w_end < a_end else a_end
            if e > s:
                bucket = s - s % BUCKET_MS
                if e <= bucket + BUCKET_MS:
                    slot = (bucket, key)
                    cur = acc.get(slot)
                    if cur is None:
                        cur = acc[slot] = [0, 0, 0, 0]
                    cur[column] += e - s
                else:
                    _spread(acc, key, column, s, e)


def add_process_totals(d: Deltas, totals: Iterable[tuple]) -> None:
    """Per-bucket totals as ``blocks.totals`` made them."""
    process = d.process
    for agent, bucket, name, cpu_seconds, rss, samples in totals:
        key = (agent, bucket, name)
        cur = process.get(key)
        if cur is None:
            process[key] = [cpu_seconds, rss, samples]
        else:
            cur[0] += cpu_seconds
            if rss > cur[1]:
                cur[1] = rss
            cur[2] += samples


# -- writing contributions --------------------------------------------------------------------

def _upsert_sql(table: str, width: int, key: str, update: str) -> str:
    """An additive upsert both engines read: an explicit conflict target and the old
    row's columns qualified by the table's name (PostgreSQL requires both)."""
    return (f"INSERT INTO {table} VALUES ({','.join('?' * width)}) ON CONFLICT ({key}) DO "
            "UPDATE SET " + ", ".join(f"{c} = {table}.{c} + excluded.{c}" if "=" not in c
                                      else c for c in update.split(";")))


_UPSERT_WINDOW = _upsert_sql("rollup_window", 10,
                             "agent, bucket, username, app, category, productivity",
                             "active_ms;idle_ms;spans;passive_ms")
_UPSERT_WINDOW_ALL = _upsert_sql("rollup_window_all", 8, "bucket, app, category, productivity",
                                 "active_ms;idle_ms;spans;passive_ms")
_UPSERT_ACTIVITY = _upsert_sql("rollup_activity", 12, "agent, bucket, username",
                               "active_ms;idle_ms;locked_ms;asleep_ms;"
                               "key_presses;clicks;mouse_moves;scrolls;passive_ms")
_UPSERT_PROCESS = _upsert_sql("rollup_process", 6, "agent, bucket, name",
                              "cpu_seconds;samples;peak_rss_bytes = CASE WHEN "
                              "excluded.peak_rss_bytes > rollup_process.peak_rss_bytes THEN "
                              "excluded.peak_rss_bytes ELSE rollup_process.peak_rss_bytes END")
_UPSERT_DROPPED = _upsert_sql("rollup_dropped", 3, "agent, bucket", "dropped_events")
CHUNK_ROWS = 512


@lru_cache(maxsize=64)
def _multi_row(sql: str, rows: int) -> str:
    head, rest = sql.split(" VALUES ", 1)
    one, tail = rest.split(" ON CONFLICT ", 1)
    return f"{head} VALUES {','.join([one] * rows)} ON CONFLICT {tail}"


def upsert(conn: Connection, sql: str, rows: list[tuple], shared: bool = False) -> None:
    """``executemany(sql, rows)`` in few multi-row statements (CHUNK_ROWS rows, the rest
    in power-of-two chunks): far fewer statement steps inside the ingest group commit,
    each of which hands the GIL to the event loop thread and back."""
    if dialect(conn) == POSTGRESQL:
        conn.upsert(sql, rows, shared=shared)   # one statement per table (store.pgsql)
        return
    done, total = 0, len(rows)
    while done < total:
        left = total - done
        size = CHUNK_ROWS if left >= CHUNK_ROWS else 1 << (left.bit_length() - 1)
        conn.execute(_multi_row(sql, size), list(chain.from_iterable(rows[done:done + size])))
        done += size


def flush(conn: Connection, d: Deltas) -> None:
    """Add ``d`` to the rollup tables, each table's rows in key order: collectors that
    share a PostgreSQL then take the row locks of shared rows (``rollup_window_all``)
    in one order and never deadlock."""
    if d.window:
        upsert(conn, _UPSERT_WINDOW, sorted((k[0], b, k[1], k[2], k[3], k[4], *v)
                                            for (b, k), v in d.window.items()))
        fleet: defaultdict = defaultdict(lambda: [0, 0, 0, 0])
        for (bucket, (_agent, _user, app, category, productivity)), v in d.window.items():
            row = fleet[(bucket, app, category, productivity)]
            row[0] += v[0]
            row[1] += v[1]
            row[2] += v[2]
            row[3] += v[3]
        upsert(conn, _UPSERT_WINDOW_ALL, sorted((*k, *v) for k, v in fleet.items()),
               shared=True)
    if d.activity:
        upsert(conn, _UPSERT_ACTIVITY, sorted((k[0], b, k[1], *v)
                                              for (b, k), v in d.activity.items()))
    if d.process:
        upsert(conn, _UPSERT_PROCESS, sorted((*k, *v) for k, v in d.process.items()))
    if d.dropped:
        upsert(conn, _UPSERT_DROPPED, sorted((*k, v) for k, v in d.dropped.items()))


# -- the ingest hook --------------------------------------------------------------------------

def _cursors(conn: Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT name, last_rowid FROM rollup_cursor").fetchall())


def _set_cursor(conn: Connection, name: str, rowid: int) -> None:
    conn.execute("UPDATE rollup_cursor SET last_rowid = ? WHERE name = ?", (rowid, name))


def _by_agent(rows: list[tuple]) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = defaultdict(list)
    for row in rows:
        out[row[0]].append(row)
    return out


# Agents (or agent ranges) per statement in the set-based lookups below; well under
# SQLite's limit on bound variables.
LOOKUP_CHUNK = 300
_UPSERT_LONGEST = ("INSERT INTO rollup_agent (agent, max_window_ms, max_activity_ms, "
                   "max_state_ms, window_end_ms, activity_end_ms) VALUES (?,?,?,?,?,?) "
                   "ON CONFLICT (agent) DO UPDATE SET max_window_ms = excluded.max_window_ms, "
                   "max_activity_ms = excluded.max_activity_ms, max_state_ms = "
                   "excluded.max_state_ms, window_end_ms = excluded.window_end_ms, "
                   "activity_end_ms = excluded.activity_end_ms")


def _chunks(items: list, size: int = LOOKUP_CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass
class _AgentState:
    """An agent's row of ``rollup_agent`` as it was before a group's rows: its longest
    spans [window, ACTIVE/IDLE, any state], where its stored spans end, and whether they
    ever overlapped (bit 1 windows, bit 2 activity; see collector.store.overlaps)."""

    longest: list[int]
    window_end: int = NEVER
    activity_end: int = NEVER
    overlaps: int = 0


def _ends(rows: Iterable[tuple]) -> int:
    return max([r[1] + r[2] for r in rows], default=NEVER)


def _stored_end(conn: Connection, table: str, agent: int, cursor: int,
                longest: int) -> int:
    """Where an agent's spans stored up to rowid ``cursor`` end (stores from before
    rollup_agent kept it): the spans that start within ``longest`` of the last start."""
    last = conn.execute(f"SELECT max(start_ms) FROM {table} WHERE agent = ? AND rowid <= ?",
                        (agent, cursor)).fetchone()[0]
    if last is None:
        return NEVER
    return conn.execute(f"SELECT max(start_ms + duration_ms) FROM {table} WHERE agent = ? "
                        "AND start_ms >= ? AND rowid <= ?",
                        (agent, last - longest, cursor)).fetchone()[0]


def _update_longest(conn: Connection, new_w: dict, new_a: dict,
                    cursors: dict[str, int]) -> dict[int, _AgentState]:
    """Per agent its state before the new rows (``_AgentState``); the stored row is
    raised by the new rows (longest spans, ends).

    One SELECT and at most one upsert per LOOKUP_CHUNK agents, not one per agent: every
    statement the writer thread runs hands the GIL to the event loop thread and must
    win it back, and a group commit holds batches of hundreds of agents."""
    agents = sorted(set(new_w) | set(new_a))
    stored: dict[int, list] = {}
    for chunk in _chunks(agents):
        for agent, *old in conn.execute(
                "SELECT agent, max_window_ms, max_activity_ms, max_state_ms, window_end_ms, "
                "activity_end_ms, \"overlaps\" FROM rollup_agent "
                f"WHERE agent IN ({','.join('?' * len(chunk))})", chunk):
            stored[agent] = old
    states, changed = {}, []
    for agent in agents:
        old = stored.get(agent)
        state = _AgentState([0, 0, 0]) if old is None else _AgentState(
            list(old[:3]), old[3], old[4], old[5])
        if state.window_end is None:
            state.window_end = _stored_end(conn, "window_spans", agent,
                                           cursors["window_spans"], state.longest[0])
        if state.activity_end is None:
            state.activity_end = _stored_end(conn, "activity_spans", agent,
                                             cursors["activity_spans"], state.longest[2])
        windows, acts = new_w.get(agent, ()), new_a.get(agent, ())
        cur = [max([state.longest[0], *[w[2] for w in windows]]),
               max([state.longest[1], *[a[2] for a in acts if a[3] in _PAIRED]]),
               max([state.longest[2], *[a[2] for a in acts]])]
        ends = [max(state.window_end, _ends(windows)), max(state.activity_end, _ends(acts))]
        if old is None or cur != list(old[:3]) or ends != list(old[3:5]):
            changed.append((agent, *cur, *ends))
        states[agent] = state
    if changed:
        upsert(conn, _UPSERT_LONGEST, changed)
    return states


def _stored_overlaps(conn: Connection, table: str, columns: str,
                     ranges: list[tuple[int, int, int]], cursor: int,
                     where: str = "") -> dict[int, list[tuple]]:
    """Rows of ``table`` at or below rowid ``cursor`` whose start lies in [lo, hi) of
    their agent's (agent, lo, hi) range, by agent: a few statements per group (see
    _update_longest), each walking the (agent, start) index once per range."""
    out: dict[int, list[tuple]] = defaultdict(list)
    picked = ", ".join(f"t.{c.strip()}" for c in columns.split(","))
    if dialect(conn) == POSTGRESQL:   # no cursors there (see ingest_group): one plan
        sql = (f"SELECT {picked} FROM unnest(?::bigint[], ?::bigint[], ?::bigint[]) "
               f"AS q(agent, lo, hi) JOIN {table} t ON t.agent = q.agent "
               f"AND t.start_ms >= q.lo AND t.start_ms < q.hi{where}")
        for row in conn.execute(sql, [list(c) for c in zip(*ranges, strict=True)]):
            out[row[0]].append(row)
        return out
    for chunk in _chunks(ranges):
        sql = (f"WITH q(agent, lo, hi) AS (VALUES {','.join(['(?,?,?)'] * len(chunk))}) "
               f"SELECT {picked} FROM q JOIN {table} t ON t.agent = q.agent "
               f"AND t.start_ms >= q.lo AND t.start_ms < q.hi WHERE t.rowid <= ?{where}")
        for row in conn.execute(sql, [*chain.from_iterable(chunk), cursor]):
            out[row[0]].append(row)
    return out


def _may_overlap(rows: list[tuple] | None, stored_end: int) -> bool:
    """Could these new spans (one agent's, one kind) overlap each other or the agent's
    stored ones? Not when they start after the stored ones end and follow each other
    (an agent's spans arrive in time order: the common case costs one pass)."""
    if not rows:
        return False
    end = stored_end
    for row in rows:
        if row[1] < end:
            return True
        if row[1] + row[2] > end:
            end = row[1] + row[2]
    return False


def _timed(rows: list[tuple]) -> list[tuple]:
    return [r for r in rows if r[3] in _PAIRED]


def _roll_up_first_wins(conn: Connection, clf: rules_mod.Classifier,
                        cursors: dict[str, int], d: Deltas, states: dict[int, _AgentState],
                        new: dict[int, tuple[list[tuple], list[tuple]]]) -> None:
    """Contributions of agents whose new spans may overlap (each other or what is
    stored), or whose stored spans did: each instant counts once, for the span stored
    first (collector.store.overlaps). The stored spans near the new ones are read back with
    their rowids; the pieces of new and stored spans then pair as in ``roll_up``."""
    ranges = []
    for agent, (windows, acts) in new.items():
        rows = windows + acts
        ranges.append((agent, min([r[1] for r in rows]) - max(states[agent].longest),
                       max([r[1] + r[2] for r in rows])))
    stored = {}
    for table, columns in (("window_spans", WINDOW_COLUMNS), ("activity_spans",
                                                              ACTIVITY_COLUMNS)):
        found = _stored_overlaps(conn, table, columns + ", rowid", ranges, cursors[table]) \
            if cursors[table] else {}
        stored[table] = {agent: [r[:-1] for r in sorted(rows, key=lambda r: r[-1])]
                         for agent, rows in found.items()}
    flags = []
    for agent, (windows, acts) in new.items():
        covered_w, covered_a = overlaps.Covered(), overlaps.Covered()
        old_w, _ = overlaps.window_pieces(stored["window_spans"].get(agent, []), covered_w)
        old_a, _ = overlaps.activity_pieces(stored["activity_spans"].get(agent, []),
                                            covered_a)
        new_w, cut_w = overlaps.window_pieces(windows, covered_w)
        new_a, cut_a = overlaps.activity_pieces(acts, covered_a)
        _Windows(windows, clf, counts=d)   # span counts: the rows as stored
        add_activity(d, new_a)
        add_pairs(d, _Windows(new_w, clf), _timed(old_a) + _timed(new_a))
        add_pairs(d, _Windows(old_w, clf), _timed(new_a))
        cut = (1 if cut_w else 0) | (2 if cut_a else 0)
        if cut & ~states[agent].overlaps:
            flags.append((cut, agent))
    if flags:
        conn.executemany('UPDATE rollup_agent SET "overlaps" = "overlaps" | ? WHERE agent = ?',
                         flags)


def roll_up(conn: Connection, clf: rules_mod.Classifier, cursors: dict[str, int],
            w_by_agent: dict[int, list[tuple]], a_by_agent: dict[int, list[tuple]],
            process_totals: list[tuple]) -> Deltas:
    """Contributions of raw rows just stored (``records`` layout, windows and activity
    by agent; processes as per-bucket totals) that are not yet rolled up, given the
    cursors that were current before them: new windows pair with all activity, new
    activity with the windows stored before (at or below the cursor)."""
    d = Deltas()
    states = _update_longest(conn, w_by_agent, a_by_agent, cursors)
    longest = {agent: state.longest for agent, state in states.items()}
    clipped = [agent for agent, state in states.items() if state.overlaps
               or _may_overlap(w_by_agent.get(agent), state.window_end)
               or _may_overlap(a_by_agent.get(agent), state.activity_end)]
    if clipped:
        _roll_up_first_wins(conn, clf, cursors, d, states, {
            agent: (w_by_agent.pop(agent, []), a_by_agent.pop(agent, [])) for agent in clipped})
    old_acts, old_windows = cursors["activity_spans"], cursors["window_spans"]
    stored_acts: dict[int, list[tuple]] = {}
    if old_acts and w_by_agent:
        stored_acts = _stored_overlaps(conn, "activity_spans", ACTIVITY_COLUMNS, [
            (agent, min([r[1] for r in rows]) - longest[agent][1],
             max([r[1] + r[2] for r in rows])) for agent, rows in w_by_agent.items()],
            old_acts, f" AND t.state IN {PAIRED_STATES}")
    for agent, rows in w_by_agent.items():
        windows = _Windows(rows, clf, counts=d)
        acts = a_by_agent.get(agent, [])   # new activity is in memory already
        old = stored_acts.get(agent)
        add_pairs(d, windows, acts + old if old else acts)
    timed_by_agent = {}
    for agent, rows in a_by_agent.items():
        add_activity(d, rows)
        timed = [r for r in rows if r[3] in _PAIRED]
        if timed and old_windows:
            timed_by_agent[agent] = timed
    if timed_by_agent:
        stored_windows = _stored_overlaps(conn, "window_spans", WINDOW_COLUMNS, [
            (agent, min([r[1] for r in timed]) - longest[agent][0],
             max([r[1] + r[2] for r in timed])) for agent, timed in timed_by_agent.items()],
            old_windows)
        for agent, old in stored_windows.items():
            add_pairs(d, _Windows(old, clf), timed_by_agent[agent])
    add_process_totals(d, process_totals)
    return d


def catch_up(conn: Connection, clf: rules_mod.Classifier | None = None) -> int:
    """Roll up every raw row stored since the cursors (read back from the database);
    return how many rows that was. Nothing on PostgreSQL: it keeps no cursors, every
    writer there rolls up what it stores in the same transaction."""
    if dialect(conn) == POSTGRESQL:
        return 0
    clf = clf or rules_mod.classifier(conn)
    cur = _cursors(conn)
    new, tops = {}, {}
    for table, columns in zip(_RAW_TABLES, (WINDOW_COLUMNS, ACTIVITY_COLUMNS, "agent, data"),
                              strict=True):
        rows = conn.execute(f"SELECT rowid, {columns} FROM {table} WHERE rowid > ?",
                            (cur[table],)).fetchall()
        if rows:
            tops[table] = max(r[0] for r in rows)
        new[table] = [r[1:] for r in rows]
    if not tops:
        return 0
    totals, samples = [], 0
    for agent, data in new.pop("process_blocks"):   # a block is one agent's
        rows = blocks.unpack(agent, data)
        totals += blocks.totals(agent, rows)
        samples += len(rows)
    flush(conn, roll_up(conn, clf, cur, _by_agent(new["window_spans"]),
                        _by_agent(new["activity_spans"]), totals))
    for table, top in tops.items():
        _set_cursor(conn, table, top)
    return sum(map(len, new.values())) + samples


def _stored_rows(conn: Connection, cur: dict[str, int],
                 counts: dict[str, int]) -> dict[str, int] | None:
    """The new top rowid of each raw table if the rows above the cursors are exactly the
    ``counts`` rows just inserted (rowids of new rows exceed every older one), else None:
    something was stored without the hook, and ``catch_up`` must read it all back."""
    tops = {}
    for table in _RAW_TABLES:
        top = conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
        if top - cur[table] != counts[table]:
            return None
        tops[table] = top
    return tops


def ingest_group(conn: Connection, group: list[Any], clf: rules_mod.Classifier) -> None:
    """Roll up one group commit's new batches (``collector.store.StoredBatch``: key,
    batch, records, received_ms) from the rows in memory, after their insertion."""
    windows: dict[int, list[tuple]] = defaultdict(list)
    activity: dict[int, list[tuple]] = defaultdict(list)
    totals: list[tuple] = []
    process_blocks = 0
    for item in group:   # each batch holds one agent's rows
        records = item.records
        if records.windows:
            windows[item.key] += records.windows
        if records.activity:
            activity[item.key] += records.activity
        totals += records.process_totals
        process_blocks += len(records.process_blocks)
    if dialect(conn) == POSTGRESQL:
        # The PostgreSQL store calls this before it inserts the group's rows, with the
        # group's agents locked: every stored row is "stored before" (no cursors).
        d = roll_up(conn, clf, _ALL_STORED, windows, activity, totals)
        _add_dropped(d, group)
        flush(conn, d)
        return
    cur = _cursors(conn)
    tops = _stored_rows(conn, cur, {"window_spans": sum(map(len, windows.values())),
                                    "activity_spans": sum(map(len, activity.values())),
                                    "process_blocks": process_blocks})
    if tops is None:
        catch_up(conn, clf)
    else:
        d = roll_up(conn, clf, cur, windows, activity, totals)
        _add_dropped(d, group)
        flush(conn, d)
        for table, top in tops.items():
            if top != cur[table]:
                _set_cursor(conn, table, top)
        return
    for item in group:
        if item.batch.dropped_events:
            conn.execute(_UPSERT_DROPPED, (item.key, bucket_of(item.received_ms),
                                           item.batch.dropped_events))


def _add_dropped(d: Deltas, group: list[Any]) -> None:
    for item in group:
        if item.batch.dropped_events:
            d.dropped[(item.key, bucket_of(item.received_ms))] += item.batch.dropped_events


def install(store: Any) -> None:
    """Register the group hook that keeps rollups current with every stored batch, in
    the same transaction as the raw rows (a partial, so that it pickles for the
    store's writer process)."""
    store.add_group_hook(functools.partial(group_hook, str(store.path)))


def group_hook(db_key: str, conn: Connection, group: list[Any]) -> None:
    ingest_group(conn, group, rules_mod.classifier(conn, db_key))


# -- rebuild ----------------------------------------------------------------------------------

def hold_ingest(conn: Connection) -> None:
    """Make every agent's ingest wait until the caller's transaction ends (a rebuild,
    a rules change): on SQLite the single writer does that by itself. On PostgreSQL
    the maintenance lock comes first (one rebuild, rules change or purge at a time,
    on any collector), then the agents' ingest locks, so that no collector's rollup
    upserts, nor its reading of the rules, fall between this transaction's reads
    and writes."""
    if dialect(conn) == POSTGRESQL:
        locks.take(conn, locks.MAINTENANCE)
        locks.take_agents(conn, [key for (key,) in conn.execute("SELECT id FROM agents")])


ALL_PARTS = frozenset({"window", "activity", "process", "dropped"})
_PART_TABLES = {"window": ("rollup_window", "rollup_window_all"), "activity": ("rollup_activity",),
                "process": ("rollup_process",), "dropped": ("rollup_dropped",)}


def _agent_extent(conn: Connection, agent: int) -> tuple[int, int] | None:
    lows, highs = [], []
    # a block's samples may lie anywhere in its bucket; min() and max() of a bare indexed
    # column are one index seek each (max(bucket + n) would scan the agent's entries)
    for table, column, end in (("window_spans", "start_ms", ""),
                               ("activity_spans", "start_ms", ""),
                               ("process_blocks", "bucket", f" + {BUCKET_MS - 1}")):
        lo = conn.execute(f"SELECT min({column}) FROM {table} WHERE agent = ?",
                          (agent,)).fetchone()[0]
        if lo is not None:
            lows.append(lo)
            highs.append(conn.execute(f"SELECT max({column}){end} FROM {table} WHERE agent = ?",
                                      (agent,)).fetchone()[0])
    if not lows:
        return None
    return lows[0] if len(lows) == 1 else min(lows), max(highs)


class RowProgress(Protocol):
    """What a long rebuild reports to (worklens.collector.cli.progress.Progress)."""

    enabled: bool

    def set_total(self, total: int) -> None: ...

    def add(self, rows: int, detail: str = "") -> None: ...


# the raw rows a rebuild reads, by part: (table, time column)
_RAW_ROWS = {"window": ("window_spans", "start_ms"), "activity": ("activity_spans", "start_ms"),
             "process": ("process_blocks", "bucket")}


def _raw_rows(conn: Connection, lo: int, hi: int, parts: frozenset) -> int:
    """How many raw rows a rebuild of [lo, hi) reads: the progress line's total
    (counted only when that line is shown)."""
    return sum(conn.execute(f"SELECT count(*) FROM {table} WHERE {column} >= ? AND "
                            f"{column} < ?", (lo, hi)).fetchone()[0]
               for part, (table, column) in _RAW_ROWS.items() if part in parts)


def _rebuild_chunk(conn: Connection, agent: int, lo: int, hi: int,
                   longest: tuple[int, int, int], parts: frozenset, clf) -> tuple[Deltas, int]:
    """The chunk's rollups, and how many raw rows it read (for progress)."""
    d, read = Deltas(), 0
    if "window" in parts:
        rows = conn.execute(
            f"SELECT {WINDOW_COLUMNS} FROM window_spans WHERE agent = ? AND start_ms >= ? "
            "AND start_ms < ?", (agent, lo - longest[0], hi)).fetchall()
        read += len(rows)
        windows = _Windows(rows, clf)
        add_windows(d, windows, lo, hi)
        if windows.items:
            first = min(w[0] for w in windows.items)
            last = max(w[1] for w in windows.items)
            acts = conn.execute(
                f"SELECT {ACTIVITY_COLUMNS} FROM activity_spans WHERE agent = ? AND "
                f"start_ms >= ? AND start_ms < ? AND state IN {PAIRED_STATES}",
                (agent, max(lo, first) - longest[1], min(hi, last))).fetchall()
            add_pairs(d, windows, acts, lo, hi)
    if "activity" in parts:
        rows = conn.execute(
            f"SELECT {ACTIVITY_COLUMNS} FROM activity_spans WHERE agent = ? AND start_ms >= ? "
            "AND start_ms < ?", (agent, lo - longest[2], hi)).fetchall()
        read += len(rows)
        add_activity(d, rows, lo, hi)
    if "process" in parts:
        for samples in blocks.read(conn, agent, lo, hi):
            read += 1
            add_process_totals(d, blocks.totals(agent, samples))
    return d, read


def _rebuild_first_wins(conn: Connection, agent: int, lo: int, hi: int,
                        longest: tuple[int, int, int], parts: frozenset, clf
                        ) -> tuple[Deltas, int]:
    """``_rebuild_chunk`` for an agent whose spans overlapped: every span that can reach
    into [lo, hi) is read with its rowid and cut to the time no span stored before it
    covers, as ingest did (``_roll_up_first_wins``)."""
    d = Deltas()
    reach = lo - max(longest)
    rows = {}
    for table, columns in (("window_spans", WINDOW_COLUMNS), ("activity_spans",
                                                              ACTIVITY_COLUMNS)):
        found = conn.execute(f"SELECT {columns}, rowid FROM {table} WHERE agent = ? AND "
                             "start_ms >= ? AND start_ms < ? ORDER BY rowid",
                             (agent, reach, hi)).fetchall()
        rows[table] = [r[:-1] for r in found]
    read = len(rows["window_spans"]) + len(rows["activity_spans"])
    windows, _ = overlaps.window_pieces(rows["window_spans"], overlaps.Covered())
    acts, _ = overlaps.activity_pieces(rows["activity_spans"], overlaps.Covered())
    if "window" in parts:
        add_windows(d, _Windows(rows["window_spans"], clf), lo, hi)
        add_pairs(d, _Windows(windows, clf), _timed(acts), lo, hi)
    if "activity" in parts:
        add_activity(d, acts, lo, hi)
    if "process" in parts:
        for samples in blocks.read(conn, agent, lo, hi):
            read += 1
            add_process_totals(d, blocks.totals(agent, samples))
    return d, read


def recompute(conn: Connection, agent: int, lo: int, hi: int, parts: frozenset,
              clf: rules_mod.Classifier) -> Iterator[tuple[Deltas, int]]:
    """One agent's rollups of the buckets in [lo, hi) computed afresh from its raw rows,
    a chunk (REBUILD_CHUNK_MS) at a time, each with how many raw rows it read. A rebuild
    writes them; the rules preview (reports.rules_preview) counts them under candidate
    rules without writing anything, so that it predicts what a rebuild would keep."""
    row = conn.execute("SELECT max_window_ms, max_activity_ms, max_state_ms, \"overlaps\" "
                       "FROM rollup_agent WHERE agent = ?", (agent,)).fetchone()
    extent = _agent_extent(conn, agent)
    if extent is None:
        return
    longest = tuple(row[:3]) if row else (0, 0, 0)
    chunk = _rebuild_first_wins if row and row[3] else _rebuild_chunk
    start = max(lo, floor_bucket(extent[0]))
    stop = min(hi, ceil_bucket(extent[1] + max(longest) + 1))
    while start < stop:
        end = min(stop, start + REBUILD_CHUNK_MS)
        yield chunk(conn, agent, start, end, longest, parts, clf)
        start = end


def rebuild_in(conn: Connection, from_ms: int | None = None, to_ms: int | None = None,
               parts: frozenset = ALL_PARTS, clf: rules_mod.Classifier | None = None,
               progress: RowProgress | None = None) -> int:
    """Recompute the rollup buckets covering [from_ms, to_ms) from raw records, inside
    the caller's write transaction; return the number of buckets' worth of agents done.
    ``progress`` hears of the raw rows read (a rebuild of months takes minutes)."""
    hold_ingest(conn)
    clf = clf or rules_mod.classifier(conn)
    catch_up(conn, clf)   # nothing pending, or the hook would count it twice later
    lo = NEVER if from_ms is None else floor_bucket(from_ms)
    hi = FOREVER if to_ms is None else ceil_bucket(to_ms)
    for part in parts:
        for table in _PART_TABLES[part]:
            conn.execute(f"DELETE FROM {table} WHERE bucket >= ? AND bucket < ?", (lo, hi))
    if progress is not None and progress.enabled:
        progress.set_total(_raw_rows(conn, lo, hi, parts))
        progress.add(0)
    agents = [r[0] for r in conn.execute("SELECT id FROM agents ORDER BY id")]
    for agent in agents:
        for deltas, read in recompute(conn, agent, lo, hi, parts, clf):
            flush(conn, deltas)
            if progress is not None:
                progress.add(read)
    if "dropped" in parts:
        d = Deltas()
        for agent, received, dropped in conn.execute(
                "SELECT agent, received_ms, dropped_events FROM batches WHERE dropped_events > 0 "
                "AND received_ms >= ? AND received_ms < ?", (lo, hi)):
            d.dropped[(agent, bucket_of(received))] += dropped
        flush(conn, d)
    return len(agents)


def rebuild(store: Any, from_ms: int | None = None, to_ms: int | None = None,
            progress: RowProgress | None = None) -> int:
    """Recompute all rollups touching [from_ms, to_ms) (default: all time) in one
    write transaction; returns the number of agents scanned."""
    return store.write(lambda conn: rebuild_in(conn, from_ms, to_ms, progress=progress))


# -- rules changes ----------------------------------------------------------------------------

def reapply_rules(conn: Connection, old: rules_mod.Classifier,
                  new: rules_mod.Classifier, progress: RowProgress | None = None) -> None:
    """Re-categorise the window rollups after a rules change.

    When neither the old nor the new rules look at titles or classify passive time
    apart, a category is a function of the app: the rollup rows are relabelled in
    place from the (small) list of distinct apps. Otherwise titles decide, or a row's
    passive time must move to another row, and the window rollups are recomputed from
    the raw spans, classifying each distinct (app, title) pair once.
    """
    catch_up(conn, new)
    if old.uses_titles or new.uses_titles or old.splits_passive or new.splits_passive:
        started = time.monotonic()
        rebuild_in(conn, parts=frozenset({"window"}), clf=new, progress=progress)
        log.info("rules changed: window rollups recomputed in %.1fs",
                 time.monotonic() - started)
        return
    apps = [r[0] for r in conn.execute("SELECT DISTINCT app FROM rollup_window_all")]
    changes = [(app, *new.classify(app, "")) for app in apps
               if new.classify(app, "") != old.classify(app, "")]
    if not changes:
        return
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS rule_remap (app TEXT PRIMARY KEY, "
                 "category TEXT, productivity TEXT)")
    # unqualified: both engines look in the connection's temporary tables first
    conn.execute("DELETE FROM rule_remap")
    conn.executemany("INSERT INTO rule_remap VALUES (?, ?, ?)", changes)
    for table in ("rollup_window", "rollup_window_all"):
        conn.execute(f"UPDATE {table} SET (category, productivity) = (SELECT category, "
                     f"productivity FROM rule_remap r WHERE r.app = {table}.app) "
                     "WHERE app IN (SELECT app FROM rule_remap)")
    conn.execute("DELETE FROM rule_remap")


def set_rules(store: Any, rules: list[rules_mod.Rule] | list[dict],
              progress: RowProgress | None = None) -> list[rules_mod.Rule]:
    """Replace the rules and re-categorise all history in one transaction."""
    checked = rules_mod.validate([r.to_dict() if isinstance(r, rules_mod.Rule) else r
                                  for r in rules])

    def replace(conn: Connection) -> None:
        hold_ingest(conn)
        old = rules_mod.Classifier(rules_mod.read_rules(conn))
        conn.execute("DELETE FROM rules")
        conn.executemany("INSERT INTO rules (position, app, title, category, productivity, "
                         "passive, passive_category) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [(i, r.app, r.title, r.category, r.productivity, r.passive,
                           r.passive_category) for i, r in enumerate(checked)])
        conn.execute("UPDATE rules_version SET version = version + 1 WHERE id = 1")
        reapply_rules(conn, old, rules_mod.classifier(conn), progress)

    store.write(replace)
    return checked
