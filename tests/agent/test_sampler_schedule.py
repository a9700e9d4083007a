"""The sampler follows the monitoring schedule: outside it nothing is sampled,
crossing its edges closes and reopens spans (real X desktop, injected local clock)."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from sensor_support import ListSink, make_config
from worklens.agent.sampler import Sampler
from worklens.agent.sensors.clock import Clock

pytestmark = pytest.mark.system


class ScheduleClock(Clock):
    """Real wall and monotonic time; the local time the schedule sees is set by the test."""

    def __init__(self, local: datetime) -> None:
        self.now_local = local

    def local(self) -> datetime:
        return self.now_local


def test_spans_stop_at_the_schedule_end_and_resume_at_its_start(desktop, on_display):
    on_display(desktop)
    win = desktop.open_window("sched-window-1d2e")
    desktop.activate(win)
    clock = ScheduleClock(datetime(2024, 6, 3, 17, 59, 58))          # Monday
    sink = ListSink()
    sampler = Sampler(make_config(privacy={"schedule": "Mon-Fri 08:00-18:00"}), sink, clock)
    sampler.start()
    try:
        sampler.sample()
        time.sleep(0.3)
        sampler.sample()
        assert sink.records == [] and sampler.statuses[2].available
        clock.now_local = datetime(2024, 6, 3, 18, 0, 1)             # the schedule ends
        sampler.sample()
        closed = list(sink.records)
        assert [type(r).__name__ for r in closed] == ["WindowSpan", "ActivitySpan"]
        assert closed[0].title == "sched-window-1d2e"
        assert not sampler.statuses[2].available                      # listeners stopped
        desktop.type("abc")
        for _ in range(3):
            sampler.sample()
            sampler.sample_processes()
        assert sink.records == closed                                 # nothing outside it
        clock.now_local = datetime(2024, 6, 4, 8, 0, 0)               # Tuesday morning
        resumed_at = time.time()
        sampler.sample()
        time.sleep(0.3)
        sampler.sample()
    finally:
        sampler.stop()
    after = sink.records[len(closed):]
    window = [r for r in after if type(r).__name__ == "WindowSpan"]
    assert len(window) == 1 and window[0].start_ms / 1000 >= resumed_at - 0.05
    assert sum(r.key_presses for r in sink.of("ActivitySpan")) == 0   # "abc" was off hours
    assert sink.checkpoints[-1] == [] and sink.closed



@pytest.mark.parametrize("local, expected", [(datetime(2024, 6, 3, 12, 0), True),
                                             (datetime(2024, 6, 3, 20, 0), False)])
def test_with_nothing_to_send_the_flush_asks_for_a_heartbeat_inside_the_schedule_only(
        monkeypatch, local, expected):
    """No display, no processes due: every second flush asks delivery to say the agent
    runs (the live view's "offline" is two flushes without a batch); outside the
    schedule never."""
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    sink = ListSink()
    cfg = make_config(privacy={"schedule": "Mon-Fri 08:00-18:00"},
                      delivery={"flush_interval": 0.1}, sampling={"process_interval": 3600})
    sampler = Sampler(cfg, sink, ScheduleClock(local))
    sampler.start()
    try:
        sampler.sample()
        for _ in range(6):
            time.sleep(0.1)
            sampler.checkpoint()
    finally:
        sampler.stop()
    assert sink.records == []
    assert (sink.heartbeats >= 2) if expected else (sink.heartbeats == 0), sink.heartbeats
