"""The idle backend when nothing can tell idle time: every reading is unknown,
and the agent records no activity spans rather than inventing them."""

from __future__ import annotations

from worklens.agent.sensors.idle._base import UNKNOWN, IdleBackend, IdleReading


class NoIdle(IdleBackend):
    name = "none"

    def read(self) -> IdleReading:
        return UNKNOWN


def open(**_options) -> NoIdle:
    return NoIdle()
