"""Samples become spans by heartbeat merging.

Every sampling tick brings one ``Observation``: the focused window (already
filtered by the privacy rules), the activity state and the input counts
since the previous tick. Consecutive observations of the same app + title
grow one window span; a change closes it at the tick that saw the change and
opens the next one at the same instant, so spans of one kind never overlap
and leave no gaps while the agent runs. Window spans stop while no window is
visible (none focused, locked, asleep, outside the schedule).

Activity spans work the same way, except that a state change is dated when
it happened rather than when it was seen: going idle is dated when the input
stopped (``now - idle_seconds``), so the ACTIVE span ends there and the IDLE
span starts there; a return to ACTIVE is dated at the previous tick (the input
resumed after it), so no burst of input is ever squeezed into nothing. A
suspend (``gap``) closes everything where it began and fills the gap with one
ASLEEP span.

Closed spans are the wire messages themselves (``WindowSpan``,
``ActivitySpan``); zero-length spans are never emitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worklens.agent.sensors.clock import Gap
from worklens.agent.sensors.input import NO_INPUT, InputCounts
from worklens.agent.sensors.window._base import WindowInfo
from worklens.v1 import agent_pb2

State = agent_pb2.ActivityState
ACTIVE = agent_pb2.ACTIVITY_STATE_ACTIVE
IDLE = agent_pb2.ACTIVITY_STATE_IDLE
LOCKED = agent_pb2.ACTIVITY_STATE_LOCKED
ASLEEP = agent_pb2.ACTIVITY_STATE_ASLEEP
UINT32_MAX = 2**32 - 1
CLOCK_STEP_BACK_MS = 60_000   # a bigger backwards wall-clock step restarts the timeline

Span = agent_pb2.WindowSpan | agent_pb2.ActivitySpan


@dataclass(frozen=True)
class Observation:
    time_ms: int                    # wall clock of the tick
    window: WindowInfo | None       # focused window after privacy rules; None: none visible
    state: State | None             # activity state; None: cannot tell (no idle sensor)
    state_since_ms: int | None = None  # when that state began, if known (idle onset...)
    counts: InputCounts = NO_INPUT  # input since the previous tick


@dataclass
class _OpenWindow:
    start_ms: int
    info: WindowInfo

    def key(self) -> tuple[str, str, bool]:
        return _window_key(self.info)

    def record(self, end_ms: int) -> agent_pb2.WindowSpan:
        info = self.info
        return agent_pb2.WindowSpan(start_ms=self.start_ms, duration_ms=end_ms - self.start_ms,
                                    app=info.app, title=info.title, pid=info.pid,
                                    exe=info.exe, excluded=info.excluded)


@dataclass
class _OpenActivity:
    start_ms: int
    state: State
    counts: InputCounts = field(default_factory=InputCounts)

    def record(self, end_ms: int) -> agent_pb2.ActivitySpan:
        c = self.counts
        return agent_pb2.ActivitySpan(
            start_ms=self.start_ms, duration_ms=end_ms - self.start_ms, state=self.state,
            key_presses=min(c.key_presses, UINT32_MAX), clicks=min(c.clicks, UINT32_MAX),
            mouse_moves=min(c.mouse_moves, UINT32_MAX), scrolls=min(c.scrolls, UINT32_MAX))


def _window_key(info: WindowInfo) -> tuple[str, str, bool]:
    return (info.app, info.title, info.excluded)


class SpanTracker:
    """Open spans and the rules that close them. Not thread-safe: one sampler drives it."""

    def __init__(self) -> None:
        self._window: _OpenWindow | None = None
        self._activity: _OpenActivity | None = None
        self._last_ms: int | None = None
        self._resume_ms: int | None = None   # where the timeline continues after a gap

    def observe(self, obs: Observation) -> list[Span]:
        """Feed one tick; returns the spans this tick closed, in closing order."""
        closed: list[Span] = []
        now = obs.time_ms
        if self._last_ms is not None and now < self._last_ms:
            if self._last_ms - now > CLOCK_STEP_BACK_MS:
                closed += self.close(self._last_ms)   # the wall clock was set back
            else:
                now = self._last_ms                   # small step: hold the timeline
        start = self._resume_ms if self._resume_ms is not None else now
        self._resume_ms = None
        closed += self._observe_window(obs.window, now, start)
        closed += self._observe_activity(obs, now, start)
        self._last_ms = now
        return closed

    def _observe_window(self, window: WindowInfo | None, now: int, start: int) -> list[Span]:
        closed: list[Span] = []
        current = self._window
        if current is not None and (window is None or current.key() != _window_key(window)):
            closed += _nonempty(current.record(now))
            self._window = current = None
            start = now
        if current is None and window is not None:
            self._window = _OpenWindow(min(start, now), window)
        return closed

    def _observe_activity(self, obs: Observation, now: int, start: int) -> list[Span]:
        current = self._activity
        if obs.state is None:
            self._activity = None
            return _nonempty(current.record(now)) if current is not None else []
        if current is None:
            self._activity = _OpenActivity(min(start, now), obs.state, obs.counts)
            return []
        if current.state == obs.state:
            current.counts += obs.counts
            return []
        # A change, dated when it happened, within this span. Going idle: when input
        # stopped (exact). Coming back to ACTIVE: idle counters only tell the *last*
        # input, so we date it at the previous tick, after which input resumed; dating
        # it at the last input would squeeze a burst of typing into a zero-length span.
        since = obs.state_since_ms if obs.state_since_ms is not None else now
        if obs.state == ACTIVE and self._last_ms is not None:
            since = self._last_ms
        at = min(max(since, current.start_ms), now)
        follower = _OpenActivity(at, obs.state)
        if obs.state == ACTIVE:
            follower.counts += obs.counts     # the input that ended the idleness
        else:
            current.counts += obs.counts
        self._activity = follower
        return _nonempty(current.record(at))

    def gap(self, gap: Gap) -> list[Span]:
        """The machine slept during ``gap``: close at its start, fill it with ASLEEP."""
        start = gap.start_ms if self._last_ms is None else max(gap.start_ms, self._last_ms)
        start = max([start] + [s.start_ms for s in (self._window, self._activity) if s])
        closed = self.close(start)
        if gap.end_ms > start:
            closed += _nonempty(_OpenActivity(start, ASLEEP).record(gap.end_ms))
            self._resume_ms = gap.end_ms
        self._last_ms = max(gap.end_ms, start)
        return closed

    def close(self, now_ms: int) -> list[Span]:
        """Close every open span at ``now_ms`` (shutdown, leaving the schedule)."""
        closed: list[Span] = []
        for span in (self._window, self._activity):
            if span is not None:
                closed += _nonempty(span.record(max(now_ms, span.start_ms)))
        self._window = self._activity = None
        self._last_ms = None
        return closed

    def open_records(self, now_ms: int) -> list[Span]:
        """The open spans as if they closed now (for the delivery checkpoint)."""
        return [span.record(max(now_ms, span.start_ms))
                for span in (self._window, self._activity) if span is not None]


def _nonempty(span: Span) -> list[Span]:
    return [span] if span.duration_ms > 0 else []
