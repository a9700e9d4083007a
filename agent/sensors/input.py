"""Keyboard and mouse input COUNTS, via pynput listeners.

Privacy by construction: the listener callbacks only add one to an integer.
They never look at, keep, log or pass on which key was pressed or where the
pointer went; the agent learns "37 key presses in this span" and nothing more.

Listeners run in their own threads (pynput's). If the display goes away their
threads end; ``ensure_running()`` (called by the sampler) restarts them with
backoff once it is back. Outside the monitoring schedule the agent stops them.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.sensors._select import SensorStatus

log = logging.getLogger(__name__)
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
READY_TIMEOUT = 2.0


@dataclass(frozen=True)
class InputCounts:
    key_presses: int = 0
    clicks: int = 0
    mouse_moves: int = 0
    scrolls: int = 0

    def __add__(self, other: InputCounts) -> InputCounts:
        return InputCounts(self.key_presses + other.key_presses, self.clicks + other.clicks,
                           self.mouse_moves + other.mouse_moves, self.scrolls + other.scrolls)


NO_INPUT = InputCounts()


def _load_pynput() -> tuple[Any, Any]:
    """pynput's keyboard and mouse modules; importing them connects to the display."""
    from pynput import keyboard, mouse

    return keyboard, mouse


def _quiet(listener_cls: type) -> type:
    """A listener whose thread ends silently when its display dies, instead of
    printing a traceback (pynput's X listener raises while cleaning up)."""

    class QuietListener(listener_cls):  # type: ignore[misc, valid-type]
        def run(self) -> None:
            try:
                super().run()
            except Exception as exc:  # the display went away; ensure_running restarts us
                log.debug("input listener ended: %s", exc)

    return QuietListener


def probe() -> SensorStatus:
    """Can the listeners run here? Starts and stops them once (for status)."""
    counter = InputCounter()
    status = counter.start()
    counter.stop()
    if status.available:
        return SensorStatus("input", "pynput", True, "counts only: key presses, clicks, "
                            "mouse moves, scrolls (never which keys)")
    return status


def _reason(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (f"pynput cannot listen ({first}): on Linux set DISPLAY to the user's X session "
            "(on Wayland enable XWayland); on macOS grant Accessibility/Input Monitoring")


class InputCounter:
    """Counts input events from pynput's keyboard and mouse listeners."""

    def __init__(self, loader: Callable[[], tuple[Any, Any]] = _load_pynput,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._loader = loader
        self._clock = clock
        self._lock = threading.Lock()
        self._keys = self._clicks = self._moves = self._scrolls = 0
        self._listeners: list[Any] = []
        self._retry_at = 0.0
        self._backoff = FIRST_BACKOFF
        self._lost_logged = False
        self.status = SensorStatus("input", "pynput", False, "not started")

    # Callbacks: count, nothing else. The arguments (key, position) are ignored.
    def _on_press(self, *_ignored: object) -> None:
        with self._lock:
            self._keys += 1

    def _on_click(self, _x: object, _y: object, _button: object, pressed: bool,
                  *_ignored: object) -> None:
        if pressed:
            with self._lock:
                self._clicks += 1

    def _on_move(self, *_ignored: object) -> None:
        with self._lock:
            self._moves += 1

    def _on_scroll(self, *_ignored: object) -> None:
        with self._lock:
            self._scrolls += 1

    def start(self) -> SensorStatus:
        """Start both listeners; never raises (the status says what went wrong)."""
        try:
            keyboard, mouse = self._loader()
            listeners = [
                _quiet(keyboard.Listener)(on_press=self._on_press),
                _quiet(mouse.Listener)(on_click=self._on_click, on_move=self._on_move,
                                       on_scroll=self._on_scroll),
            ]
            for listener in listeners:   # one at a time (see _wait_ready)
                listener.daemon = True
                listener.start()
                self._listeners.append(listener)
                self._wait_ready()
        except Exception as exc:  # no display, no permission: run on without counts
            self.stop()
            self.status = SensorStatus("input", "pynput", False, _reason(exc))
            return self.status
        self.status = SensorStatus("input", "pynput", True, "counts only")
        return self.status

    def _wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until the listeners listen, or raise if one died (e.g. its display
        is gone: pynput connects inside the listener thread, not in ``start``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not all(lst.is_alive() for lst in self._listeners):
                raise RuntimeError("cannot connect to the display")
            if all(getattr(lst, "_ready", True) for lst in self._listeners):
                return
            time.sleep(0.01)

    def running(self) -> bool:
        return bool(self._listeners) and all(lst.is_alive() for lst in self._listeners)

    def ensure_running(self) -> None:
        """Restart listeners that died with their display, with exponential backoff
        (a listener on a dead display starts fine and dies at once)."""
        now = self._clock()
        if self.running():
            if now >= self._retry_at:
                self._backoff = FIRST_BACKOFF  # healthy past the last retry: reset
                self._lost_logged = False
            return
        if now < self._retry_at:
            return
        if self._listeners and not self._lost_logged:
            log.info("input listeners stopped (display lost?); restarting with backoff")
            self._lost_logged = True
        self.stop()
        self.start()
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)

    def take(self) -> InputCounts:
        """The counts since the last call, resetting them."""
        with self._lock:
            counts = InputCounts(self._keys, self._clicks, self._moves, self._scrolls)
            self._keys = self._clicks = self._moves = self._scrolls = 0
        return counts

    def stop(self) -> None:
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            # pynput's stop() waits forever for a listener that never got ready
            if listener.is_alive() and getattr(listener, "_ready", True):
                try:
                    listener.stop()
                except Exception as exc:  # its display may be gone already
                    log.debug("stopping input listener: %s", exc)
        for listener in listeners:
            if listener is threading.current_thread():
                continue
            listener.join(timeout=0.2)
            if listener.is_alive():
                _unblock(listener)
                listener.join(timeout=2)
        self.take()  # counts from a stopped period belong to no span


def _unblock(listener: Any) -> None:
    """End a pynput X11 listener now.

    Its stop request is queued on the connection its own thread is blocked
    reading, so it only takes effect at the next input event; shutting that
    connection's socket wakes the thread, which then ends quietly.
    """
    control = getattr(listener, "_display_stop", None)
    if control is not None:  # its cleanup then errs on the context the server freed
        control.set_error_handler(lambda *_args: None)
    record = getattr(listener, "_display_record", None)
    sock = getattr(getattr(record, "display", None), "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
