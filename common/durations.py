"""Durations as people write them in config files and flags: ``500ms``, ``10s``,
``5m``, ``2h``, ``30d`` (and combinations such as ``1h30m``)."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
EXPECTED = "a duration like 500ms, 10s, 5m, 2h or 30d"
# The longest duration any setting or flag takes: 100 years. Longer is a typo, and past
# it milliseconds since 1970 plus the duration no longer fit a 64-bit integer.
MAX_SECONDS = 36500 * 86400.0


def parse_duration(text: str) -> float:
    """Return the duration in seconds, or raise ValueError naming the format."""
    s = str(text).strip().lower().replace(" ", "")
    if not s:
        raise ValueError(f"expected {EXPECTED}, got an empty value")
    pos, total = 0, 0.0
    for match in _PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(s):
        raise ValueError(f"expected {EXPECTED}, got {text!r}")
    return total


def format_duration(seconds: float) -> str:
    """The shortest readable form, e.g. 90 -> '1m30s', 0.5 -> '500ms'."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out, rest = [], round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"
