"""Input COUNTS on X11, read straight off an X RECORD connection.

Why not pynput here (it is what Windows and macOS use): pynput's X11
listeners decode every press *and* release into Key/Button objects (keysym
lookups included) through python-xlib's generic reply parser, two connections
per listener. We only count, and that decoding was most of the agent's CPU
while someone typed: ``benchmarks/agent_footprint.py --duration 120`` (a few
keys a second) measured 0.32 % of a core and 37 MB with pynput, 0.14 % and
34 MB with this reader (0.12 % without typing at all). This reader instead:

- asks the server (one connection) to record only KeyPress, ButtonPress and
  MotionNotify device events: releases are never even sent to us;
- after the RECORD handshake, reads the reply stream with plain ``recv`` and
  lets events gather in the socket buffer for up to ``BATCH_DELAY`` between
  reads, so a burst of mouse motion costs one wake-up, not hundreds;
- counts each reply's events in one pass: ``data[0::32]`` is the type byte of
  every 32-byte event, and ``bytes.count`` tallies them in C. No Python object
  is built per event.

Privacy by construction: of a key event we look at its type byte and nothing
else — never at the key code or any other byte. Of a button press we read the
button number only to tell the wheel (buttons 4-7: scrolls) from clicks. Four
integers are all that is kept, and they go straight into the tally.

If the X server dies the socket closes, the thread ends and ``alive()`` turns
False; the counter (``agent.sensors.input``) reconnects with backoff.
``stop()`` shuts the socket down, which wakes the reading thread at once
rather than at the next input event; closing the connection makes the server
free the recording context with it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import sys
import threading
from typing import Any

from worklens.agent.sensors import _xconn
from worklens.agent.sensors._select import BackendUnavailable
from worklens.agent.sensors.input._base import InputListener, Tally

log = logging.getLogger(__name__)

# X protocol numbers (X11 core protocol and the RECORD extension 1.13)
KEY_PRESS, BUTTON_PRESS, MOTION_NOTIFY = 2, 4, 6
GENERIC_EVENT = 35
REPLY = 1
EVENT_SIZE = 32                      # core events, replies' fixed part and errors
FROM_SERVER, START_OF_DATA, END_OF_DATA = 0, 4, 5
RECORD_ENABLE_CONTEXT = 5
RECORD_ALL_CLIENTS = 3
SCROLL_BUTTONS = frozenset((4, 5, 6, 7))  # wheel up/down/left/right

BATCH_DELAY = 0.05                   # seconds events may wait in the socket buffer
RECV_SIZE = 65536
HANDSHAKE_TIMEOUT = 10.0             # generous: a loaded machine, a busy server


def _device_range(event_type: int) -> dict[str, Any]:
    """A RECORD range selecting one device event type and nothing else."""
    return {"core_requests": (0, 0), "core_replies": (0, 0),
            "ext_requests": (0, 0, 0, 0), "ext_replies": (0, 0, 0, 0),
            "delivered_events": (0, 0), "device_events": (event_type, event_type),
            "errors": (0, 0), "client_started": False, "client_died": False}


class RecordStream:
    """Splits the recording connection's byte stream into replies and counts the
    recorded events' types. ``feed`` takes whatever ``recv`` returned (replies may
    straddle reads) and returns (keys, clicks, moves, scrolls) for complete ones."""

    def __init__(self, byteorder: str = sys.byteorder) -> None:
        self._buf = bytearray()
        self._order = byteorder
        self.started = False     # StartOfData seen: recording is on
        self.ended = False       # EndOfData seen: the context was disabled

    def feed(self, chunk: bytes) -> tuple[int, int, int, int]:
        buf = self._buf
        buf += chunk
        keys = clicks = moves = scrolls = 0
        pos, size = 0, len(buf)
        while size - pos >= EVENT_SIZE:
            kind = buf[pos]
            if kind == REPLY:
                end = pos + EVENT_SIZE + 4 * int.from_bytes(buf[pos + 4:pos + 8], self._order)
                if end > size:
                    break                           # the rest of this reply is still coming
                category = buf[pos + 1]
                if category == FROM_SERVER and end > pos + EVENT_SIZE:
                    types = buf[pos + EVENT_SIZE:end:EVENT_SIZE]   # byte 0 of each event
                    keys += types.count(KEY_PRESS)
                    moves += types.count(MOTION_NOTIFY)
                    if BUTTON_PRESS in types:
                        clicks_here, scrolls_here = _buttons(
                            types, buf[pos + EVENT_SIZE + 1:end:EVENT_SIZE])
                        clicks += clicks_here
                        scrolls += scrolls_here
                elif category == START_OF_DATA:
                    self.started = True
                elif category == END_OF_DATA:
                    self.ended = True
                pos = end
            elif kind & 0x7F == GENERIC_EVENT:      # variable length; not ours to read
                end = pos + EVENT_SIZE + 4 * int.from_bytes(buf[pos + 4:pos + 8], self._order)
                if end > size:
                    break
                pos = end
            else:   # an error, or an event the server sends every client (MappingNotify)
                pos += EVENT_SIZE
        del buf[:pos]
        return keys, clicks, moves, scrolls


def _buttons(types: bytes | bytearray, details: bytes | bytearray) -> tuple[int, int]:
    """(clicks, scrolls) among ButtonPress events: the detail byte of a button
    event is its button number; it is read for button events only."""
    clicks = scrolls = 0
    for event_type, button in zip(types, details, strict=False):
        if event_type == BUTTON_PRESS:
            if button in SCROLL_BUTTONS:
                scrolls += 1
            else:
                clicks += 1
    return clicks, scrolls


class RecordListener(InputListener):
    """One X connection recording device events, read by one daemon thread."""

    name = "x11"

    def __init__(self, tally: Tally, sock: socket.socket, stream: RecordStream) -> None:
        self._tally = tally
        self._sock = sock
        self._stream = stream
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worklens-input-x11",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sock, stream, tally, stopping = self._sock, self._stream, self._tally, self._stopping
        try:
            while not stopping.is_set():
                chunk = sock.recv(RECV_SIZE)
                if not chunk:
                    break                           # the server closed the connection
                keys, clicks, moves, scrolls = stream.feed(chunk)
                if keys or clicks or moves or scrolls:
                    tally.add(keys, clicks, moves, scrolls)
                if stream.ended:
                    break
                stopping.wait(BATCH_DELAY)          # let a burst gather: one wake-up for it
        except OSError as exc:
            if not stopping.is_set():
                log.debug("input recording ended: %s", exc)
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)   # wakes a blocked recv now
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._sock.close()


def open(tally: Tally, display: str | None = None, **_options) -> RecordListener:
    """Connect, start recording and return once the server confirmed it (events
    from then on are counted). DisplayNotReady when the display cannot be reached
    (yet), BackendUnavailable when it lacks the RECORD extension."""
    xdisplay = _xconn.open_display(display)
    sock = xdisplay.display.socket
    try:
        stream, first = _start_recording(xdisplay, sock, _xconn.display_label(display))
    except BaseException:
        with contextlib.suppress(Exception):
            sock.close()
        raise
    tally.add(*first)
    return RecordListener(tally, sock, stream)


def _start_recording(xdisplay: Any, sock: socket.socket, label: str
                     ) -> tuple[RecordStream, tuple[int, int, int, int]]:
    """Create and enable the recording context; the stream, and the counts of any
    events that came in the same read as the server's "recording started"."""
    if not xdisplay.has_extension("RECORD"):
        raise BackendUnavailable(f"X display {label} lacks the RECORD extension, which input "
                                 "counting needs (enable it in the X server configuration)")
    errors: list[Any] = []
    xdisplay.set_error_handler(lambda err, *_args: errors.append(err))
    context = xdisplay.record_create_context(
        0, [RECORD_ALL_CLIENTS],
        [_device_range(KEY_PRESS), _device_range(BUTTON_PRESS), _device_range(MOTION_NOTIFY)])
    xdisplay.sync()                                 # CreateContext errors arrive by now
    if errors:
        raise BackendUnavailable(f"X display {label} refused input recording: {errors[0]}")
    # From here on the connection is ours alone: python-xlib never reads it again.
    stream = RecordStream()
    leftover = bytes(xdisplay.display.data_recv or b"")
    major = xdisplay.display.get_extension_major("RECORD")
    sock.sendall(struct.pack("=BBHI", major, RECORD_ENABLE_CONTEXT, 2, context))
    sock.settimeout(HANDSHAKE_TIMEOUT)
    counts = (0, 0, 0, 0)
    try:
        chunk = leftover
        while not stream.started:
            if not chunk:
                chunk = sock.recv(RECV_SIZE)
                if not chunk:
                    raise _xconn.DisplayNotReady(f"X display {label} closed the connection",
                                                 "closed while starting to record")
            counts = tuple(a + b for a, b in zip(counts, stream.feed(chunk), strict=True))
            chunk = b""
    except TimeoutError:
        raise BackendUnavailable(f"X display {label} did not start input recording") from None
    finally:
        sock.settimeout(None)
    return stream, counts  # type: ignore[return-value]
