"""The host's time zone, for every layer that needs a default zone.

A module of its own (below summaries, HTTP and CLI) so that ``reports.summary``
does not reach up into the HTTP layer for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def local_tz_name() -> str:
    """The host's IANA zone (TZ, /etc/timezone, /etc/localtime link), else UTC."""
    env = os.environ.get("TZ", "").lstrip(":")
    if env and known_zone(env):
        return env
    try:
        text = Path("/etc/timezone").read_text().strip()
        if known_zone(text):
            return text
    except OSError:
        pass
    try:
        target = str(Path("/etc/localtime").resolve())
        if "zoneinfo/" in target:
            name = target.split("zoneinfo/", 1)[1]
            if known_zone(name):
                return name
    except OSError:
        pass
    return "UTC"


def known_zone(name: str) -> bool:
    """``name`` is an IANA zone this host's tz database knows."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
