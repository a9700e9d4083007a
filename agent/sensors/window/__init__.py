"""Which window has the focus: one interface (``_base.WindowBackend``), one
module per platform (``_x11``, ``_win32``, ``_darwin``, ``_none``).

The backend is chosen by platform (on Linux: X11 when ``DISPLAY`` is set),
or forced with ``WORKLENS_WINDOW_BACKEND`` / ``[sampling] window_backend``
(``x11``, ``win32``, ``darwin``, ``none``). A backend that cannot load leaves
the agent running on ``none``, and the status says why and what to fix.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from worklens.agent.sensors._select import SensorStatus, open_backend
from worklens.agent.sensors.window._base import WindowBackend, WindowInfo

__all__ = ["WindowBackend", "WindowInfo", "open_sensor"]


def open_sensor(cfg=None, env: Mapping[str, str] | None = None, platform: str = sys.platform,
                **options) -> tuple[WindowBackend, SensorStatus]:
    """The best working window backend and a status line describing it."""
    configured = cfg.sampling.window_backend if cfg is not None else ""
    env = os.environ if env is None else env
    return open_backend(__name__, "window", configured, env, platform, **options)
