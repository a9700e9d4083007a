"""The employee's privacy controls (SPEC "Privacy controls"), enforced on the
agent before anything leaves the sensor layer:

- ``capture_titles = false``: window titles are blanked.
- ``redact_titles``: each regular expression's matches in a title are replaced
  by ``[redacted]`` (use ``(?i)`` for case-insensitive patterns). Spans merge
  on the redacted title, so changes inside a redacted part are invisible.
- ``exclude_apps``: names (case-insensitive; ``*``/``?`` globs allowed) matched
  against the app name, its executable's file name (with or without ``.exe``)
  or full path, and the window class / bundle id. **An excluded app's time is
  reported as an anonymous span with ``excluded = true`` and blank app, title,
  pid and executable** — so the timeline has no unexplained hole and nothing
  says which app it was — and its processes are left out of process samples.
- ``schedule``: when monitoring happens, e.g. ``"Mon-Fri 08:00-18:00"``;
  outside it nothing is sampled at all (no spans, no input listeners, no
  process samples). Grammar: rules separated by ``;``, each rule a day part
  and/or a time part: days ``Mon-Fri`` or ``Mon,Wed,Fri`` (ranges may wrap:
  ``Fri-Mon``), times ``08:00-12:00,13:00-18:00``; a range whose end is not
  after its start runs overnight into the next day (``Fri 22:00-06:00`` is
  Friday 22:00 to Saturday 06:00); ``24:00`` ends a day; a rule without days
  means every day, without times the whole day. Local time of the machine.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, replace
from datetime import datetime

from worklens.agent.sensors.window._base import WindowInfo
from worklens.common.settings import ConfigError

REDACTED = "[redacted]"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
SCHEDULE_EXPECTED = ('a schedule like "Mon-Fri 08:00-18:00" (days Mon..Sun as ranges or '
                     'comma lists, times HH:MM-HH:MM, several rules separated by ";")')
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Schedule:
    """Monitoring windows as [start, end) minute-of-week intervals (Monday 00:00 = 0)."""

    intervals: tuple[tuple[int, int], ...] = ()   # empty: always

    @property
    def always(self) -> bool:
        return not self.intervals

    def contains(self, when: datetime) -> bool:
        if self.always:
            return True
        minute = when.weekday() * MINUTES_PER_DAY + when.hour * 60 + when.minute \
            + when.second / 60
        for start, end in self.intervals:
            if start <= minute < end or start <= minute + MINUTES_PER_WEEK < end:
                return True
        return False


def parse_schedule(text: str) -> Schedule:
    """Parse the ``[privacy] schedule`` grammar; ValueError says what is wrong."""
    intervals: list[tuple[int, int]] = []
    for rule in filter(None, (part.strip() for part in (text or "").split(";"))):
        intervals.extend(_parse_rule(rule))
    if (text or "").strip() and not intervals:
        raise ValueError("no monitoring time in the schedule")
    return Schedule(tuple(intervals))


def _parse_rule(rule: str) -> list[tuple[int, int]]:
    day_tokens = [t for t in rule.split() if ":" not in t]
    time_tokens = [t for t in rule.split() if ":" in t]
    days = _parse_days(",".join(day_tokens)) if day_tokens else list(range(7))
    ranges = _parse_times(",".join(time_tokens)) if time_tokens else [(0, MINUTES_PER_DAY)]
    return [(day * MINUTES_PER_DAY + start, day * MINUTES_PER_DAY + end)
            for day in days for start, end in ranges]


def _parse_days(text: str) -> list[int]:
    days: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        a, b = _day(first), _day(last) if last else _day(first)
        days.extend((a + i) % 7 for i in range((b - a) % 7 + 1))
    return sorted(set(days))


def _day(name: str) -> int:
    key = name.strip().lower()[:3]
    if key not in DAYS or len(name.strip()) < 3:
        raise ValueError(f"unknown day {name.strip()!r} (use Mon, Tue, Wed, Thu, Fri, Sat, Sun)")
    return DAYS.index(key)


def _parse_times(text: str) -> list[tuple[int, int]]:
    ranges = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, sep, last = part.partition("-")
        if not sep:
            raise ValueError(f"time range {part!r} needs a start and an end, e.g. 08:00-18:00")
        start, end = _minute(first), _minute(last)
        if start == MINUTES_PER_DAY:
            raise ValueError(f"time range {part!r} cannot start at 24:00")
        if end == start:
            raise ValueError(f"time range {part!r} is empty")
        ranges.append((start, end if end > start else end + MINUTES_PER_DAY))
    return ranges


def _minute(text: str) -> int:
    match = _TIME.match(text.strip())
    if not match:
        raise ValueError(f"bad time {text.strip()!r} (use HH:MM, 00:00 to 24:00)")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(f"bad time {text.strip()!r} (use HH:MM, 00:00 to 24:00)")
    return hours * 60 + minutes


def load_schedule(text: str) -> Schedule:
    """``parse_schedule`` for the configuration: a bad value is a ConfigError
    naming the key, so the agent stops at start with one clear line."""
    try:
        return parse_schedule(text)
    except ValueError as exc:
        raise ConfigError(f"config: [privacy] schedule = {text!r}: {exc}; expected "
                          f"{SCHEDULE_EXPECTED}") from None


class Privacy:
    """The privacy section of the configuration, applied to what the sensors saw."""

    def __init__(self, section) -> None:
        self.capture_titles: bool = section.capture_titles
        self._redactions = [re.compile(p) for p in section.redact_titles]
        self._excluded = [p.strip().lower() for p in section.exclude_apps if p.strip()]
        self.schedule = load_schedule(section.schedule)

    def is_excluded(self, *names: str) -> bool:
        """Does any of these names (app, executable, class) match ``exclude_apps``?"""
        if not self._excluded:
            return False
        candidates = set()
        for name in names:
            if name.strip():
                candidates.add(name.strip().lower())   # a full executable path
            base = name.replace("\\", "/").rsplit("/", 1)[-1].strip().lower()
            if base:
                candidates.add(base)
                for suffix in (".exe", ".app"):
                    if base.endswith(suffix):
                        candidates.add(base[: -len(suffix)])
        return any(fnmatch.fnmatchcase(c, pattern)
                   for c in candidates for pattern in self._excluded)

    def redact(self, title: str) -> str:
        if not self.capture_titles:
            return ""
        for pattern in self._redactions:
            title = pattern.sub(REDACTED, title)
        return title

    def apply(self, window: WindowInfo | None) -> WindowInfo | None:
        """The window as it may be reported: anonymous if excluded, title filtered."""
        if window is None:
            return None
        if self.is_excluded(window.app, window.exe, *window.aliases):
            return WindowInfo(app="", title="", excluded=True)
        return replace(window, title=self.redact(window.title), aliases=())

    def in_schedule(self, when: datetime) -> bool:
        return self.schedule.contains(when)
