"""The interface every idle backend meets.

``read()`` answers, in one cheap call, how long since the last keyboard or
mouse input and whether the session is locked. Either may be None: "this
backend cannot tell now" (no display, no logind), which the agent reports as
unknown rather than guessing active or idle.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IdleReading:
    idle_seconds: float | None   # seconds since the last user input
    locked: bool | None          # screen locked; None = cannot tell


UNKNOWN = IdleReading(None, None)


class IdleBackend:
    """Base class: ``read()`` and ``close()``; ``name`` and ``detail`` for status."""

    name = "base"
    detail = ""

    def read(self) -> IdleReading:
        raise NotImplementedError

    def idle_seconds(self) -> float | None:
        return self.read().idle_seconds

    def is_locked(self) -> bool | None:
        return self.read().locked

    def close(self) -> None:
        """Release OS resources; safe to call twice."""
