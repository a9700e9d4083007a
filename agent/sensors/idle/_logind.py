"""Idle and lock hints from systemd-logind over the D-Bus system bus (jeepney).

For Linux sessions without an X display (a console, Wayland without
XWayland), logind's session object carries what the desktop or the TTY told
it: ``IdleHint`` + ``IdleSinceHint`` (wall clock, microseconds) and
``LockedHint``. These are hints the desktop sets after its own idle delay, so
idle time here is coarser than X11's per-event idle counter. The X11 backend
also asks logind for ``LockedHint`` when the system bus is reachable.

Our session is ``$XDG_SESSION_ID`` when set, else the session of this process,
else the user's display session (the agent may run as a systemd user service).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from worklens.agent.sensors._select import BackendUnavailable
from worklens.agent.sensors.idle._base import UNKNOWN, IdleBackend, IdleReading

log = logging.getLogger(__name__)

LOGIN1 = "org.freedesktop.login1"
MANAGER_PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"
SESSION = "org.freedesktop.login1.Session"
USER = "org.freedesktop.login1.User"
PROPERTIES = "org.freedesktop.DBus.Properties"


class Bus(Protocol):
    """The one D-Bus operation we need: a method call on login1, returning its body."""

    def call(self, path: str, interface: str, method: str, signature: str = "",
             args: tuple = ()) -> tuple: ...

    def close(self) -> None: ...


class JeepneyBus:
    """The system bus through jeepney's blocking connection."""

    def __init__(self, timeout: float = 2.0) -> None:
        try:
            from jeepney.io.blocking import open_dbus_connection
        except ImportError:
            raise BackendUnavailable("jeepney is not installed: pip install jeepney") from None
        try:
            self._conn = open_dbus_connection(bus="SYSTEM")
        except (OSError, ValueError, KeyError) as exc:
            raise BackendUnavailable(
                f"no D-Bus system bus ({exc}): logind needs systemd and dbus") from None
        self._timeout = timeout

    def call(self, path: str, interface: str, method: str, signature: str = "",
             args: tuple = ()) -> tuple:
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import unwrap_msg

        address = DBusAddress(path, bus_name=LOGIN1, interface=interface)
        reply = self._conn.send_and_get_reply(new_method_call(address, method, signature, args),
                                              timeout=self._timeout)
        return unwrap_msg(reply)

    def close(self) -> None:
        self._conn.close()


def find_session(bus: Bus, env: Mapping[str, str] | None = None,
                 pid: int | None = None, uid: int | None = None) -> str:
    """The object path of the session whose idleness we measure."""
    env = os.environ if env is None else env
    attempts: list[Callable[[], str]] = []
    if env.get("XDG_SESSION_ID"):
        attempts.append(lambda: bus.call(MANAGER_PATH, MANAGER, "GetSession", "s",
                                         (env["XDG_SESSION_ID"],))[0])
    attempts.append(lambda: bus.call(MANAGER_PATH, MANAGER, "GetSessionByPID", "u",
                                     (pid if pid is not None else os.getpid(),))[0])
    attempts.append(lambda: _user_display_session(bus, os.getuid() if uid is None else uid))
    errors = []
    for attempt in attempts:
        try:
            path = attempt()
        except Exception as exc:  # D-Bus errors: try the next way to find the session
            errors.append(str(exc))
            continue
        if path and path != "/":
            return path
    raise BackendUnavailable("logind knows no session for this user: "
                             + ("; ".join(errors) or "no display session"))


def _user_display_session(bus: Bus, uid: int) -> str:
    user_path = bus.call(MANAGER_PATH, MANAGER, "GetUser", "u", (uid,))[0]
    signature, value = bus.call(user_path, PROPERTIES, "Get", "ss", (USER, "Display"))[0]
    return value[1] if signature == "(so)" else ""


def parse_session(props: Mapping[str, tuple[str, Any]], now: float) -> IdleReading:
    """A logind ``GetAll`` answer ({name: (signature, value)}) to a reading.

    ``IdleSinceHint`` is when the hint last changed, in wall-clock microseconds;
    while ``IdleHint`` is false the session counts as just active.
    """
    def value(name: str) -> Any:
        entry = props.get(name)
        return entry[1] if entry is not None else None

    idle_hint, since_us, locked = value("IdleHint"), value("IdleSinceHint"), value("LockedHint")
    if idle_hint is None:
        idle_seconds = None
    elif idle_hint and since_us:
        idle_seconds = max(0.0, now - since_us / 1e6)
    else:
        idle_seconds = 0.0
    return IdleReading(idle_seconds, None if locked is None else bool(locked))


class LogindIdle(IdleBackend):
    """Idle/lock hints of one logind session.

    Not verifiable in the sandbox this was written in (no system bus); the
    parsing is unit-tested on recorded property shapes.
    """

    name = "logind"

    def __init__(self, bus: Bus, session_path: str,
                 wall: Callable[[], float] = time.time) -> None:
        self._bus = bus
        self._path = session_path
        self._wall = wall
        self._failed_logged = False
        self.detail = f"session {session_path}"

    def read(self) -> IdleReading:
        try:
            props = self._bus.call(self._path, PROPERTIES, "GetAll", "s", (SESSION,))[0]
        except Exception as exc:  # bus gone or session ended: unknown, not fatal
            if not self._failed_logged:
                log.warning("logind session %s unreadable: %s", self._path, exc)
                self._failed_logged = True
            return UNKNOWN
        self._failed_logged = False
        return parse_session(props, self._wall())

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()
            self._bus = None  # type: ignore[assignment]


def open(bus: Bus | None = None, **_options) -> LogindIdle:
    bus = bus if bus is not None else JeepneyBus()
    try:
        path = find_session(bus)
    except BackendUnavailable:
        bus.close()
        raise
    return LogindIdle(bus, path)
