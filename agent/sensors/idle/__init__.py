"""How long since the last input, and is the screen locked: one interface
(``_base.IdleBackend``), one module per platform (``_x11``, ``_wayland``
(ext-idle-notify / KDE idle), ``_gnome`` (Mutter's IdleMonitor), ``_win32``,
``_darwin``, ``_logind`` for Linux sessions without a display, ``_none``).

Chosen like the window backend: by platform and session (``_select.ORDER``),
forced with ``WORKLENS_IDLE_BACKEND`` / ``[sensors] idle``; a backend that cannot
load leaves the agent running without activity spans, and says why.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from worklens.agent.sensors._select import SensorStatus, configured_backend, open_backend
from worklens.agent.sensors.idle._base import IdleBackend, IdleReading

__all__ = ["IdleBackend", "IdleReading", "open_sensor"]


def open_sensor(cfg=None, env: Mapping[str, str] | None = None, platform: str = sys.platform,
                **options) -> tuple[IdleBackend, SensorStatus]:
    configured = configured_backend(cfg, "idle")
    env = os.environ if env is None else env
    return open_backend(__name__, "idle", configured, env, platform, **options)
