"""Time for the sensors: one injectable clock, and noticing that the machine slept.

Span boundaries are wall-clock UTC milliseconds (the wire's unit); the
machine's suspend shows up as a jump between the wall clock and the monotonic
clock, because ``time.monotonic()`` stops while the machine is suspended on
Linux and macOS. A jump larger than a threshold becomes an ASLEEP span for the
gap. On Windows ``time.monotonic()`` keeps counting through sleep, so there a
late sample (wall time since the last sample far beyond the interval) counts
as the gap too; that path is not verified on a real machine here.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import datetime


class Clock:
    """The real clocks; tests pass a fake with the same three methods."""

    def wall(self) -> float:
        """Seconds since the epoch (UTC)."""
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def local(self) -> datetime:
        """Local date and time, for the monitoring schedule."""
        return datetime.now()


def wall_ms(clock: Clock) -> int:
    return int(clock.wall() * 1000)


@dataclass(frozen=True)
class Gap:
    """Time the machine was not running: ``[start_ms, end_ms)`` in wall time."""

    start_ms: int
    end_ms: int


class SleepDetector:
    """Compares consecutive samples' wall and monotonic times."""

    def __init__(self, clock: Clock, threshold: float = 10.0, interval: float = 1.0,
                 monotonic_counts_sleep: bool = sys.platform == "win32") -> None:
        self._clock = clock
        self._threshold = threshold
        self._interval = interval
        self._late_counts = monotonic_counts_sleep
        self._last: tuple[float, float] | None = None

    def reset(self) -> None:
        """Forget the last sample (e.g. after a pause outside the schedule)."""
        self._last = None

    def check(self) -> Gap | None:
        """Call once per sample: the sleep gap since the previous call, if any.

        The gap is placed right after the previous sample (we cannot know when
        within the interval the machine went to sleep), which is exact to
        within one sampling interval.
        """
        wall, mono = self._clock.wall(), self._clock.monotonic()
        last, self._last = self._last, (wall, mono)
        if last is None:
            return None
        wall_elapsed, mono_elapsed = wall - last[0], mono - last[1]
        slept = wall_elapsed - mono_elapsed
        if self._late_counts:
            slept = max(slept, wall_elapsed - self._interval)
        if slept <= self._threshold:
            return None
        start = last[0]
        return Gap(int(start * 1000), int(min(start + slept, wall) * 1000))
