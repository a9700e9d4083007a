"""Small request helpers shared by the API routers: the store, the config,
the caller's time zone, and the client address for the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from worklens.collector.http.errors import ApiError
from worklens.collector.reports.dates import DateError, DateRange, parse_range, parse_tz


def store_of(request: Request) -> Any:
    return request.app.state.store


def default_tz_name(request: Request) -> str:
    cfg = request.app.state.cfg
    return getattr(getattr(cfg, "summary", None), "timezone", "") or ""


def tz_param(request: Request, tz: str | None):
    """The ``tz`` query parameter, else ``[summary] timezone``, else the host's zone."""
    try:
        return parse_tz(tz, default_tz_name(request))
    except DateError as exc:
        raise ApiError(400, f"tz: {exc}") from exc


def range_params(request: Request, date_from: str, date_to: str, tz: str | None) -> DateRange:
    zone = tz_param(request, tz)
    try:
        return parse_range(date_from, date_to, zone)
    except DateError as exc:
        raise ApiError(400, str(exc)) from exc


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""
