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
from worklens.agent.sensors.processes import ProcessSensor
from worklens.agent.sensors.processes import describe as describe_processes
from worklens.agent.sink import Record, Sink
from worklens.agent.spans import ACTIVE, IDLE, LOCKED, Observation, SpanTracker, State

log = logging.getLogger(__name__)
MIN_SLEEP_THRESHOLD = 10.0   # seconds of wall/monotonic drift that mean "the machine slept"


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

    def start(self) -> list[SensorStatus]:
        """Open the sensors (falling back to ``none`` where one cannot run)."""
        self._window, window_status = window_sensors.open_sensor(self._cfg)
        self._idle, idle_status = idle_sensors.open_sensor(self._cfg)
        self._opened = [window_status, idle_status]
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
        return [*opened, input_status, describe_processes(self._cfg)]

    def sample(self) -> None:
        """The window_interval tick."""
        with self._lock:
            if self._stopped:
                return
            if not self._follow_schedule():
                return
            records: list[Record] = []
            gap = self._sleep.check()
            if gap is not None:
                log.info("the machine slept for %.0fs", (gap.end_ms - gap.start_ms) / 1000)
                records += self._tracker.gap(gap)
            self._input.ensure_running()
            reading = self._idle.read()
            window = None if reading.locked else self._privacy.apply(
                self._window.active_window())
            counts = self._input.take()
            now = wall_ms(self._clock)
            state, since = classify(reading, self._threshold, now)
            records += self._tracker.observe(Observation(now, window, state, since, counts))
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
        """The flush_interval tick: let delivery remember the open spans."""
        with self._lock:
            if not self._stopped:
                self._sink.checkpoint(self._tracker.open_records(wall_ms(self._clock)))

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
        for sensor in (self._window, self._idle):
            if sensor is not None:
                sensor.close()

    def _write(self, records: Sequence[Record]) -> None:
        if records:
            self._sink.write(records)
