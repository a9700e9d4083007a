"""What every input backend shares: the counts, a thread-safe tally, and the
small interface a listener meets.

A backend's ``open(tally, display=None)`` starts listening and returns an
``InputListener``; from then on it calls ``tally.add(...)`` with counts — and
nothing else: no key, no button, no position ever leaves a backend.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class InputCounts:
    key_presses: int = 0
    clicks: int = 0
    mouse_moves: int = 0
    scrolls: int = 0

    def __add__(self, other: InputCounts) -> InputCounts:
        return InputCounts(self.key_presses + other.key_presses, self.clicks + other.clicks,
                           self.mouse_moves + other.mouse_moves, self.scrolls + other.scrolls)


NO_INPUT = InputCounts()


class Tally:
    """Four integers behind a lock: listeners add, the sampler takes.

    Backends add whole batches at once (the X11 one adds once per socket read,
    not once per event), so the lock is cheap however busy the mouse is.
    """

    __slots__ = ("_clicks", "_keys", "_lock", "_moves", "_scrolls")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys = self._clicks = self._moves = self._scrolls = 0

    def add(self, keys: int = 0, clicks: int = 0, moves: int = 0, scrolls: int = 0) -> None:
        with self._lock:
            self._keys += keys
            self._clicks += clicks
            self._moves += moves
            self._scrolls += scrolls

    def take(self) -> InputCounts:
        """The counts since the last call, resetting them."""
        with self._lock:
            counts = InputCounts(self._keys, self._clicks, self._moves, self._scrolls)
            self._keys = self._clicks = self._moves = self._scrolls = 0
        return counts


class InputListener:
    """A running listener: ``alive()`` is False once it ended (its display went
    away); ``stop()`` ends it now, without waiting for another input event."""

    name = "base"
    detail = "counts only: key presses, clicks, mouse moves, scrolls (never which keys)"

    def alive(self) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError
