"""The agent's sensors: what it can observe on this machine, and what it cannot.

Each kind of sensor (``window``, ``idle``, ``input``) is a small package in
the psutil mould: one public face in ``__init__``, one module per platform
behind it, and a ``none`` fallback so that the agent still runs where a sensor
cannot work (a server, a desktop whose interfaces it cannot reach). On Linux
the Wayland backends (wlroots, GNOME, KDE) come before X11 in a Wayland
session (see docs/desktops.md). ``input`` counts key presses and mouse events
(counts only: on X11 from the RECORD extension directly, elsewhere through
pynput; unavailable on Wayland), ``processes`` samples CPU/memory per process and
``clock`` notices when the machine slept. On X11 a display that is not up yet
is waited for, so an agent started before the login's X server picks it up.

``describe(cfg)`` tells a person which sensors would run and why the others
cannot; ``worklens-agent status`` prints it.
"""

from __future__ import annotations

from worklens.agent.sensors._select import BackendUnavailable, SensorStatus

__all__ = ["BackendUnavailable", "SensorStatus", "describe"]


def describe(cfg) -> list[SensorStatus]:
    """Probe each sensor once (open and close it) and say what it can see.

    Cheap enough for a status command: it connects to the display once per
    sensor and reads nothing the agent would not read anyway.
    """
    from worklens.agent.sensors import idle, input, processes, window
    from worklens.agent.sensors._select import configured_backend

    statuses = []
    for kind in (window, idle):
        backend, status = kind.open_sensor(cfg)
        backend.close()
        statuses.append(status)
    statuses.append(input.probe(configured_backend(cfg, "input")))
    statuses.append(processes.describe(cfg))
    return statuses
