"""Input counts on Windows and macOS from pynput's keyboard and mouse listeners.

pynput hooks the platform's input APIs for us (low-level hooks on Windows, a
Quartz event tap on macOS). It is not used on X11: there its listeners decode
every press *and* release into Key objects (keysym lookups included) through
python-xlib's generic reply parser, which cost the agent more CPU than all of
its sampling (see ``_x11`` for the reader we use instead). It still runs on X11
when forced with ``WORKLENS_INPUT_BACKEND=pynput``, which is how its counting
is tested here on a real X server.

Privacy by construction: the callbacks only add one to a tally. They never
look at, keep, log or pass on which key was pressed or where the pointer went.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any

from worklens.agent.sensors._select import BackendUnavailable
from worklens.agent.sensors.input._base import InputListener, Tally

log = logging.getLogger(__name__)
READY_TIMEOUT = 2.0


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
            except Exception as exc:  # the display went away; the counter restarts us
                log.debug("input listener ended: %s", exc)

    return QuietListener


def _reason(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (f"pynput cannot listen ({first}): on macOS grant Accessibility/Input Monitoring; "
            "on Linux set DISPLAY to the user's X session")


class PynputListeners(InputListener):
    """pynput's keyboard and mouse listener threads, counting into a tally."""

    name = "pynput"

    def __init__(self, tally: Tally) -> None:
        self._tally = tally
        self._listeners: list[Any] = []

    # Callbacks: count, nothing else. The arguments (key, position) are ignored.
    def _on_press(self, *_ignored: object) -> None:
        self._tally.add(keys=1)

    def _on_click(self, _x: object, _y: object, _button: object, pressed: bool,
                  *_ignored: object) -> None:
        if pressed:
            self._tally.add(clicks=1)

    def _on_move(self, *_ignored: object) -> None:
        self._tally.add(moves=1)

    def _on_scroll(self, *_ignored: object) -> None:
        self._tally.add(scrolls=1)

    def start(self, loader=_load_pynput) -> None:
        keyboard, mouse = loader()
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

    def alive(self) -> bool:
        return bool(self._listeners) and all(lst.is_alive() for lst in self._listeners)

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


def open(tally: Tally, loader=_load_pynput, **_options) -> PynputListeners:
    """Start pynput's listeners; BackendUnavailable (saying what to fix) if they cannot."""
    listeners = PynputListeners(tally)
    try:
        listeners.start(loader)
    except Exception as exc:  # no display, no permission
        listeners.stop()
        raise BackendUnavailable(_reason(exc)) from None
    return listeners
