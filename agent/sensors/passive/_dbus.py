"""Passive signals on D-Bus (jeepney): a playing MPRIS player whose window has
focus, and idle inhibitors (the GNOME session manager's inhibit flag 8 or the
freedesktop power manager's ``HasInhibit`` on the session bus; logind ``idle``
inhibitors of this user on the system bus).

Each check is a few small method calls on a connection kept open; a bus that
went away is reopened at the next check. Nothing but "playing + focused" and
"inhibited" is kept: never the player's metadata, never who inhibits.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import psutil
from worklens.agent.sensors.passive._base import INHIBITOR, MEDIA, Signal, Unavailable
from worklens.agent.sensors.window._base import WindowInfo

log = logging.getLogger(__name__)

DBUS = ("/org/freedesktop/DBus", "org.freedesktop.DBus", "org.freedesktop.DBus")
MPRIS_PREFIX = "org.mpris.MediaPlayer2."
MPRIS_PATH = "/org/mpris/MediaPlayer2"
MPRIS_PLAYER = "org.mpris.MediaPlayer2.Player"
MPRIS_ROOT = "org.mpris.MediaPlayer2"
GNOME_SM = ("/org/gnome/SessionManager", "org.gnome.SessionManager",
            "org.gnome.SessionManager")
GNOME_INHIBIT_IDLE = 8
FDO_PM = ("/org/freedesktop/PowerManagement/Inhibit", "org.freedesktop.PowerManagement",
          "org.freedesktop.PowerManagement.Inhibit")
SERVICE_NAMES = {GNOME_SM[1]: "GNOME session manager",
                 FDO_PM[1]: "freedesktop power manager (Xfce, KDE)"}
LOGIN1 = ("/org/freedesktop/login1", "org.freedesktop.login1",
          "org.freedesktop.login1.Manager")
CALL_TIMEOUT_S = 1.0
FAMILY_DEPTH = 4   # a player's process may be a child or parent of the window's


class Bus:
    """One bus (``SESSION`` or ``SYSTEM``) through jeepney's blocking connection,
    reopened after a failure."""

    def __init__(self, which: str) -> None:
        self.which = which
        self._conn: Any = None

    def connect(self) -> None:
        from jeepney.io.blocking import open_dbus_connection

        if self._conn is None:
            self._conn = open_dbus_connection(bus=self.which)

    def call(self, target: tuple[str, str, str], method: str, signature: str = "",
             args: tuple = ()) -> tuple:
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import unwrap_msg

        path, name, interface = target
        try:
            self.connect()
            msg = new_method_call(DBusAddress(path, bus_name=name, interface=interface),
                                  method, signature, args)
            return unwrap_msg(self._conn.send_and_get_reply(msg, timeout=CALL_TIMEOUT_S))
        except (OSError, TimeoutError, ConnectionError):
            self.close()        # reopened at the next call
            raise

    def has_owner(self, name: str) -> bool:
        return bool(self.call(DBUS, "NameHasOwner", "s", (name,))[0])

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _open_bus(which: str) -> tuple[Bus | None, str]:
    try:
        import jeepney  # noqa: F401
    except ImportError:
        return None, "jeepney is not installed: pip install jeepney"
    bus = Bus(which)
    try:
        bus.connect()
    except (OSError, ValueError, KeyError, ConnectionError) as exc:
        where = ("DBUS_SESSION_BUS_ADDRESS / the user's session bus" if which == "SESSION"
                 else "the system bus (systemd-logind)")
        return None, f"no {where}: {exc}"
    return bus, ""


class MprisMedia(Signal):
    """Media: some MPRIS player says PlaybackStatus == "Playing" and it belongs to
    the focused window's process (or its parent/child: browsers, wrappers). A window
    without a process id (wlroots compositors do not tell it) is the player's when its
    app id is the player's ``DesktopEntry`` or the name it took on the bus
    (``org.mpris.MediaPlayer2.mpv``, ``...firefox.instance_1_42``)."""

    reason = MEDIA
    backend = "mpris"

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.detail = "players on the session bus (org.mpris.MediaPlayer2.*)"

    @classmethod
    def open(cls) -> Signal:
        bus, why = _open_bus("SESSION")
        if bus is None:
            return Unavailable(MEDIA, "mpris", why)
        return cls(bus)

    def engaged(self, window: WindowInfo | None) -> bool:
        if window is None or not (window.pid or window.app):
            return False
        names = [n for n in self._bus.call(DBUS, "ListNames")[0] if n.startswith(MPRIS_PREFIX)]
        return any(self._playing(name) and self._belongs(name, window) for name in names)

    def _belongs(self, name: str, window: WindowInfo) -> bool:
        if window.pid:
            return _related(self._pid_of(name), window.pid)
        apps = app_names(window.app)
        if name[len(MPRIS_PREFIX):].split(".")[0].lower() in apps:
            return True
        entry = self._property(name, MPRIS_ROOT, "DesktopEntry")
        return bool(entry) and entry.lower() in apps

    def _playing(self, name: str) -> bool:
        return self._property(name, MPRIS_PLAYER, "PlaybackStatus") == "Playing"

    def _property(self, name: str, interface: str, prop: str) -> Any:
        """One property of the player ``name`` (Properties.Get: a variant's value)."""
        return self._bus.call((MPRIS_PATH, name, "org.freedesktop.DBus.Properties"), "Get",
                              "ss", (interface, prop))[0][1]

    def _pid_of(self, name: str) -> int:
        return int(self._bus.call(DBUS, "GetConnectionUnixProcessID", "s", (name,))[0])

    def close(self) -> None:
        self._bus.close()


def app_names(app: str) -> set[str]:
    """A Wayland app id and its last dotted part (``org.mozilla.firefox`` -> firefox),
    lower case: what a player's bus name or desktop entry is compared with."""
    app = app.strip().lower()
    return {app, app.rsplit(".", 1)[-1]} - {""}


def _related(player_pid: int, window_pid: int) -> bool:
    """The same process, or one is an ancestor of the other (a few levels)."""
    if player_pid == window_pid:
        return True
    for child, elder in ((player_pid, window_pid), (window_pid, player_pid)):
        try:
            proc = psutil.Process(child)
            for _ in range(FAMILY_DEPTH):
                proc = proc.parent()
                if proc is None or proc.pid <= 1:
                    break
                if proc.pid == elder:
                    return True
        except psutil.Error:
            continue
    return False


class IdleInhibitors(Signal):
    """Inhibitor: on the session bus, the GNOME session manager says idle is inhibited
    (flag 8: GNOME forwards ``org.freedesktop.ScreenSaver.Inhibit`` there too), or the
    freedesktop power manager says it holds an inhibition (``HasInhibit``: Xfce's
    xfce4-power-manager, KDE's PowerDevil); on the system bus, logind lists an
    ``idle`` inhibitor held by this user."""

    reason = INHIBITOR
    backend = "dbus"

    def __init__(self, session: Bus | None, system: Bus | None, uid: int | None = None,
                 session_services: tuple[str, ...] = (GNOME_SM[1],)) -> None:
        self._session, self._system = session, system
        self._uid = os.getuid() if uid is None else uid
        self._services = session_services if session is not None else ()
        sources = [SERVICE_NAMES[name] for name in self._services]
        if system is not None:
            sources.append("logind")
        self.detail = ", ".join(sources)

    @classmethod
    def open(cls) -> Signal:
        session, why_session = _open_bus("SESSION")
        services: tuple[str, ...] = ()
        if session is not None:
            services = tuple(n for n in SERVICE_NAMES if _safe_owner(session, n))
            if not services:
                session.close()
                session, why_session = None, ("neither a GNOME session manager nor a "
                                              "power manager on the session bus")
        system, why_system = _open_bus("SYSTEM")
        if system is not None and not _safe_owner(system, LOGIN1[1]):
            system.close()
            system, why_system = None, "no systemd-logind on the system bus"
        if session is None and system is None:
            return Unavailable(INHIBITOR, "dbus", f"{why_session}; {why_system}")
        return cls(session, system, session_services=services)

    def engaged(self, window: WindowInfo | None) -> bool:
        if self._session is not None:
            if GNOME_SM[1] in self._services and self._session.call(
                    GNOME_SM, "IsInhibited", "u", (GNOME_INHIBIT_IDLE,))[0]:
                return True
            if FDO_PM[1] in self._services and self._session.call(FDO_PM, "HasInhibit")[0]:
                return True
        if self._system is not None:
            inhibitors = self._system.call(LOGIN1, "ListInhibitors")[0]
            return any(idle_inhibitor(entry, self._uid) for entry in inhibitors)
        return False

    def close(self) -> None:
        for bus in (self._session, self._system):
            if bus is not None:
                bus.close()


def idle_inhibitor(entry: tuple, uid: int) -> bool:
    """A logind ``ListInhibitors`` entry (what, who, why, mode, uid, pid): an idle
    inhibitor of ``uid``? ``what`` is a colon-separated list."""
    what, _who, _why, _mode, owner, _pid = entry
    return "idle" in what.split(":") and owner == uid


def _safe_owner(bus: Bus, name: str) -> bool:
    try:
        return bus.has_owner(name)
    except Exception:
        return False
