"""Choosing a sensor backend, the way pynput's ``backend()`` does: by platform,
overridable by configuration or an environment variable, and when a backend
cannot load, an error that tells IT what to install or enable.

The choice is shared by ``window`` and ``idle`` so both read the same rules.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class BackendUnavailable(Exception):
    """A backend cannot run here; the message says why and how to fix it."""


class DisplayNotReady(BackendUnavailable):
    """The X display cannot be reached now; it may be later (retry)."""

    def __init__(self, message: str, problem: str = "") -> None:
        super().__init__(message)
        self.problem = problem   # python-xlib's own words, e.g. "[Errno 2] No such file..."


def display_label(display_name: str | None) -> str:
    """The display's name for people: ``:0`` rather than None."""
    return display_name or os.environ.get("DISPLAY") or "$DISPLAY"


def waiting_reason(label: str, problem: str = "") -> str:
    """The status line of a sensor waiting for its display."""
    why = f" ({problem})" if problem else ""
    return f"waiting for X display {label}{why}; it is picked up when it appears"


@dataclass(frozen=True)
class SensorStatus:
    """What one sensor does on this machine, for ``worklens-agent status``."""

    name: str          # "window", "idle", "input", "processes"
    backend: str       # the backend in use, e.g. "x11", "logind", "none"
    available: bool    # False: the sensor reports nothing
    reason: str = ""   # why it is unavailable (with the fix), or a detail


def backend_status(kind: str, backend: Any) -> SensorStatus:
    """What an open backend does now. A backend may be ``waiting`` (e.g. for an X
    display that is not up yet): named, but not available, and its detail says why."""
    waiting = bool(getattr(backend, "waiting", False))
    return SensorStatus(kind, backend.name, not waiting, getattr(backend, "detail", ""))


# The order in which backends are tried, best first, per session kind: data in
# one place (awatcher's lesson: its bugs came from this order being wrong).
# In a Wayland session the compositor's own interfaces come before X11, which
# under XWayland would see only X clients (awatcher#47); "x11" is tried there
# only when DISPLAY is set too. See docs/desktops.md.
ORDER: dict[tuple[str, str], tuple[str, ...]] = {
    ("window", "wayland"): ("wlroots", "gnome", "kde", "x11"),
    ("idle", "wayland"): ("wayland", "gnome", "x11", "logind"),
    ("window", "x11"): ("x11",),
    ("idle", "x11"): ("x11", "logind"),
    ("window", "console"): (),
    ("idle", "console"): ("logind",),
}


def session_kind(env: Mapping[str, str] | None = None) -> str:
    """``wayland``, ``x11`` or ``console`` (no display at all) for a Linux session."""
    env = os.environ if env is None else env
    if env.get("WAYLAND_DISPLAY"):
        return "wayland"
    return "x11" if env.get("DISPLAY") else "console"


def default_backends(kind: str, platform: str = sys.platform,
                     env: Mapping[str, str] | None = None) -> list[str]:
    """Backends to try, best first, for this platform and session."""
    env = os.environ if env is None else env
    if platform == "win32":
        return ["win32"]
    if platform == "darwin":
        return ["darwin"]
    names = ORDER.get((kind, session_kind(env)), ())
    return [n for n in names if n != "x11" or env.get("DISPLAY")]


def no_display_reason(env: Mapping[str, str] | None = None) -> str:
    """Why a Linux session has no X display, phrased as a fix."""
    env = os.environ if env is None else env
    if env.get("WAYLAND_DISPLAY"):
        return ("Wayland session without X: enable XWayland (and set DISPLAY) so the "
                "agent can see the focused window")
    return "no X display: set DISPLAY to the user's X session (e.g. DISPLAY=:0)"


def forced_backends(kind: str, configured: str = "",
                    env: Mapping[str, str] | None = None) -> list[str]:
    """The backends configuration asks for, in order (empty: automatic).
    ``WORKLENS_<KIND>_BACKEND`` beats the configured value (``[sensors] <kind>``,
    else the older ``[sampling] <kind>_backend``); either may be a comma-separated
    list tried in order, like the automatic one."""
    env = os.environ if env is None else env
    value = (env.get(f"WORKLENS_{kind.upper()}_BACKEND") or configured or "").strip().lower()
    return [name.strip() for name in value.split(",") if name.strip()]


def forced_backend(kind: str, configured: str, env: Mapping[str, str] | None = None) -> str:
    """The first forced backend, or "" (automatic)."""
    names = forced_backends(kind, configured, env)
    return names[0] if names else ""


def configured_backend(cfg: Any, kind: str) -> str:
    """``[sensors] <kind>``, else the older ``[sampling] <kind>_backend``."""
    if cfg is None:
        return ""
    sensors = getattr(cfg, "sensors", None)
    value = getattr(sensors, kind, "") if sensors is not None else ""
    return value or getattr(cfg.sampling, f"{kind}_backend", "")


def open_backend(package: str, kind: str, configured: str = "",
                 env: Mapping[str, str] | None = None, platform: str = sys.platform,
                 **options: Any) -> tuple[Any, SensorStatus]:
    """Open the chosen (or the best working) backend of ``package``.

    Never raises for an unavailable backend: the agent falls back to the
    ``none`` backend and the returned status says why, so that one missing
    sensor never stops the others.
    """
    env = os.environ if env is None else env
    names = forced_backends(kind, configured, env) or default_backends(kind, platform, env)
    reasons: list[str] = []
    if not names and platform.startswith("linux"):
        reasons.append(no_display_reason(env))
    for name in names:
        if name == "none":
            reasons.append("disabled by configuration")
            break
        try:
            module = importlib.import_module(f"{package}._{name}")
        except ModuleNotFoundError:
            reasons.append(f"unknown {kind} backend {name!r}")
            continue
        try:
            backend = module.open(env=env, **options)
        except BackendUnavailable as exc:
            reasons.append(f"{name}: {exc}")
            continue
        status = backend_status(kind, backend)
        if reasons:   # say why the better ones did not win
            tried = "; ".join(reasons)
            status = SensorStatus(kind, status.backend, status.available,
                                  f"{status.reason}; not used: {tried}" if status.reason
                                  else f"not used: {tried}")
        return backend, status
    if (kind == "window" and platform.startswith("linux") and env.get("WAYLAND_DISPLAY")
            and not env.get("DISPLAY") and "none" not in names):
        reasons.append(no_display_reason(env))     # the last resort: XWayland's X11
    none = importlib.import_module(f"{package}._none").open()
    reason = "; ".join(reasons) or "no backend for this platform"
    log.warning("%s sensor unavailable: %s", kind, reason)
    return none, SensorStatus(kind, "none", False, reason)
