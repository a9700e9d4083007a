"""Input counts from real pynput listeners on a real X server: counts, never keys."""

from __future__ import annotations

import logging

import pytest
from desktop import wait_for

from agent.sensors import input as input_sensor
from agent.sensors.input import InputCounter, InputCounts

pytestmark = pytest.mark.system


@pytest.fixture
def counter(desktop, on_display):
    on_display(desktop)
    counter = InputCounter()
    status = counter.start()
    assert status.available, status.reason
    wait_for(lambda: all(getattr(lst, "_ready", False) for lst in counter._listeners),
             what="listeners ready")
    yield counter
    counter.stop()


def collect(counter, expected, field):
    total = InputCounts()

    def enough():
        nonlocal total
        total = total + counter.take()
        return getattr(total, field) >= expected

    wait_for(enough, timeout=20, what=f"{expected} {field}")
    return total


def test_typing_n_characters_counts_n_key_presses_and_keeps_no_key(desktop, counter, caplog):
    win = desktop.open_window("input-typing-c0de")
    desktop.activate(win)
    counter.take()
    marker = "qzxmarker7351"
    with caplog.at_level(logging.DEBUG):
        desktop.type(marker)
        total = collect(counter, len(marker), "key_presses")
    assert total.key_presses == len(marker)
    assert (total.clicks, total.scrolls) == (0, 0)
    assert marker not in caplog.text
    assert marker not in repr(vars(counter))  # nothing of the keys is kept in the counter


def test_clicks_moves_and_scrolls_are_counted(desktop, counter):
    desktop.move_mouse(100, 100)
    counter.take()
    desktop.move_mouse(300, 200)
    desktop.move_mouse(310, 210)
    assert collect(counter, 2, "mouse_moves").mouse_moves >= 2
    desktop.click(1)
    desktop.click(3)
    assert collect(counter, 2, "clicks").clicks == 2   # presses only, not releases
    desktop.click(4)   # wheel up
    desktop.click(5)   # wheel down
    total = collect(counter, 2, "scrolls")
    assert total.scrolls == 2 and total.clicks == 0


def test_without_a_display_input_is_unavailable_and_says_why(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":986")
    counter = InputCounter()
    status = counter.start()
    assert not status.available and "DISPLAY" in status.reason
    assert counter.take() == InputCounts()
    probe = input_sensor.probe()
    assert not probe.available


def test_listeners_that_die_with_the_display_are_restarted(fresh_desktop, on_display,
                                                           monkeypatch):
    on_display(fresh_desktop)
    monkeypatch.setattr(input_sensor, "FIRST_BACKOFF", 0.2)
    counter = InputCounter()
    counter._backoff = 0.2
    counter.start()
    try:
        fresh_desktop.kill_x()
        wait_for(lambda: not counter.running(), what="listeners to end with the display")
        fresh_desktop.restart_x()

        def restarted():
            counter.ensure_running()
            return counter.running() and all(lst._ready for lst in counter._listeners)

        wait_for(restarted, timeout=30, what="listeners back")
        counter.take()
        fresh_desktop.type("abc")
        assert collect(counter, 3, "key_presses").key_presses == 3
    finally:
        counter.stop()
