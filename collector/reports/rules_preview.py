"""What a candidate rule set would do to history before it is saved: for each
rule, how much window time it would match and how much of that changes
category or class, plus what stays unclassified (the dashboard's rules editor).

Why two paths: when neither the saved nor the candidate rules look at titles,
the fleet rollups (app x 15-minute bucket, already classified with the saved
rules) answer any range in milliseconds. Title rules need the titles, which only
the raw spans keep: then at most ``RAW_DAYS`` days (the end of the range) are
read, agent by agent through the (agent, start) index, and the answer says so.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta, tzinfo
from typing import Any

from worklens.collector.reports.summary import day_range_ms
from worklens.collector.rollup.rules import (
    UNCLASSIFIED,
    UNCLASSIFIED_CATEGORY,
    Classifier,
    Rule,
    app_key,
    read_rules,
    validate,
)

RAW_DAYS = 7


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


def _window_time(conn, first: date, last: date, tz: tzinfo, uses_titles: bool
                 ) -> tuple[dict[tuple[str, str], float], date]:
    """(app, title) -> window milliseconds over the range (title "" from rollups)."""
    if not uses_titles:
        start, end = day_range_ms(first, last, tz)
        rows = conn.execute("SELECT app, sum(active_ms + idle_ms) FROM rollup_window_all "
                            "WHERE bucket >= ? AND bucket < ? GROUP BY app", (start, end))
        return {(app, ""): ms for app, ms in rows}, first
    first = max(first, last - timedelta(days=RAW_DAYS - 1))
    start, end = day_range_ms(first, last, tz)
    out: dict[tuple[str, str], float] = defaultdict(float)
    for (key,) in conn.execute("SELECT id FROM agents").fetchall():
        for app, title, excluded, ms in conn.execute(
                "SELECT app, title, excluded, sum(duration_ms) FROM window_spans WHERE agent = ? "
                "AND start_ms >= ? AND start_ms < ? GROUP BY app, title, excluded",
                (key, start, end)):
            out[(app_key(app, excluded), "" if excluded else title)] += ms
    return out, first


def preview(store: Any, raw_rules: Any, first: date, last: date, tz: tzinfo) -> dict[str, Any]:
    """Per candidate rule: seconds matched and seconds whose (category, class) would
    change against the saved rules; RuleError (a 400) for a bad rule."""
    rules = validate(raw_rules)
    with store.reader() as conn:
        saved = Classifier(read_rules(conn))
        uses_titles = saved.uses_titles or any(r.title for r in rules)
        times, first = _window_time(conn, first, last, tz, uses_titles)
    matcher = _Matcher(rules)
    per_rule = [[0.0, 0.0] for _ in rules]
    total = changed = unclassified = 0.0
    for (app, title), ms in times.items():
        i = matcher.index(app, title)
        now = saved.classify(app, title)
        new = (UNCLASSIFIED_CATEGORY, UNCLASSIFIED) if i is None else (
            rules[i].category, rules[i].productivity)
        total += ms
        if i is None:
            unclassified += ms
        else:
            per_rule[i][0] += ms
        if new != now:
            changed += ms
            if i is not None:
                per_rule[i][1] += ms
    return {"from": first.isoformat(), "to": last.isoformat(), "tz": str(tz),
            "source": "raw spans (titles)" if uses_titles else "rollups",
            "total_seconds": total / 1000, "changed_seconds": changed / 1000,
            "unclassified_seconds": unclassified / 1000,
            "rules": [{**r.to_dict(), "seconds": m / 1000, "changed_seconds": c / 1000}
                      for r, (m, c) in zip(rules, per_rule, strict=True)]}
