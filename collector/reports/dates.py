"""Dates and time zones as operators write them, turned into the UTC
millisecond ranges the store speaks. Pure functions (no web framework) so the
operator CLI validates ``--from/--to/--tz`` with exactly the server's rules.

Accepted dates: ``YYYY-MM-DD``, ``today``, ``yesterday`` and ``Nd`` — the first
day of the last N days including today (``--from 7d --to today`` is a week).
A range is inclusive of both dates: from local midnight of ``from`` to local
midnight after ``to``, in the given time zone (DST-aware).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worklens.collector.reports.timezones import local_tz_name

DATE_EXPECTED = "expected YYYY-MM-DD, today, yesterday or Nd (e.g. 7d)"
# Dates a query may name: the epoch to a year whose local midnights (and the day
# after) still fit every time zone's arithmetic (9999-12-31 + 1 day overflows).
FIRST_DATE = date(1970, 1, 1)
LAST_DATE = date(9998, 12, 31)
_DAYS = re.compile(r"^(\d{1,4})d$")


class DateError(ValueError):
    """A date or time zone a person typed that cannot be used; says what is expected."""


def parse_tz(name: str | None, default: str = "") -> ZoneInfo:
    """``name`` (IANA) or else ``default`` or else the host's zone; DateError if unknown."""
    chosen = (name or "").strip() or default or local_tz_name()
    try:
        return ZoneInfo(chosen)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DateError(f"unknown time zone {chosen!r}: expected an IANA name such as "
                        "Europe/Paris or UTC") from exc


def today_in(tz: tzinfo) -> date:
    return datetime.now(tz).date()


def parse_date(text: str, tz: tzinfo, today: date | None = None) -> date:
    """One date as typed by a person, relative words resolved in ``tz``, between
    FIRST_DATE and LAST_DATE."""
    day = _parse_date(text, tz, today)
    if not FIRST_DATE <= day <= LAST_DATE:
        raise DateError(f"{text!r}: expected a date from {FIRST_DATE.isoformat()} to "
                        f"{LAST_DATE.isoformat()}")
    return day


def _parse_date(text: str, tz: tzinfo, today: date | None = None) -> date:
    s = (text or "").strip().lower()
    today = today or today_in(tz)
    if s == "today":
        return today
    if s == "yesterday":
        return today - timedelta(days=1)
    match = _DAYS.match(s)
    if match:
        days = int(match.group(1))
        if days < 1:
            raise DateError(f"{text!r}: Nd needs N of at least 1")
        if days > MAX_DAYS:
            raise DateError(f"{text!r}: Nd takes N of at most {MAX_DAYS}")
        return today - timedelta(days=days - 1)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
        try:
            return date.fromisoformat(s)
        except ValueError:
            pass
    raise DateError(f"{text!r}: {DATE_EXPECTED}")


def midnight_ms(day: date, tz: tzinfo) -> int:
    """UTC epoch ms of local midnight starting ``day`` in ``tz``."""
    return int(datetime.combine(day, time(0), tzinfo=tz).timestamp() * 1000)


@dataclass(frozen=True)
class DateRange:
    """Whole local days ``first``..``last`` in ``tz`` = [start_ms, end_ms) in UTC."""

    first: date
    last: date
    tz: ZoneInfo

    @property
    def start_ms(self) -> int:
        return midnight_ms(self.first, self.tz)

    @property
    def end_ms(self) -> int:
        return midnight_ms(self.last + timedelta(days=1), self.tz)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


MAX_DAYS = 3660


def parse_range(date_from: str, date_to: str, tz: ZoneInfo) -> DateRange:
    """Both ends parsed; DateError names ``from``/``to`` when one is wrong."""
    try:
        first = parse_date(date_from, tz)
    except DateError as exc:
        raise DateError(f"from: {exc}") from exc
    try:
        last = parse_date(date_to, tz)
    except DateError as exc:
        raise DateError(f"to: {exc}") from exc
    if first > last:
        raise DateError(f"from: {first.isoformat()} is after to ({last.isoformat()})")
    if (last - first).days >= MAX_DAYS:
        raise DateError(f"from: a range of at most {MAX_DAYS} days, please")
    return DateRange(first, last, tz)
