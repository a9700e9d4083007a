"""One connection to the Wayland compositor, shared by the window and idle
sensors, with one thread that reads its events (pywayland on libwayland-client).

Wayland has no "ask me now" for the focused window or idle time: the
compositor *tells* its clients when things change. So at connect we bind the
globals the sensors use, once:

- ``zwlr_foreign_toplevel_manager_v1`` (wlroots compositors: sway, Hyprland,
  river, labwc, Wayfire): every toplevel with its ``app_id``, ``title`` and
  state, ``activated`` marking the focused one. The protocol gives no pid.
- ``ext_idle_notifier_v1`` when offered, else ``org_kde_kwin_idle``: a timer of
  ``IDLE_TICK`` seconds; the compositor says ``idled`` when no input came for
  that long and ``resumed`` at the next input. Input stopped ``IDLE_TICK``
  before ``idled`` arrived, so idle time is exact to the timer's resolution.
  Version 2 of ``ext_idle_notifier_v1`` (wayland-protocols 1.36: sway 1.10,
  wlroots 0.18) has a timer that idle inhibitors do not stop
  (``get_input_idle_notification``): idle time comes from it, and a second,
  ordinary timer of the same length tells whether an inhibitor is held (input
  idled, the ordinary one did not). Older protocols are silenced by an
  inhibitor: ``input_seen_through_inhibitors`` is False and the idle sensor
  asks sway's IPC instead (``agent.sensors._swayipc``).

and a daemon thread blocks on the socket, applying events to plain Python
state under a lock. The sampler only reads that state: no Wayland call on the
sampling path, no cost while nothing happens. All Wayland calls after connect
happen in the reader thread, except ``disconnect`` after it ended.

When the compositor goes away the thread ends and the sensors answer "no
window" / unknown; the connection is retried with backoff, so an agent started
before the compositor (a user unit) or across a compositor restart picks it up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from worklens.agent.sensors._select import BackendUnavailable

log = logging.getLogger(__name__)

IDLE_TICK = 1.0             # seconds of no input before the compositor says "idled"
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 10.0
TOPLEVEL_MANAGER = "zwlr_foreign_toplevel_manager_v1"
EXT_IDLE = "ext_idle_notifier_v1"
KDE_IDLE = "org_kde_kwin_idle"
ACTIVATED = 2               # zwlr_foreign_toplevel_handle_v1.state.activated
# Both v2 timers fire IDLE_TICK after the last input; the ordinary one may trail the
# input one by a dispatch. Input idle this much longer and the ordinary timer still
# silent means an inhibitor holds it.
INHIBITED_AFTER = IDLE_TICK + 0.5


def _pywayland() -> Any:
    try:
        import pywayland.client
    except ImportError as exc:
        raise BackendUnavailable(
            f"pywayland is not installed ({exc}): pip install 'pywayland>=0.4.17,<0.5' "
            "(a Linux dependency of worklens; the wheel carries libwayland-client)") from None
    return pywayland.client


def display_name(env: Mapping[str, str] | None = None) -> str:
    """``$WAYLAND_DISPLAY`` (a socket name under ``$XDG_RUNTIME_DIR``, or a path)."""
    env = os.environ if env is None else env
    return env.get("WAYLAND_DISPLAY", "")


@dataclass
class Toplevel:
    """What the compositor told us of one window; ``pending`` until its ``done``."""

    app_id: str = ""
    title: str = ""
    activated: bool = False
    pending: dict[str, Any] = field(default_factory=dict)


def parse_states(data: bytes | list[int]) -> set[int]:
    """The ``state`` event's array (native-endian uint32 values) as a set."""
    if isinstance(data, (bytes, bytearray)):
        count = len(data) // 4
        return set(struct.unpack(f"={count}I", bytes(data[:count * 4])))
    return {int(v) for v in data}


