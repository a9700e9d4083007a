"""Keyboard and mouse input COUNTS: one counter, one backend module per platform.

- ``_x11``: X11 (Linux/BSD desktops, XWayland), read straight from the X RECORD
  extension and counted without decoding a single event. Not pynput: its X11
  listeners decode every press and release, which cost more CPU than all of
  the agent's sampling (see ``_x11``'s docstring for the figures).
- ``_pynput``: Windows and macOS, through pynput's listeners.
- ``none``: no display (a server), a Wayland session, or disabled. Wayland
  gives no unprivileged client the input of other programs (and X11's RECORD
  under XWayland sees only X clients' input), so there the counts are
  *unavailable*, and ``status`` says so rather than showing zeros as measured.

Chosen by platform and session, or forced with ``WORKLENS_INPUT_BACKEND`` /
``[sensors] input`` (``x11``, ``pynput``, ``none``), like the window and idle
sensors.

Privacy by construction: backends only ever add to four integers. They never
look at, keep, log or pass on which key was pressed or where the pointer went;
the agent learns "37 key presses in this span" and nothing more.

Listeners run in their own threads. If the display goes away (or is not up
yet when the agent starts) ``ensure_running()``, called by the sampler every
tick, reconnects with backoff; meanwhile the status says what it waits for.
Outside the monitoring schedule the agent stops them.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping

from worklens.agent.sensors._select import (
    BackendUnavailable,
    DisplayNotReady,
    SensorStatus,
    display_label,
    forced_backend,
    no_display_reason,
    waiting_reason,
)
from worklens.agent.sensors.input._base import NO_INPUT, InputCounts, InputListener, Tally

__all__ = ["NO_INPUT", "InputCounter", "InputCounts", "choose_backend", "probe"]

log = logging.getLogger(__name__)
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 10.0          # waiting for a display: a failed connect is nearly free
MAX_BROKEN_BACKOFF = 300.0  # a backend that connected but cannot listen (no RECORD...)


WAYLAND_REASON = ("input counts unavailable on Wayland (not zero: not measured): the "
                  "compositor gives no unprivileged program other programs' input; "
                  "windows and idle time are still recorded")


def choose_backend(env: Mapping[str, str] | None = None, platform: str = sys.platform,
                   configured: str = "") -> str:
    """``WORKLENS_INPUT_BACKEND``, else ``[sensors] input``, else the platform's backend."""
    env = os.environ if env is None else env
    forced = forced_backend("input", configured, env)
    if forced:
        return forced
    if platform in ("win32", "darwin"):
        return "pynput"
    if env.get("WAYLAND_DISPLAY"):
        return "none"
    return "x11" if env.get("DISPLAY") else "none"


class InputCounter:
    """Counts input events through the chosen backend; ``take()`` hands the counts
    since the last call to the sampler."""

    def __init__(self, backend: str | None = None, display: str | None = None,
                 env: Mapping[str, str] | None = None, platform: str = sys.platform,
                 clock: Callable[[], float] = time.monotonic, configured: str = "") -> None:
        env = os.environ if env is None else env
        self.backend_name = backend or choose_backend(env, platform, configured)
        self._configured = configured
        self._env = env
        self._display = display
        self._clock = clock
        self._tally = Tally()
        self._listener: InputListener | None = None
        self._retry_at = 0.0
        self._backoff = FIRST_BACKOFF
        self._lost_logged = False
        self._waited = False
        self.status = SensorStatus("input", self.backend_name, False, "not started")

    def start(self) -> SensorStatus:
        """Start listening; never raises (the status says what went wrong)."""
        if self.running():
            return self.status
        self._close_listener()
        name = self.backend_name
        try:
            module = self._module()
            if module is None:
                return self.status
            self._listener = module.open(self._tally, display=self._display)
        except DisplayNotReady as exc:
            self._waited = True
            self._failed(MAX_BACKOFF, waiting_reason(self._label(), exc.problem))
        except BackendUnavailable as exc:
            self._failed(MAX_BROKEN_BACKOFF, str(exc))
        else:
            if self._waited:
                log.info("input counting started on display %s", self._label())
                self._waited = False
            self.status = SensorStatus("input", name, True, self._listener.detail)
        return self.status

    def _module(self):
        """The backend module, or None (with the status saying why) for none/unknown."""
        name = self.backend_name
        if name == "none":
            forced = forced_backend("input", self._configured, self._env)
            if forced:
                reason = "disabled by configuration"
            elif self._env.get("WAYLAND_DISPLAY"):
                reason = WAYLAND_REASON
            else:
                reason = no_display_reason(self._env)
            self.status = SensorStatus("input", "none", False, reason)
            return None
        try:
            return importlib.import_module(f"{__name__}._{name}")
        except ModuleNotFoundError:
            self.status = SensorStatus("input", "none", False, f"unknown input backend {name!r}")
            return None

    def _failed(self, max_backoff: float, reason: str) -> None:
        self.status = SensorStatus("input", self.backend_name, False, reason)
        self._retry_at = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2, max_backoff)

    def _label(self) -> str:
        return display_label(self._display or self._env.get("DISPLAY"))

    def running(self) -> bool:
        return self._listener is not None and self._listener.alive()

    def ensure_running(self) -> None:
        """Restart a listener that ended with its display (or start one that could
        not start yet), with exponential backoff; cheap when all is well."""
        if self._listener is not None and self._listener.alive():
            if self._backoff != FIRST_BACKOFF and self._clock() >= self._retry_at:
                self._backoff = FIRST_BACKOFF  # healthy past the last retry: reset
                self._lost_logged = False
            return
        if self.status.backend == "none" or self._clock() < self._retry_at:
            return
        if self._listener is not None and not self._lost_logged:
            log.info("input counting stopped (display lost?); restarting with backoff")
            self._lost_logged = True
            self._waited = True
        self.start()
        if self._listener is not None:
            self._retry_at = self._clock() + self._backoff   # a listener that dies at once
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)

    def take(self) -> InputCounts:
        """The counts since the last call, resetting them."""
        return self._tally.take()

    def stop(self) -> None:
        """Stop listening now (not at the next input event); drop uncollected counts."""
        self._close_listener()
        self._tally.take()  # counts from a stopped period belong to no span

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()


def probe(configured: str = "") -> SensorStatus:
    """Can input be counted here? Starts and stops the backend once (for status)."""
    counter = InputCounter(configured=configured)
    status = counter.start()
    counter.stop()
    return status
