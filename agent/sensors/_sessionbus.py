"""The user's D-Bus session bus, for the GNOME and KDE sensors (jeepney).

GNOME and KDE tell other programs about their session on the session bus, not
through a Wayland protocol: Mutter's ``IdleMonitor``, GNOME's ``ScreenSaver``,
the project's own GNOME Shell extension, and KWin's scripting interface. One
``SessionBus`` is one connection with jeepney's receiving thread
(``DBusRouter``), so that method calls from the sampler and signals or calls
arriving from the desktop share it; signal and call handlers run in that
thread and must be quick.

The bus is ``$DBUS_SESSION_BUS_ADDRESS``, else the systemd user bus at
``$XDG_RUNTIME_DIR/bus`` (a user unit started before the session's variables
were imported has the second only).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from worklens.agent.sensors._select import BackendUnavailable

log = logging.getLogger(__name__)
BUS = "org.freedesktop.DBus"
BUS_PATH = "/org/freedesktop/DBus"
CALL_TIMEOUT = 2.0
NAME_PRIMARY_OWNER = 1
NAME_FLAG_DO_NOT_QUEUE = 4


class CallFailed(Exception):
    """A D-Bus method call answered with an error (its name and message)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}" if message else name)
        self.name = name


def bus_address(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    address = env.get("DBUS_SESSION_BUS_ADDRESS", "")
    if address:
        return address
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.exists(os.path.join(runtime, "bus")):
        return f"unix:path={os.path.join(runtime, 'bus')}"
    return ""


class _Callback:
    """What jeepney's filters put matched messages into: here, a function call."""

    def __init__(self, fn: Callable[[Any], None]) -> None:
        self._fn = fn

    def put_nowait(self, msg: Any) -> None:
        try:
            self._fn(msg)
        except Exception:  # a handler's bug must not end the receiving thread
            log.exception("D-Bus message handler failed")


class _SnapshotDict(dict):
    """jeepney's filter table, iterated by its receiving thread while others add
    or remove filters: iterating a snapshot keeps that thread from failing."""

    def values(self):  # type: ignore[override]
        return list(super().values())


class SessionBus:
    """One connection to the session bus with a receiving thread."""

    def __init__(self, env: Mapping[str, str] | None = None,
                 timeout: float = CALL_TIMEOUT) -> None:
        try:
            from jeepney.io.threading import DBusRouter, open_dbus_connection
        except ImportError:
            raise BackendUnavailable("jeepney is not installed: pip install jeepney") from None
        address = bus_address(env)
        if not address:
            raise BackendUnavailable("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not "
                                     "set and there is no $XDG_RUNTIME_DIR/bus)")
        try:
            conn = open_dbus_connection(address)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise BackendUnavailable(f"cannot reach the D-Bus session bus ({exc})") from None
        self._router = DBusRouter(conn)
        self._router._filters.filters = _SnapshotDict(self._router._filters.filters)
        self._conn = conn
        self._timeout = timeout
        self._handles: list[Any] = []

    @property
    def unique_name(self) -> str:
        return self._conn.unique_name

    @property
    def alive(self) -> bool:
        return self._router is not None and self._router._rcv_thread.is_alive()

    def call(self, destination: str, path: str, interface: str, method: str,
             signature: str = "", args: tuple = (), timeout: float | None = None) -> tuple:
        """A method call's reply body; CallFailed for an error reply, OSError/
        TimeoutError when the bus or the peer does not answer."""
        from jeepney import DBusAddress, HeaderFields, MessageType, new_method_call

        address = DBusAddress(path, bus_name=destination, interface=interface)
        try:
            reply = self._router.send_and_get_reply(
                new_method_call(address, method, signature, args),
                timeout=self._timeout if timeout is None else timeout)
        except Exception as exc:
            if isinstance(exc, (OSError, TimeoutError)):
                raise
            raise OSError(f"D-Bus connection failed: {exc}") from None
        if reply.header.message_type == MessageType.error:
            body = reply.body
            raise CallFailed(reply.header.fields.get(HeaderFields.error_name, "error"),
                             str(body[0]) if body else "")
        return reply.body

    def name_has_owner(self, name: str) -> bool:
        return bool(self.call(BUS, BUS_PATH, BUS, "NameHasOwner", "s", (name,))[0])

    def request_name(self, name: str) -> bool:
        """Own ``name``; False when another connection owns it already."""
        result = self.call(BUS, BUS_PATH, BUS, "RequestName", "su",
                           (name, NAME_FLAG_DO_NOT_QUEUE))[0]
        return result == NAME_PRIMARY_OWNER

    def on(self, fn: Callable[[Any], None], *, add_match: bool = True,
           args: Mapping[int, str] | None = None, **rule: str) -> None:
        """Call ``fn(message)`` (in the receiving thread) for each incoming message
        matching ``rule`` (MatchRule fields: type, interface, member, path...).
        Signals need the bus to route them to us (``add_match``); calls to a name
        we own come anyway."""
        from jeepney import MatchRule

        match = MatchRule(**rule)
        for index, value in (args or {}).items():
            match.add_arg_condition(index, value)
        self._handles.append(self._router.filter(match, queue=_Callback(fn)))  # type: ignore
        if add_match:
            self.call(BUS, BUS_PATH, BUS, "AddMatch", "s", (match.serialise(),))

    def reply(self, call: Any, signature: str = "", args: tuple = ()) -> None:
        from jeepney import new_method_return

        self._router.send(new_method_return(call, signature, args))

    def close(self) -> None:
        router, self._router = self._router, None
        if router is None:
            return
        with contextlib.suppress(Exception):
            router.close()              # the receiving thread ends first
        for handle in self._handles:
            with contextlib.suppress(Exception):
                handle.close()
        self._handles.clear()
        with contextlib.suppress(Exception):
            self._conn.close()
