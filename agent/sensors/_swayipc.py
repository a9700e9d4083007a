"""sway's IPC socket (``$SWAYSOCK``, the i3 IPC protocol): which windows hold an
idle inhibitor, and the process of the focused window.

Why: sway before 1.10 offers only idle protocols that an inhibitor silences
(``org_kde_kwin_idle``; ``ext_idle_notifier_v1`` version 1 from 1.8). While a
window holds a ``zwp_idle_inhibitor_v1`` (a playing video, a call) the
compositor reports neither idleness nor input, so the agent needs to know that
it is being told nothing. sway's tree says it per window: ``inhibit_idle`` is
true while that window's inhibitor is in force (sway counts an application's
inhibitor only while its window is visible).

The foreign-toplevel protocol the window sensor reads gives no process id;
sway's tree has it (``pid`` of each window), so on sway the focused window gets
its process and executable like on X11.

Only two booleans and the focused window's (app id, pid) leave this module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from worklens.agent.sensors._select import BackendUnavailable

log = logging.getLogger(__name__)

MAGIC = b"i3-ipc"
HEADER = struct.Struct("=6sII")     # magic, payload length, message type (native order)
GET_TREE = 4
TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Inhibitors:
    """What sway's tree says of idle inhibitors now."""

    focused: bool       # the focused window holds one
    any: bool           # some window does


def inhibitors(tree: Mapping[str, Any]) -> Inhibitors:
    """Walk a ``get_tree`` reply: does the focused window, or any window, inhibit idle?"""
    focused = anyone = False
    for node in _windows(tree):
        if node.get("inhibit_idle"):
            anyone = True
            focused = focused or bool(node.get("focused"))
    return Inhibitors(focused, anyone)


def focused_process(tree: Mapping[str, Any]) -> tuple[str, int] | None:
    """(app id, pid) of the focused window in a ``get_tree`` reply (app id "" for
    an Xwayland window), or None when no window has the focus."""
    for node in _windows(tree):
        if node.get("focused"):
            return node.get("app_id") or "", int(node["pid"])
    return None


def _windows(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    stack = [node]
    while stack:
        current = stack.pop()
        if current.get("type") in ("con", "floating_con") and current.get("pid"):
            yield current
        stack.extend(current.get("nodes", ()))
        stack.extend(current.get("floating_nodes", ()))


class SwayIpc:
    """One connection to sway's IPC socket, re-made once when it broke; one per Wayland
    connection (``_wayland.WaylandConnection.sway``), shared by its sensors. The last
    tree is kept for a caller that can use one up to ``max_age`` old (the idle sensor,
    each sample)."""

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._last: tuple[float, dict[str, Any]] | None = None
        self._connect()

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT_S)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise BackendUnavailable(f"cannot connect to sway's IPC socket {self.path} "
                                     f"({exc.strerror or exc})") from None
        self._sock = sock

    def tree(self, max_age: float = 0.0) -> dict[str, Any]:
        """sway's layout tree (``swaymsg -t get_tree``), or the last one read if it is
        at most ``max_age`` seconds old; OSError/ValueError on failure."""
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last[0] <= max_age:
                return self._last[1]
            try:
                tree = self._ask(GET_TREE)
            except (OSError, ValueError):
                self._drop()
                self._connect()         # sway restarted, or a half-read reply: once more
                tree = self._ask(GET_TREE)
            self._last = (now, tree)
            return tree

    def inhibitors(self, max_age: float = 0.0) -> Inhibitors:
        return inhibitors(self.tree(max_age))

    def focused_process(self) -> tuple[str, int] | None:
        return focused_process(self.tree())

    def _ask(self, kind: int) -> dict[str, Any]:
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        self._sock.sendall(HEADER.pack(MAGIC, 0, kind))
        magic, length, _reply = HEADER.unpack(self._read(HEADER.size))
        if magic != MAGIC:
            raise ValueError("not an i3/sway IPC reply")
        return json.loads(self._read(length))

    def _read(self, size: int) -> bytes:
        assert self._sock is not None
        chunks, left = [], size
        while left:
            chunk = self._sock.recv(min(left, 1 << 16))
            if not chunk:
                raise ConnectionError("sway closed its IPC socket")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _drop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def close(self) -> None:
        with self._lock:
            self._drop()


def open(path: str) -> SwayIpc:
    """sway's IPC at ``path`` (the session's ``$SWAYSOCK``, "" when it has none);
    BackendUnavailable when this is not sway."""
    if not path:
        raise BackendUnavailable("not sway (SWAYSOCK is not set)")
    ipc = SwayIpc(path)
    try:
        ipc.tree()
    except (OSError, ValueError) as exc:
        ipc.close()
        raise BackendUnavailable(f"sway's IPC socket {path} does not answer ({exc})") from None
    return ipc
