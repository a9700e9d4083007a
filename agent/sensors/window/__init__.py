"""Which window has the focus: one interface (``_base.WindowBackend``), one
module per platform or desktop family (``_x11``, ``_wlroots``, ``_gnome``,
``_kde``, ``_win32``, ``_darwin``, ``_none``).

The backend is chosen by platform and session, in the order of
``_select.ORDER`` (on Linux with ``WAYLAND_DISPLAY``: wlroots, GNOME, KDE,
then X11), or forced with ``WORKLENS_WINDOW_BACKEND`` / ``[sensors] window``
(one name or a comma-separated list; ``[sampling] window_backend`` still
works). A backend that cannot load leaves the agent running on ``none``, and
the status says why and what to fix.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from worklens.agent.sensors._select import SensorStatus, configured_backend, open_backend
from worklens.agent.sensors.window._base import WindowBackend, WindowInfo

__all__ = ["WindowBackend", "WindowInfo", "open_sensor"]


def open_sensor(cfg=None, env: Mapping[str, str] | None = None, platform: str = sys.platform,
                **options) -> tuple[WindowBackend, SensorStatus]:
    """The best working window backend and a status line describing it."""
    configured = configured_backend(cfg, "window")
    env = os.environ if env is None else env
    return open_backend(__name__, "window", configured, env, platform, **options)
