"""Is the person engaged although nobody touches the keyboard or mouse?

When input has rested past the idle threshold, the sampler asks this package
whether one of four signals says the person is still evidently engaged; if so
the time is PASSIVE (with the signal's class as its reason), not IDLE:

* ``call``      the microphone is in use (a recording stream is open);
* ``media``     an MPRIS player is Playing and its window has focus;
* ``rule``      the focused app is one the operator listed (``[sampling] passive_apps``);
* ``inhibitor`` an application holds an idle inhibitor (GNOME session, logind,
                a Wayland compositor).

Only the class ever leaves this package: never what plays, who is on the call
or any audio. ``[privacy] passive_media``, ``passive_calls`` and
``passive_inhibitors`` turn a signal off (an empty ``passive_apps`` the rule).

Cost: nothing is asked while there is input. While idle, each signal is asked
at most once per ``window_interval`` (the idle sensor's own cadence) and no more
often than its ``every`` (the microphone check runs a program: every 10
intervals),
unless the focused window changed.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from worklens.agent.sensors._select import SensorStatus
from worklens.agent.sensors.passive._base import (
    CALL,
    INHIBITOR,
    MEDIA,
    REASON_NAMES,
    RULE,
    Signal,
    Unavailable,
)
from worklens.agent.sensors.window._base import WindowInfo

log = logging.getLogger(__name__)
__all__ = ["CALL", "INHIBITOR", "MEDIA", "REASON_NAMES", "RULE", "PassiveDetector",
           "RuleSignal", "Signal", "Unavailable", "describe", "open_detector"]

class RuleSignal(Signal):
    """The operator's list: these apps count as passive while focused."""

    reason = RULE
    backend = "config"

    def __init__(self, apps: Sequence[str]) -> None:
        self._apps = {a.strip().lower() for a in apps if a.strip()}
        self.available = bool(self._apps)
        self.detail = (f"apps: {', '.join(sorted(self._apps))}" if self._apps
                       else "no [sampling] passive_apps configured")

    def engaged(self, window: WindowInfo | None) -> bool:
        return window is not None and window.app.lower() in self._apps


@dataclass
class _Cached:
    signal: Signal
    checked: float = -1e18
    value: bool = False
    window: tuple | None = None     # the focused window the value was found for


class PassiveDetector:
    """The enabled signals, asked in a fixed order (the first that holds gives the
    reason): call, media, rule, inhibitor — the most specific first."""

    def __init__(self, signals: Sequence[Signal], interval: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._signals = [_Cached(s) for s in signals]
        self._interval = interval
        self._monotonic = monotonic

    def reason(self, window: WindowInfo | None) -> int:
        """The reason class of the first signal that holds now, or 0."""
        now = self._monotonic()
        focus = (window.pid, window.app) if window is not None else None
        for cached in self._signals:
            signal = cached.signal
            if not signal.available:
                continue
            if focus != cached.window or now - cached.checked >= max(self._interval,
                                                                     signal.every):
                cached.value = _safely(signal, window)
                cached.checked, cached.window = now, focus
            if cached.value:
                return signal.reason
        return 0

    def forget(self) -> None:
        """Input came back: the next idle stretch asks every signal afresh."""
        for cached in self._signals:
            cached.checked = -1e18

    @property
    def statuses(self) -> list[SensorStatus]:
        return [SensorStatus(f"passive {REASON_NAMES[c.signal.reason]}", c.signal.backend,
                             c.signal.available, c.signal.detail) for c in self._signals]

    def close(self) -> None:
        for cached in self._signals:
            cached.signal.close()


def _safely(signal: Signal, window: WindowInfo | None) -> bool:
    try:
        return bool(signal.engaged(window))
    except Exception:   # a signal's bug must never stop sampling
        log.debug("passive signal %s failed", signal.backend, exc_info=True)
        return False


def open_detector(cfg, platform: str = sys.platform) -> PassiveDetector:
    """The signals this platform and configuration allow, in the detector's order."""
    privacy, sampling = cfg.privacy, cfg.sampling
    signals: list[Signal] = []
    signals.append(_call_signal(platform, sampling.window_interval) if privacy.passive_calls
                   else Unavailable(CALL, "none", "turned off by [privacy] passive_calls"))
    signals.append(_media_signal(platform) if privacy.passive_media
                   else Unavailable(MEDIA, "none", "turned off by [privacy] passive_media"))
    signals.append(RuleSignal(sampling.passive_apps))
    signals.append(_inhibitor_signal(platform) if privacy.passive_inhibitors
                   else Unavailable(INHIBITOR, "none",
                                    "turned off by [privacy] passive_inhibitors"))
    return PassiveDetector(signals, cfg.sampling.window_interval)


def describe(cfg) -> list[SensorStatus]:
    """What each passive signal can do here (opened and closed again)."""
    detector = open_detector(cfg)
    try:
        return detector.statuses
    finally:
        detector.close()


def _call_signal(platform: str, interval: float) -> Signal:
    if platform == "win32":
        from worklens.agent.sensors.passive._win32 import ConsentStoreMicrophone
        return ConsentStoreMicrophone()
    if platform == "darwin":
        from worklens.agent.sensors.passive._darwin import CoreAudioMicrophone
        return CoreAudioMicrophone()
    from worklens.agent.sensors.passive._pulse import PulseMicrophone
    return PulseMicrophone.open(interval=interval)


def _media_signal(platform: str) -> Signal:
    if platform in ("win32", "darwin"):
        return Unavailable(MEDIA, "none", "MPRIS is Linux only; not built for this platform")
    from worklens.agent.sensors.passive._dbus import MprisMedia
    return MprisMedia.open()


class AnyOf(Signal):
    """Several ways to see one signal (D-Bus inhibitors and the Wayland compositor's):
    it holds when one of them does."""

    def __init__(self, signals: Sequence[Signal]) -> None:
        self._signals = list(signals)
        self.reason = self._signals[0].reason
        self.backend = "+".join(s.backend for s in self._signals)
        self.detail = "; ".join(s.detail for s in self._signals)

    def engaged(self, window: WindowInfo | None) -> bool:
        return any(_safely(s, window) for s in self._signals)

    def close(self) -> None:
        for signal in self._signals:
            signal.close()


def _either(signals: Sequence[Signal]) -> Signal:
    """The available ones as one signal, or the first's Unavailable with every reason."""
    available = [s for s in signals if s.available]
    if len(available) == 1:
        return available[0]
    if available:
        return AnyOf(available)
    first = signals[0]
    return Unavailable(first.reason, first.backend, "; ".join(s.detail for s in signals))


def _inhibitor_signal(platform: str) -> Signal:
    if platform in ("win32", "darwin"):
        return Unavailable(INHIBITOR, "none", "idle inhibitors: not built for this platform")
    from worklens.agent.sensors.passive import _wayland
    from worklens.agent.sensors.passive._dbus import IdleInhibitors
    return _either([IdleInhibitors.open(), _wayland.open()])
