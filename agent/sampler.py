"""One sampling tick after another: read the sensors, apply the privacy rules,
merge into spans, hand closed spans to the sink.

The sampler owns the sensors and the span tracker; ``agent.runner`` only
schedules its methods and handles signals. Every method is safe to call from
the scheduler's worker thread while ``stop()`` may come from the main thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from worklens.agent.privacy import Privacy
from worklens.agent.sensors import idle as idle_sensors
from worklens.agent.sensors import window as window_sensors
from worklens.agent.sensors._select import SensorStatus, backend_status, configured_backend
from worklens.agent.sensors.clock import Clock, SleepDetector, wall_ms
from worklens.agent.sensors.idle._base import IdleReading
from worklens.agent.sensors.input import InputCounter
from worklens.agent.sensors.passive import PassiveDetector, open_detector
from worklens.agent.sensors.processes import ProcessSensor
from worklens.agent.sensors.processes import describe as describe_processes
from worklens.agent.sensors.window._base import WindowInfo
from worklens.agent.sink import Record, Sink
from worklens.agent.spans import ACTIVE, IDLE, LOCKED, PASSIVE, Observation, SpanTracker, State

log = logging.getLogger(__name__)
MIN_SLEEP_THRESHOLD = 10.0   # seconds of wall/monotonic drift that mean "the machine slept"
# A flush that sends nothing else cuts the open spans only when they have gone uncut
# this many flush intervals: every batch costs ~60 bytes of gRPC framing whatever it
# carries, a cut part riding along only ~9 (its window is not repeated: the packing's
# "same-window" extension). Measured (benchmarks/wire_bytes.py, simulated agent-day at
# a 30 s flush): this way 94.2 KB with the packing extensions (target 100 KB); before
# them 105.4 KB, and cutting at every flush 126 KB.
# So the collector is at most two flush intervals behind, and as fresh as the last
# flush whenever a flush carries something anyway (a window change, process samples).
# The same cadence keeps the live view honest (collector.reports.live calls an agent
# offline after two flushes without a batch): when such a cut finds nothing at all to
# send (no display, processes sampled less often than the flush), the flush asks for
# an empty batch (~10 bytes) saying the agent runs -- inside the monitoring schedule
# only: outside it the agent says nothing, not even that.
CUT_AFTER_FLUSHES = 1.5


def classify(reading: IdleReading, threshold: float, now_ms: int) -> tuple[State | None, int]:
    """Activity state and since when, from one idle reading.

    IDLE is dated when input stopped (``now - idle_seconds``); ACTIVE is dated
    at the last input, which is when idleness ended.
    """
    if reading.locked:
        return LOCKED, now_ms
    if reading.idle_seconds is None:
        return None, now_ms
    since = now_ms - round(reading.idle_seconds * 1000)
    return (IDLE if reading.idle_seconds >= threshold else ACTIVE), since


class PassiveRule:
    """Turns IDLE into PASSIVE while a passive signal holds (``agent.sensors.passive``).

    Dating, so that nothing overlaps and nothing is squeezed to nothing: passive
    seen as the idle threshold passes is dated back to the last input (like IDLE);
    a signal that comes up during IDLE, changes reason or ends is dated at this
    tick. ``passive_max`` after it began, PASSIVE turns IDLE (dated there) until
    input returns.
    """

    def __init__(self, detector: PassiveDetector | None, passive_max_s: float) -> None:
        self._detector = detector
        self._max_ms = int(passive_max_s * 1000)
        self._last: tuple[State | None, int] = (None, 0)   # state, reason of the last tick
        self._began: int | None = None
        self._capped = False

    def apply(self, state: State | None, since: int, now: int,
              window: WindowInfo | None) -> tuple[State | None, int, int]:
        """(state, since, reason) for this tick."""
        result = self._decide(state, since, now, window)
        self._last = (result[0], result[2])
        return result

    def _decide(self, state, since, now, window) -> tuple[State | None, int, int]:
        last_state, last_reason = self._last
        if state != IDLE or self._detector is None:
            if state == ACTIVE and self._detector is not None:
                self._detector.forget()
            self._began, self._capped = None, False
            return state, since, 0
        if self._capped:
            return IDLE, since, 0
        reason = self._detector.reason(window)
        if not reason:
            self._began = None
            return IDLE, (now if last_state == PASSIVE else since), 0
        if last_state == PASSIVE:
            at = now if reason != last_reason else since
        elif last_state == IDLE:
            at = now
        else:
            at = since                      # the threshold just passed: back to the input
        if self._began is None:
            self._began = at
        if now - self._began >= self._max_ms:
            self._capped = True
            return IDLE, self._began + self._max_ms, 0
        return PASSIVE, at, reason


class Sampler:
    def __init__(self, cfg, sink: Sink, clock: Clock | None = None,
                 input_counter: InputCounter | None = None) -> None:
        self._cfg = cfg
        self._sink = sink
        self._clock = clock or Clock()
        self._privacy = Privacy(cfg.privacy)
        self._threshold = cfg.sampling.idle_threshold
        self._tracker = SpanTracker()
        self._sleep = SleepDetector(self._clock, interval=cfg.sampling.window_interval,
                                    threshold=max(MIN_SLEEP_THRESHOLD,
                                                  3 * cfg.sampling.window_interval))
        self._input = input_counter or InputCounter(
            configured=configured_backend(cfg, "input"))
        self._processes = ProcessSensor(cfg.sampling.top_processes,
                                        is_excluded=self._privacy.is_excluded,
                                        wall=self._clock.wall, monotonic=self._clock.monotonic)
        self._lock = threading.Lock()
        self._window = self._idle = None
        self._in_schedule = False
        self._announced = False
        self._stopped = False
        self._opened: list[SensorStatus] = []
        self._passive: PassiveDetector | None = None
        self._wrote = False               # records written since the last flush
        self._last_cut_ms: int | None = None
        self._started_ms: int | None = None     # the first sample: the spans began there
        self._passive_rule = PassiveRule(None, cfg.sampling.passive_max)

    def start(self) -> list[SensorStatus]:
        """Open the sensors (falling back to ``none`` where one cannot run)."""
        self._window, window_status = window_sensors.open_sensor(self._cfg)
        self._idle, idle_status = idle_sensors.open_sensor(self._cfg)
        self._opened = [window_status, idle_status]
        self._passive = open_detector(self._cfg)
        self._passive_rule = PassiveRule(self._passive, self._cfg.sampling.passive_max)
        self._processes.prime()
        return self.statuses

    @property
    def statuses(self) -> list[SensorStatus]:
        """What each sensor does now: a backend waiting for its X display says so
        until it appears; input listeners run only inside the schedule."""
        opened = [backend_status(status.name, backend) if hasattr(backend, "waiting")
                  else status
                  for backend, status in zip((self._window, self._idle), self._opened,
                                             strict=False)]
        if self._in_schedule or self._stopped:
            input_status = self._input.status
        else:
            input_status = SensorStatus("input", self._input.backend_name, False,
                                        "starts inside the monitoring schedule")
        passive = self._passive.statuses if self._passive is not None else []
        return [*opened, input_status, describe_processes(self._cfg), *passive]

    def sample(self) -> None:
        """The window_interval tick."""
        with self._lock:
            if self._stopped:
                return
            if not self._follow_schedule():
                return
            records: list[Record] = []
            if self._started_ms is None:
                self._started_ms = wall_ms(self._clock)
            gap = self._sleep.check()
            if gap is not None:
                log.info("the machine slept for %.0fs", (gap.end_ms - gap.start_ms) / 1000)
                records += self._tracker.gap(gap)
            self._input.ensure_running()
            reading = self._idle.read()
            focused = None if reading.locked else self._window.active_window()
            window = self._privacy.apply(focused) if focused is not None else None
            counts = self._input.take()
            now = wall_ms(self._clock)
            state, since = classify(reading, self._threshold, now)
            # passive signals see the focused window as it is (pid, app): never sent
            state, since, reason = self._passive_rule.apply(state, since, now, focused)
            records += self._tracker.observe(Observation(now, window, state, since, counts,
                                                         reason))
            self._write(records)

    def _follow_schedule(self) -> bool:
        """Start or stop observing at the schedule's edges; True while inside it."""
        inside = self._privacy.in_schedule(self._clock.local())
        if inside and not self._in_schedule:
            if not self._privacy.schedule.always:
                log.info("inside the monitoring schedule: sampling")
            self._input.start()
            self._sleep.reset()
        elif not inside and (self._in_schedule or not self._announced):
            log.info("outside the monitoring schedule (%s): nothing is sampled until it "
                     "resumes", self._cfg.privacy.schedule)
            self._write(self._tracker.close(wall_ms(self._clock)))
            self._input.stop()
        self._announced = True
        self._in_schedule = inside
        return inside

    def sample_processes(self) -> None:
        """The process_interval tick."""
        with self._lock:
            if self._stopped:
                return
            if not self._privacy.in_schedule(self._clock.local()):
                self._processes.prime()  # the next sample covers in-schedule time only
                return
        records = self._processes.sample()   # slow-ish (all processes): outside the lock
        with self._lock:
            if not self._stopped:
                self._write(records)

    def checkpoint(self) -> None:
        """The flush_interval tick: cut the open spans so the collector sees them
        now (``SpanTracker.cut``) when this flush sends something anyway or they
        went uncut for ``CUT_AFTER_FLUSHES``, and let delivery remember what stays
        open; with nothing at all to send by then, a heartbeat (inside the schedule)."""
        with self._lock:
            if self._stopped:
                return
            now = wall_ms(self._clock)
            if self._last_cut_ms is None:
                self._last_cut_ms = self._started_ms if self._started_ms is not None else now
            flush_ms = self._cfg.delivery.flush_interval * 1000
            closed, heartbeat = [], False
            if self._wrote or now - self._last_cut_ms >= CUT_AFTER_FLUSHES * flush_ms:
                closed = self._tracker.cut(now)
                self._last_cut_ms = now
                heartbeat = not (self._wrote or closed) and self._in_schedule
            self._wrote = False
            self._sink.checkpoint(self._tracker.open_records(now), closed, heartbeat)

    def stop(self) -> None:
        """Close the open spans, write them, checkpoint nothing, close the sink."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._write(self._tracker.close(wall_ms(self._clock)))
            self._sink.checkpoint([])
            self._sink.close()
        self._input.stop()
        for sensor in (self._window, self._idle, self._passive):
            if sensor is not None:
                sensor.close()

    def _write(self, records: Sequence[Record]) -> None:
        if records:
            self._wrote = True
            self._sink.write(records)
