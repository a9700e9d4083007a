"""What a candidate rule set would do to history before it is saved: for each
rule, how much window time it would match and how much of that changes
category or class, what stays unclassified, and the productivity classes a
summary of the range would show after saving (the dashboard's rules editor).

Window time is active, idle and passive time, as the rollups count it. Passive
time takes the class of the rule's ``passive``/``passive_category`` when it
sets them (rules.Rule.classes), so a candidate rule that only moves a call's
passive time to "Meetings" shows that time as changed.

Why two paths: when the candidate rules do not look at titles, the fleet
rollups (app x 15-minute bucket, already classified with the saved rules: a
row's category is what a summary shows now) answer any range in milliseconds,
each row's time then moving by its app alone. Title rules need the titles,
which only the raw spans keep: then at most ``RAW_DAYS`` days (the end of the
range) are recomputed agent by agent with the rollups' own code
(rollup.buckets.recompute: the same pairing of window and activity spans,
PASSIVE ones included, as at ingest), keyed by title instead of category, and
the answer says so. Either way the predicted classes are what a summary of
the range would show after saving the rules.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta, tzinfo
from typing import Any

from worklens.collector.reports.summary import CLASSES, day_range_ms
from worklens.collector.rollup import buckets
from worklens.collector.rollup.rules import (
    UNCLASSIFIED,
    UNCLASSIFIED_CATEGORY,
    Class,
    Classifier,
    Rule,
    read_rules,
    validate,
)
from worklens.collector.store import Connection

RAW_DAYS = 7
_UNMATCHED: tuple[Class, Class] = ((UNCLASSIFIED_CATEGORY, UNCLASSIFIED),) * 2
_WINDOWS = frozenset({"window"})


@dataclass(frozen=True)
class WindowTime:
    """Window time of one (app, title) whose active/idle and passive time are now
    classified as ``now`` (own, passive); title "" when read from the rollups."""

    app: str
    title: str
    now: tuple[Class, Class]
    active_ms: int
    idle_ms: int
    passive_ms: int


@dataclass
class _Matcher:
    """Index of the first matching rule (None: unclassified), memoised."""

    rules: list[Rule]

    def __post_init__(self) -> None:
        self._compiled = [(re.compile(r.app, re.IGNORECASE) if r.app else None,
                           re.compile(r.title, re.IGNORECASE) if r.title else None)
                          for r in self.rules]
        self._memo: dict[tuple[str, str], int | None] = {}

    def index(self, app: str, title: str) -> int | None:
        key = (app, title)
        if key not in self._memo:
            self._memo[key] = next((i for i, (a, t) in enumerate(self._compiled)
                                    if (a is None or a.search(app))
                                    and (t is None or t.search(title))), None)
        return self._memo[key]


class _ByTitle(Classifier):
    """A "classifier" that files each window under its title: the rollups' code then
    adds up window time per (app, title) (rollup keys ``(agent, user, app, title, "")``)
    and the preview classifies each pair twice, with the saved and the candidate rules."""

    def __init__(self) -> None:
        super().__init__([])

    def classes(self, app: str, title: str) -> tuple[Class, Class]:
        key = (title, "")
        return key, key


def _from_rollups(conn: Connection, start: int, end: int) -> Iterator[WindowTime]:
    rows = conn.execute(
        "SELECT app, category, productivity, sum(active_ms), sum(idle_ms), sum(passive_ms) "
        "FROM rollup_window_all WHERE bucket >= ? AND bucket < ? "
        "GROUP BY app, category, productivity", (start, end))
    for app, category, productivity, active, idle, passive in rows:
        now = (category, productivity)
        yield WindowTime(app, "", (now, now), active, idle, passive)


def _from_raw_spans(conn: Connection, start: int, end: int) -> Iterator[WindowTime]:
    """Window time per (app, title) recomputed from the raw spans, agent by agent,
    classified now by the saved rules (what the rollups hold)."""
    saved = Classifier(read_rules(conn))
    by_title, times = _ByTitle(), defaultdict(lambda: [0, 0, 0])
    for (agent,) in conn.execute("SELECT id FROM agents ORDER BY id").fetchall():
        for deltas, _read in buckets.recompute(conn, agent, start, end, _WINDOWS, by_title):
            for (_bucket, (_agent, _user, app, title, _)), ms in deltas.window.items():
                acc = times[(app, title)]
                acc[0] += ms[0]
                acc[1] += ms[1]
                acc[2] += ms[3]
    for (app, title), (active, idle, passive) in times.items():
        yield WindowTime(app, title, saved.classes(app, title), active, idle, passive)


_PER_RULE = ("seconds", "changed_seconds", "passive_seconds", "passive_changed_seconds")


@dataclass
class _Tally:
    """The preview's sums, in milliseconds (per rule under the answer's names)."""

    rules: list[Rule]
    per_rule: list[dict[str, float]] = field(init=False)
    total: float = 0.0
    changed: float = 0.0
    unclassified: float = 0.0
    passive: float = 0.0
    now: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0.0))
    after: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0.0))

    def __post_init__(self) -> None:
        self.per_rule = [dict.fromkeys(_PER_RULE, 0.0) for _ in self.rules]
        self._matcher = _Matcher(self.rules)
        self._classes = [r.classes() for r in self.rules]

    def add(self, t: WindowTime) -> None:
        i = self._matcher.index(t.app, t.title)
        new = _UNMATCHED if i is None else self._classes[i]
        own = t.active_ms + t.idle_ms
        window = own + t.passive_ms
        own_moves, passive_moves = new[0] != t.now[0], new[1] != t.now[1]
        changed = (own if own_moves else 0) + (t.passive_ms if passive_moves else 0)
        self.total += window
        self.changed += changed
        self.passive += t.passive_ms
        for classes, side in ((t.now, self.now), (new, self.after)):
            side[classes[0][1]] += t.active_ms      # classes count active + passive time
            side[classes[1][1]] += t.passive_ms
        if i is None:
            self.unclassified += window
            return
        count = self.per_rule[i]
        count["seconds"] += window
        count["changed_seconds"] += changed
        count["passive_seconds"] += t.passive_ms
        count["passive_changed_seconds"] += t.passive_ms if passive_moves else 0

    def to_dict(self) -> dict[str, Any]:
        return {"total_seconds": self.total / 1000, "changed_seconds": self.changed / 1000,
                "unclassified_seconds": self.unclassified / 1000,
                "passive_seconds": self.passive / 1000,
                "current": {f"{c}_seconds": ms / 1000 for c, ms in self.now.items()},
                "predicted": {f"{c}_seconds": ms / 1000 for c, ms in self.after.items()},
                "rules": [{**r.to_dict(), **{k: ms / 1000 for k, ms in c.items()}}
                          for r, c in zip(self.rules, self.per_rule, strict=True)]}


def preview(store: Any, raw_rules: Any, first: date, last: date, tz: tzinfo) -> dict[str, Any]:
    """Per candidate rule: seconds of window time matched (active, idle and passive) and
    seconds whose (category, class) would change against the saved rules, passive time
    by the rule's passive class; the classes before and after (as a summary of the
    range counts them: active + passive time). RuleError (a 400) for a bad rule."""
    rules = validate(raw_rules)
    uses_titles = any(r.title for r in rules)
    if uses_titles:
        first = max(first, last - timedelta(days=RAW_DAYS - 1))
    start, end = day_range_ms(first, last, tz)
    tally = _Tally(rules)
    with store.reader() as conn:
        for times in (_from_raw_spans if uses_titles else _from_rollups)(conn, start, end):
            tally.add(times)
    return {"from": first.isoformat(), "to": last.isoformat(), "tz": str(tz),
            "source": "raw spans (titles)" if uses_titles else "rollups", **tally.to_dict()}
