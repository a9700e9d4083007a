"""Idle time and lock state on macOS via pyobjc Quartz.

Idle: ``CGEventSourceSecondsSinceLastEventType(kCGEventSourceStateCombinedSessionState,
kCGAnyInputEventType)``. Locked: ``CGSessionCopyCurrentDictionary()`` has
``CGSSessionScreenIsLocked`` set while the lock screen is up.

Written against the documented APIs and unit-tested on fakes of them; not
verified on a real Mac here.
"""

from __future__ import annotations

from typing import Any

from worklens.agent.sensors import _darwin
from worklens.agent.sensors.idle._base import IdleBackend, IdleReading

ANY_INPUT_EVENT = 0xFFFFFFFF  # kCGAnyInputEventType, ~0


class DarwinIdle(IdleBackend):
    name = "darwin"

    def __init__(self, quartz: Any) -> None:
        self._quartz = quartz

    def read(self) -> IdleReading:
        q = self._quartz
        event_type = getattr(q, "kCGAnyInputEventType", ANY_INPUT_EVENT)
        idle = q.CGEventSourceSecondsSinceLastEventType(
            q.kCGEventSourceStateCombinedSessionState, event_type)
        session = q.CGSessionCopyCurrentDictionary() or {}
        locked = bool(session.get("CGSSessionScreenIsLocked", False))
        return IdleReading(float(idle), locked)


def open(quartz: Any = None, **_options) -> DarwinIdle:
    return DarwinIdle(quartz or _darwin.quartz())