class Session:
    """One live connection: the globals bound, the state the events keep."""

    def __init__(self, name: str) -> None:
        client = _pywayland()
        self.name = name
        try:
            self._display = client.Display(name or None)
            self._display.connect()
        except Exception as exc:   # pywayland raises ValueError/RuntimeError on no socket
            raise BackendUnavailable(
                f"cannot connect to Wayland display {name or '$WAYLAND_DISPLAY'} ({exc}): run "
                "the agent in the user's session with WAYLAND_DISPLAY and XDG_RUNTIME_DIR set"
            ) from None
        self._lock = threading.Lock()
        self.toplevels: dict[int, Toplevel] = {}
        self._next_key = 0
        self._objects: list[Any] = []    # proxies kept alive (pywayland frees on GC)
        self.globals: dict[str, tuple[int, int]] = {}
        self.idle_protocol = ""
        self.idle_since: float | None = None  # monotonic time input stopped, while idle
        # ext_idle_notifier_v1 v2 only: is the timer that inhibitors stop idle too?
        self.input_seen_through_inhibitors = False
        self._plain_idle = False
        self.alive = True
        self._wake_r, self._wake_w = os.pipe()
        try:
            self._bind_globals()
        except Exception:
            self._display.disconnect()
            self._close_pipe()
            raise
        self._thread = threading.Thread(target=self._run, name="worklens-wayland", daemon=True)
        self._thread.start()

    # -- set-up (before the reader thread starts) -----------------------------------------
    def _bind_globals(self) -> None:
        registry = self._display.get_registry()
        self._objects.append(registry)
        registry.dispatcher["global"] = self._on_global
        self._display.roundtrip()       # the globals
        self._bind_toplevels(registry)
        self._bind_idle(registry)
        self._display.roundtrip()       # the toplevels that exist now, with their state
        self._display.roundtrip()

    def _on_global(self, _registry: Any, gid: int, interface: str, version: int) -> None:
        self.globals.setdefault(interface, (gid, version))

    def _bind(self, registry: Any, cls: type, most: int) -> Any:
        gid, version = self.globals[cls.name]
        proxy = registry.bind(gid, cls, min(version, most))
        self._objects.append(proxy)
        return proxy

    def _version(self, interface: str, most: int) -> int:
        return min(self.globals[interface][1], most)

    def _bind_toplevels(self, registry: Any) -> None:
        if TOPLEVEL_MANAGER not in self.globals:
            return
        from worklens.agent.sensors._wlproto.wlr_foreign_toplevel_management_unstable_v1 import (
            ZwlrForeignToplevelManagerV1,
        )

        manager = self._bind(registry, ZwlrForeignToplevelManagerV1, 3)
        manager.dispatcher["toplevel"] = self._on_toplevel

    def _bind_idle(self, registry: Any) -> None:
        from pywayland.protocol.wayland import WlSeat

        if "wl_seat" not in self.globals:
            return
        timeout_ms = round(IDLE_TICK * 1000)
        if EXT_IDLE in self.globals:
            from worklens.agent.sensors._wlproto.ext_idle_notify_v1 import ExtIdleNotifierV1

            seat = self._bind(registry, WlSeat, 1)
            notifier = self._bind(registry, ExtIdleNotifierV1, 2)
            if self._version(EXT_IDLE, 2) >= 2:
                timer = notifier.get_input_idle_notification(timeout_ms, seat)
                self._watch_inhibitors(notifier.get_idle_notification(timeout_ms, seat))
            else:
                timer = notifier.get_idle_notification(timeout_ms, seat)
            timer.dispatcher["idled"] = self._on_idle
        elif KDE_IDLE in self.globals:
            from worklens.agent.sensors._wlproto.idle import OrgKdeKwinIdle

            seat = self._bind(registry, WlSeat, 1)
            manager = self._bind(registry, OrgKdeKwinIdle, 1)
            timer = manager.get_idle_timeout(seat, timeout_ms)
            timer.dispatcher["idle"] = self._on_idle
        else:
            return
        timer.dispatcher["resumed"] = self._on_resumed
        self._objects.append(timer)
        self.idle_protocol = EXT_IDLE if EXT_IDLE in self.globals else KDE_IDLE

    def _watch_inhibitors(self, plain: Any) -> None:
        """The ordinary v2 timer: idle only when no inhibitor holds it."""
        def idled(_timer: Any) -> None:
            with self._lock:
                self._plain_idle = True

        def resumed(_timer: Any) -> None:
            with self._lock:
                self._plain_idle = False

        plain.dispatcher["idled"] = idled
        plain.dispatcher["resumed"] = resumed
        self._objects.append(plain)
        self.input_seen_through_inhibitors = True

    # -- events (reader thread) -----------------------------------------------------------
    def _on_toplevel(self, _manager: Any, handle: Any) -> None:
        key = self._next_key
        self._next_key += 1
        record = Toplevel()
        self._objects.append(handle)
        with self._lock:
            self.toplevels[key] = record

        def pending(name: str) -> Callable[..., None]:
            def handler(_handle: Any, value: Any) -> None:
                record.pending[name] = value
            return handler

        def done(_handle: Any) -> None:
            with self._lock:
                if "title" in record.pending:
                    record.title = record.pending["title"]
                if "app_id" in record.pending:
                    record.app_id = record.pending["app_id"]
                if "state" in record.pending:
                    record.activated = ACTIVATED in parse_states(record.pending["state"])
                record.pending.clear()

        def closed(closed_handle: Any) -> None:
            with self._lock:
                self.toplevels.pop(key, None)
            with contextlib.suppress(Exception):
                closed_handle.destroy()
            with contextlib.suppress(ValueError):
                self._objects.remove(handle)

        handle.dispatcher["title"] = pending("title")
        handle.dispatcher["app_id"] = pending("app_id")
        handle.dispatcher["state"] = pending("state")
        handle.dispatcher["done"] = done
        handle.dispatcher["closed"] = closed

    def _on_idle(self, _timer: Any) -> None:
        with self._lock:
            self.idle_since = time.monotonic() - IDLE_TICK

    def _on_resumed(self, _timer: Any) -> None:
        with self._lock:
            self.idle_since = None

    def _run(self) -> None:
        display, fd = self._display, self._display.get_fd()
        try:
            while True:
                display.dispatch(block=False)
                display.flush()
                ready, _, _ = select.select([fd, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                display.dispatch(block=True)
        except Exception as exc:   # the compositor went away (or a protocol error)
            log.warning("lost the Wayland display %s (%s); retrying with backoff",
                        self.name or "$WAYLAND_DISPLAY", exc)
        finally:
            self.alive = False

    # -- reading (any thread) -------------------------------------------------------------
    def focused(self) -> Toplevel | None:
        with self._lock:
            for record in self.toplevels.values():
                if record.activated:
                    return Toplevel(record.app_id, record.title, True)
        return None

    def idle_seconds(self) -> float:
        with self._lock:
            since = self.idle_since
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    def inhibited(self) -> bool | None:
        """Does an idle inhibitor hold the compositor's ordinary idle timer? None when
        the protocol cannot tell (only ``ext_idle_notifier_v1`` version 2 can). It can
        tell only once input has rested ``INHIBITED_AFTER``: before, False."""
        if not self.input_seen_through_inhibitors:
            return None
        with self._lock:
            since, plain_idle = self.idle_since, self._plain_idle
        return (since is not None and not plain_idle
                and time.monotonic() - since >= INHIBITED_AFTER)

    def close(self) -> None:
        if self._thread.is_alive():
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=5)
        self.alive = False
        # Free every proxy while the display lives: pywayland frees them when they are
        # garbage-collected, which after the disconnect would touch freed memory.
        for proxy in reversed(self._objects):
            with contextlib.suppress(Exception):
                proxy._destroy()
        self._objects.clear()
        with contextlib.suppress(Exception):
            self._display.disconnect()
        self._close_pipe()

    def _close_pipe(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


class WaylandConnection:
    """A session that is re-made (with backoff) when the compositor goes away."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic,
                 sway_socket: str = "") -> None:
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._session: Session | None = Session(name)
        self.globals = dict(self._session.globals)
        self._retry_at = 0.0
        self._backoff = FIRST_BACKOFF
        self.users = 0
        self._sway_socket = sway_socket
        self._sway: Any = None          # _swayipc.SwayIpc, opened at the first ask

    def sway(self) -> Any:
        """sway's IPC for this session (``$SWAYSOCK``), one connection shared by the
        sensors; BackendUnavailable when this is not sway."""
        from worklens.agent.sensors import _swayipc

        with self._lock:
            if self._sway is None:
                self._sway = _swayipc.open(self._sway_socket)
            return self._sway

    @property
    def idle_protocol(self) -> str:
        return self._session.idle_protocol if self._session else ""

    @property
    def input_seen_through_inhibitors(self) -> bool:
        """Does idle time stay true while an application inhibits idle (v2)?"""
        return self._session.input_seen_through_inhibitors if self._session else False

    def has(self, interface: str) -> bool:
        return interface in self.globals

    def session(self) -> Session | None:
        """The live session, reconnecting when it died and the backoff allows."""
        with self._lock:
            if self._session is not None and self._session.alive:
                return self._session
            if self._session is not None:
                self._session.close()
                self._session = None
                self._retry_at = self._clock() + self._backoff
            if self._clock() < self._retry_at:
                return None
            try:
                self._session = Session(self.name)
            except BackendUnavailable as exc:
                log.debug("Wayland display still unreachable: %s", exc)
                self._retry_at = self._clock() + self._backoff
                self._backoff = min(self._backoff * 2, MAX_BACKOFF)
                return None
            log.info("reconnected to Wayland display %s", self.name or "$WAYLAND_DISPLAY")
            self._backoff = FIRST_BACKOFF
            return self._session

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
            if self._sway is not None:
                self._sway.close()
                self._sway = None


_shared: dict[str, WaylandConnection] = {}
_shared_lock = threading.Lock()


def shared(name: str | None = None, env: Mapping[str, str] | None = None) -> WaylandConnection:
    """The process-wide connection to ``name`` (default ``WAYLAND_DISPLAY`` of ``env``);
    BackendUnavailable when there is none. Pair every call with ``release``."""
    name = display_name(env) if name is None else name
    if not name:
        raise BackendUnavailable("no Wayland session (WAYLAND_DISPLAY is not set)")
    with _shared_lock:
        conn = _shared.get(name)
        if conn is None:
            conn = WaylandConnection(name, sway_socket=(os.environ if env is None
                                                        else env).get("SWAYSOCK", ""))
        conn.users += 1
        _shared[name] = conn
        return conn


def release(conn: WaylandConnection) -> None:
    with _shared_lock:
        conn.users -= 1
        if conn.users <= 0:
            _shared.pop(conn.name, None)
            conn.close()
