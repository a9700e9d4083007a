"""A protocol-level fake Wayland compositor for what no compositor here offers:
``ext_idle_notifier_v1`` version 2 (wayland-protocols 1.36; sway 1.10 and
wlroots 0.18, while Debian 12 has sway 1.7). It speaks the Wayland wire format
on a real socket, so the agent's real client (pywayland on libwayland-client)
connects, binds and receives events exactly as from a compositor; the test
decides when each notification object says ``idled`` or ``resumed``.

    with FakeCompositor(notifier_version=2) as fake:
        env = {"WAYLAND_DISPLAY": fake.path}
        ...
        fake.send("input", "idled")

Globals offered: ``wl_seat`` v1 and ``ext_idle_notifier_v1`` (the version asked).
Requests understood: ``wl_display.sync/get_registry``, ``wl_registry.bind``,
``ext_idle_notifier_v1.get_idle_notification`` ("plain") and
``get_input_idle_notification`` ("input"); others are ignored.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

DISPLAY_ID = 1
SEAT, NOTIFIER = "wl_seat", "ext_idle_notifier_v1"
IDLED, RESUMED = 0, 1            # ext_idle_notification_v1 events


def _string(data: bytes, at: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("=I", data, at)
    text = data[at + 4:at + 4 + length - 1].decode()
    return text, at + 4 + (length + 3) // 4 * 4


def _pack_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("=I", len(raw)) + raw + b"\0" * (-len(raw) % 4)


@dataclass
class FakeCompositor:
    notifier_version: int = 2
    path: str = ""
    objects: dict[int, str] = field(default_factory=dict)       # client id -> interface
    notifications: dict[str, list[int]] = field(default_factory=dict)  # kind -> ids
    timeouts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="fake-wayland-")
        self.path = str(Path(self._dir) / "wayland-fake")
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(4)
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    # -- the test's side --------------------------------------------------------------
    def send(self, kind: str, event: str) -> None:
        """``idled``/``resumed`` on every notification object of ``kind`` (input, plain)."""
        opcode = IDLED if event == "idled" else RESUMED
        with self._lock:
            for oid in self.notifications.get(kind, []):
                for client in self._clients:
                    with contextlib.suppress(OSError):
                        client.sendall(self._event(oid, opcode))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.close()
        for client in list(self._clients):
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
                client.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)

    def __enter__(self) -> FakeCompositor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the compositor's side --------------------------------------------------------
    @staticmethod
    def _event(oid: int, opcode: int, payload: bytes = b"") -> bytes:
        return struct.pack("=II", oid, ((8 + len(payload)) << 16) | opcode) + payload

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._clients.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                chunk = client.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= 8:
                oid, word = struct.unpack_from("=II", buffer)
                size, opcode = word >> 16, word & 0xFFFF
                if len(buffer) < size:
                    break
                message, buffer = buffer[8:size], buffer[size:]
                reply = self._request(oid, opcode, message)
                if reply:
                    with self._lock:
                        client.sendall(reply)

    def _request(self, oid: int, opcode: int, args: bytes) -> bytes:
        interface = "wl_display" if oid == DISPLAY_ID else self.objects.get(oid, "")
        if interface == "wl_display" and opcode == 0:        # sync(callback)
            (callback,) = struct.unpack_from("=I", args)
            return (self._event(callback, 0, struct.pack("=I", 1))        # done(serial)
                    + self._event(DISPLAY_ID, 1, struct.pack("=I", callback)))  # delete_id
        if interface == "wl_display" and opcode == 1:        # get_registry(registry)
            (registry,) = struct.unpack_from("=I", args)
            self.objects[registry] = "wl_registry"
            return b"".join(
                self._event(registry, 0, struct.pack("=I", name) + _pack_string(iface)
                            + struct.pack("=I", version))
                for name, iface, version in ((1, SEAT, 1),
                                             (2, NOTIFIER, self.notifier_version)))
        if interface == "wl_registry" and opcode == 0:       # bind(name, iface, version, id)
            _name, at = struct.unpack_from("=I", args)[0], 4
            iface, at = _string(args, at)
            _version, new_id = struct.unpack_from("=II", args, at)
            self.objects[new_id] = iface
            return b""
        if interface == NOTIFIER and opcode in (1, 2):       # get_(input_)idle_notification
            new_id, timeout, _seat = struct.unpack_from("=III", args)
            kind = "plain" if opcode == 1 else "input"
            with self._lock:
                self.objects[new_id] = "ext_idle_notification_v1"
                self.notifications.setdefault(kind, []).append(new_id)
                self.timeouts.append(timeout)
        return b""
