"""Call: the microphone is in use, from PulseAudio (or PipeWire's pulse server).

A recording stream on a real input is a "source-output" whose source is not a
``.monitor`` of an output (screen recorders and level meters record those).
``pactl`` answers that, through whatever server the session uses (PulseAudio or
pipewire-pulse). Only "is some microphone recording" is kept: never which
program, never any audio.

``pactl`` is a program start, so this signal is checked at most every
``CHECK_EVERY`` window intervals (10 s at the default 1 s) while the person is
idle, never while there is input.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable

from worklens.agent.sensors.passive._base import CALL, Signal, Unavailable
from worklens.agent.sensors.window._base import WindowInfo

log = logging.getLogger(__name__)

CHECK_EVERY = 10        # window intervals
PACTL_TIMEOUT_S = 2.0

Runner = Callable[[list[str]], str]


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=PACTL_TIMEOUT_S,
                          check=True, stdin=subprocess.DEVNULL)
    return done.stdout


def microphone_in_use(source_outputs: str, sources: str) -> bool:
    """From ``pactl list source-outputs short`` (index, source index, ...) and
    ``pactl list sources short`` (index, name, ...): does a stream record from a
    source that is not a monitor?"""
    monitors = set()
    for line in sources.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[1].endswith(".monitor"):
            monitors.add(fields[0])
    for line in source_outputs.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[1] not in monitors:
            return True
    return False


class PulseMicrophone(Signal):
    reason = CALL
    backend = "pulseaudio"
    def __init__(self, run: Runner = _run, pactl: str = "pactl",
                 interval: float = 1.0) -> None:
        self._run = run
        self._pactl = pactl
        self.every = CHECK_EVERY * interval
        self.detail = "recording streams (pactl; PulseAudio or PipeWire)"

    @classmethod
    def open(cls, run: Runner = _run, interval: float = 1.0) -> Signal:
        pactl = shutil.which("pactl")
        if pactl is None:
            return Unavailable(CALL, "pulseaudio",
                               "pactl not found: install pulseaudio-utils (works with "
                               "PulseAudio and PipeWire's pulse server)")
        signal = cls(run, pactl, interval)
        try:
            signal._ask()
        except (OSError, subprocess.SubprocessError) as exc:
            return Unavailable(CALL, "pulseaudio", f"no sound server answers pactl: {exc}")
        return signal

    def engaged(self, window: WindowInfo | None) -> bool:
        try:
            return self._ask()
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("pactl failed: %s", exc)
            return False

    def _ask(self) -> bool:
        outputs = self._run([self._pactl, "list", "source-outputs", "short"])
        if not outputs.strip():
            return False
        return microphone_in_use(outputs, self._run([self._pactl, "list", "sources", "short"]))
