"""Idle time and lock state on GNOME (Mutter), over the session bus.

Idle: ``org.gnome.Mutter.IdleMonitor`` at ``/org/gnome/Mutter/IdleMonitor/Core``,
``GetIdletime`` -> milliseconds since the last input, Mutter's own counter
(like X11's screen saver counter: exact, and it ignores idle inhibitors).
Locked: ``org.gnome.ScreenSaver.GetActive`` (GNOME Shell's lock screen), else
logind's ``LockedHint`` when the system bus is reachable, else unknown.

Two small calls per sample on one connection. Mutter offers no Wayland
idle protocol to clients, so on GNOME this backend follows the ``wayland`` one
in ``_select.ORDER``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from worklens.agent.sensors import _sessionbus
from worklens.agent.sensors._select import BackendUnavailable
from worklens.agent.sensors.idle import _logind
from worklens.agent.sensors.idle._base import UNKNOWN, IdleBackend, IdleReading

log = logging.getLogger(__name__)

IDLE_MONITOR = "org.gnome.Mutter.IdleMonitor"
IDLE_MONITOR_PATH = "/org/gnome/Mutter/IdleMonitor/Core"
SCREEN_SAVER = "org.gnome.ScreenSaver"
SCREEN_SAVER_PATH = "/org/gnome/ScreenSaver"


class GnomeIdle(IdleBackend):
    name = "gnome"

    def __init__(self, bus: _sessionbus.SessionBus, screen_saver: bool,
                 logind: _logind.LogindIdle | None) -> None:
        self._bus = bus
        self._screen_saver = screen_saver
        self._logind = logind
        self._failed_logged = False
        lock = ("org.gnome.ScreenSaver" if screen_saver
                else "logind LockedHint" if logind else "unknown (no GNOME Shell, no logind)")
        self.detail = f"{IDLE_MONITOR} on the session bus; lock: {lock}"

    def read(self) -> IdleReading:
        try:
            idle_ms = self._bus.call(IDLE_MONITOR, IDLE_MONITOR_PATH, IDLE_MONITOR,
                                     "GetIdletime")[0]
        except (OSError, _sessionbus.CallFailed) as exc:   # Mutter restarting, bus gone
            if not self._failed_logged:
                log.warning("GNOME idle monitor unreadable: %s", exc)
                self._failed_logged = True
            return UNKNOWN
        self._failed_logged = False
        return IdleReading(idle_ms / 1000.0, self._locked())

    def _locked(self) -> bool | None:
        if self._screen_saver:
            try:
                return bool(self._bus.call(SCREEN_SAVER, SCREEN_SAVER_PATH, SCREEN_SAVER,
                                           "GetActive")[0])
            except (OSError, _sessionbus.CallFailed):
                return None
        return self._logind.read().locked if self._logind is not None else None

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()
            self._bus = None  # type: ignore[assignment]
        if self._logind is not None:
            self._logind.close()
            self._logind = None


def open(env: Mapping[str, str] | None = None, use_logind: bool = True,
         **_options) -> GnomeIdle:
    bus = _sessionbus.SessionBus(env)
    try:
        bus.call(IDLE_MONITOR, IDLE_MONITOR_PATH, IDLE_MONITOR, "GetIdletime")
    except (OSError, _sessionbus.CallFailed) as exc:
        bus.close()
        raise BackendUnavailable(f"no {IDLE_MONITOR} on the session bus (not GNOME?): "
                                 f"{exc}") from None
    try:
        screen_saver = bus.name_has_owner(SCREEN_SAVER)
    except (OSError, _sessionbus.CallFailed):
        screen_saver = False
    logind = None
    if use_logind and not screen_saver:
        try:
            logind = _logind.open()
        except BackendUnavailable as exc:
            log.debug("no logind lock hint on GNOME: %s", exc)
    return GnomeIdle(bus, screen_saver, logind)
