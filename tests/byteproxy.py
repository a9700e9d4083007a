"""A TCP relay on loopback that counts the bytes crossing it in each direction:
put it between an agent and a collector to measure what goes over the wire
(compression, keepalive) or to cut every connection at once (a network drop).
Used by agent tests and benchmarks/wire_bytes.py.

With ``frames=True`` it also reads the (clear-text) HTTP/2 connection and adds
up bytes per frame type and direction, so a benchmark can say where the bytes
go: DATA (gRPC messages with their 5-byte prefix), HEADERS, WINDOW_UPDATE,
PING, SETTINGS... — each including its 9-byte frame header.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_TYPES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS",
               5: "PUSH_PROMISE", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE",
               9: "CONTINUATION"}


class FrameCounter:
    """Splits one direction of an HTTP/2 byte stream into frames and counts them."""

    def __init__(self, client_side: bool):
        self._buffer = b""
        self._preface = len(PREFACE) if client_side else 0
        self.bytes: collections.Counter[str] = collections.Counter()
        self.frames: collections.Counter[str] = collections.Counter()

    def feed(self, data: bytes) -> None:
        if self._preface:
            take = min(self._preface, len(data))
            self.bytes["preface"] += take
            self._preface -= take
            data = data[take:]
        buffer = self._buffer + data
        offset = 0
        while len(buffer) - offset >= 9:
            length = int.from_bytes(buffer[offset:offset + 3], "big")
            if len(buffer) - offset < 9 + length:
                break
            kind = FRAME_TYPES.get(buffer[offset + 3], f"type{buffer[offset + 3]}")
            if kind in ("PING", "SETTINGS") and buffer[offset + 4] & 1:
                kind += "_ACK"
            self.bytes[kind] += 9 + length
            self.frames[kind] += 1
            offset += 9 + length
        self._buffer = buffer[offset:]


class ByteCountingProxy:
    def __init__(self, upstream: str, *, frames: bool = False, host: str = "127.0.0.1",
                 port: int = 0):
        """Listens on ``host:port`` (a free port by default; the port of a proxy
        that was closed, to bring a front door back)."""
        up_host, _, up_port = upstream.rpartition(":")
        self.upstream = (up_host.strip("[]"), int(up_port))
        self.sent = 0        # client -> server bytes
        self.received = 0    # server -> client bytes
        self.connections = 0
        self._frames = frames
        self.frames_sent: list[FrameCounter] = []      # one per connection, when frames=True
        self.frames_received: list[FrameCounter] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server((host, port))
        self.address = f"{host}:{self._listener.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, name="byteproxy", daemon=True).start()

    @property
    def total(self) -> int:
        return self.sent + self.received

    def frame_totals(self) -> dict[str, dict[str, list[int]]]:
        """{"up"|"down": {frame type: [frames, bytes]}} over all connections so far."""
        out: dict[str, dict[str, list[int]]] = {}
        with self._lock:
            for direction, counters in (("up", self.frames_sent),
                                        ("down", self.frames_received)):
                merged: dict[str, list[int]] = {}
                for counter in counters:
                    for kind, size in counter.bytes.items():
                        entry = merged.setdefault(kind, [0, 0])
                        entry[0] += counter.frames.get(kind, 0)
                        entry[1] += size
                out[direction] = merged
        return out

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            up = FrameCounter(client_side=True) if self._frames else None
            down = FrameCounter(client_side=False) if self._frames else None
            with self._lock:
                self.connections += 1
                self._sockets.update((client, server))
                if up is not None:
                    self.frames_sent.append(up)
                    self.frames_received.append(down)
            threading.Thread(target=self._pump, args=(client, server, "sent", up),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "received", down),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counter: str,
              frames: FrameCounter | None) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    setattr(self, counter, getattr(self, counter) + len(data))
                    if frames is not None:
                        frames.feed(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every open connection (new ones are still accepted)."""
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        # shutdown first: close() alone leaves a listener that a thread is blocked
        # in accept() on still listening (and accepting once more) on Linux
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.cut()
