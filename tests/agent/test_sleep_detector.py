"""Suspend/resume shows up as a jump between the wall and monotonic clocks."""

from __future__ import annotations

from worklens.agent.sensors.clock import Gap, SleepDetector


class FakeClock:
    def __init__(self, wall: float = 1_700_000_000.0, mono: float = 100.0) -> None:
        self.w, self.m = wall, mono

    def wall(self) -> float:
        return self.w

    def monotonic(self) -> float:
        return self.m

    def advance(self, seconds: float, asleep: float = 0.0) -> None:
        """``seconds`` of running time plus ``asleep`` of suspend (monotonic stops)."""
        self.w += seconds + asleep
        self.m += seconds


def test_normal_ticks_and_small_drift_are_not_sleep():
    clock = FakeClock()
    detector = SleepDetector(clock, threshold=10, monotonic_counts_sleep=False)
    assert detector.check() is None
    for _ in range(5):
        clock.advance(1.0)
        clock.w += 0.05  # NTP slew
        assert detector.check() is None


def test_a_suspend_becomes_a_gap_starting_at_the_previous_sample():
    clock = FakeClock()
    detector = SleepDetector(clock, threshold=10, monotonic_counts_sleep=False)
    detector.check()
    start = clock.w
    clock.advance(1.0, asleep=3600)
    assert detector.check() == Gap(int(start * 1000), int((start + 3600) * 1000))
    clock.advance(1.0)
    assert detector.check() is None


def test_a_backwards_clock_step_is_not_sleep():
    clock = FakeClock()
    detector = SleepDetector(clock, threshold=10, monotonic_counts_sleep=False)
    detector.check()
    clock.advance(1.0)
    clock.w -= 3600
    assert detector.check() is None


def test_where_monotonic_counts_sleep_a_late_sample_is_the_gap():
    clock = FakeClock()
    detector = SleepDetector(clock, threshold=10, interval=1.0, monotonic_counts_sleep=True)
    detector.check()
    start = clock.w
    clock.w += 601.0   # wall and monotonic both advanced: Windows' GetTickCount64 counts sleep
    clock.m += 601.0
    assert detector.check() == Gap(int(start * 1000), int((start + 600) * 1000))


def test_reset_forgets_the_previous_sample():
    clock = FakeClock()
    detector = SleepDetector(clock, threshold=10, monotonic_counts_sleep=False)
    detector.check()
    detector.reset()
    clock.advance(1.0, asleep=3600)
    assert detector.check() is None
