"""The one place where the HTTP layer calls the summaries engineer's modules
(``collector.summary``, ``collector.rules``, ``collector.csvexport``), so the
routers stay about HTTP and a change of those interfaces touches one file."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from collector.http.dates import DateRange
from collector.http.errors import ApiError

EXPORT_KINDS = ("spans", "activity", "processes", "daily", "apps")


def _unavailable(what: str) -> ApiError:
    return ApiError(503, f"{what} are not available in this build yet")


def summary(store: Any, rng: DateRange, by: str, agent: str | None, user: str | None
            ) -> dict[str, Any]:
    raise _unavailable("summaries")


def timeline(store: Any, agent_id: str, day: date, tz: ZoneInfo) -> dict[str, Any] | None:
    raise _unavailable("timelines")


def export_csv(store: Any, kind: str, rng: DateRange) -> Iterable[str]:
    raise _unavailable("CSV exports")


def get_rules(store: Any) -> list[dict[str, Any]]:
    from collector import rules

    return [r.to_dict() for r in rules.get_rules(store)]


def put_rules(store: Any, raw: Any) -> list[dict[str, Any]]:
    """Validate and replace (re-applied to history); a bad rule is a 400 naming it."""
    from collector import rules

    if raw is None:
        raise ApiError(400, 'rules: expected {"rules": [...]}')
    try:
        checked = rules.set_rules(store, raw)
    except rules.RuleError as exc:
        raise ApiError(400, str(exc)) from None
    return [r.to_dict() for r in checked]
