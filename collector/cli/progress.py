"""One progress line for the operator commands that take long (``rollups rebuild``,
``rules load``, ``export``): rows done, of how many when that is known, and the
rate, rewritten in place on stderr about twice a second.

Only a person at a terminal sees it: when stderr is not a TTY (a script, a pipe,
cron, a log) nothing is written, so output stays what it was. The work's own
code only calls ``add``/``set_total``, which are cheap when the line is off, and
asks ``enabled`` before counting anything just for the line.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

EVERY_S = 0.5
CLEAR_TO_END = "\x1b[K"


class Progress:
    """``label`` starts the line, e.g. "rebuilding rollups:" or "exported"."""

    def __init__(self, label: str, stream: TextIO | None = None, every_s: float = EVERY_S):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_terminal(self.stream)
        self.label = label
        self.every_s = every_s
        self.total: int | None = None
        self.done = 0
        self.detail = ""                  # e.g. "3.4 MB", after the counts
        self._started = time.monotonic()
        self._shown = float("-inf")       # the first add shows the line at once

    def set_total(self, total: int) -> None:
        self.total = total

    def add(self, rows: int, detail: str = "") -> None:
        self.done += rows
        self.detail = detail or self.detail
        now = time.monotonic()
        if self.enabled and now - self._shown >= self.every_s:
            self._shown = now
            self._show(now, "")

    def finish(self) -> None:
        """The last line, kept on the terminal (the work is done: all of the total)."""
        if self.total is not None:
            self.done = self.total
        if self.enabled:
            self._show(time.monotonic(), "\n")

    def line(self, now: float) -> str:
        done = max(self.done, 0)
        if self.total:
            done = min(done, self.total)
            counts = f"{done:,} of {self.total:,} rows ({100 * done // self.total}%)"
        else:
            counts = f"{done:,} rows"
        rate = done / max(now - self._started, 1e-3)
        detail = f", {self.detail}" if self.detail else ""
        return f"{self.label} {counts}{detail}, {rate:,.0f} rows/s"

    def _show(self, now: float, end: str) -> None:
        self.stream.write(f"\r{self.line(now)}{CLEAR_TO_END}{end}")
        self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):   # no isatty, or closed
        return False
