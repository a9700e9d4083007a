"""What every passive signal is (see ``worklens.agent.sensors.passive``)."""

from __future__ import annotations

from worklens.agent.sensors.window._base import WindowInfo
from worklens.v1 import agent_pb2

MEDIA, CALL = agent_pb2.PASSIVE_REASON_MEDIA, agent_pb2.PASSIVE_REASON_CALL
INHIBITOR, RULE = agent_pb2.PASSIVE_REASON_INHIBITOR, agent_pb2.PASSIVE_REASON_RULE
REASON_NAMES = {MEDIA: "media", CALL: "call", INHIBITOR: "inhibitor", RULE: "rule"}


class Signal:
    """One passive signal. ``available`` False means it cannot work here and
    ``detail`` says why (with the fix); ``engaged`` must not raise."""

    reason: int = 0
    backend: str = ""
    available: bool = True
    detail: str = ""
    every: float = 0.0          # seconds between two real checks (results are reused)

    def engaged(self, window: WindowInfo | None) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class Unavailable(Signal):
    available = False

    def __init__(self, reason: int, backend: str, detail: str) -> None:
        self.reason, self.backend, self.detail = reason, backend, detail

    def engaged(self, window: WindowInfo | None) -> bool:
        return False
