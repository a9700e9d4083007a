"""Input counts on a real X server (our RECORD reader, and pynput forced onto X11
to keep that backend honest): exact counts, never keys."""

from __future__ import annotations

import logging
import struct
import sys
import time

import pytest
from desktop import wait_for
from worklens.agent.sensors import input as input_sensor
from worklens.agent.sensors.input import InputCounter, InputCounts
from worklens.agent.sensors.input import _x11 as record

SETTLE = 0.4   # after the expected count arrived: long enough for a stray extra to show


def collect(counter, expected: int, field: str) -> InputCounts:
    """Take counts until ``field`` reaches ``expected``, then a little longer, so an
    over-count would be seen too."""
    total = InputCounts()

    def enough():
        nonlocal total
        total = total + counter.take()
        return getattr(total, field) >= expected

    wait_for(enough, timeout=20, what=f"{expected} {field}")
    time.sleep(SETTLE)
    return total + counter.take()


@pytest.fixture(params=["x11", "pynput"])
def counter(request, desktop, on_display):
    on_display(desktop)
    counter = InputCounter(backend=request.param)
    status = counter.start()
    assert status.available, status.reason
    assert status.backend == request.param
    yield counter
    counter.stop()


@pytest.mark.system
def test_typing_n_characters_counts_n_key_presses_and_keeps_no_key(desktop, counter, caplog):
    win = desktop.open_window(f"input-typing-{counter.backend_name}-c0de")
    desktop.activate(win)
    counter.take()
    marker = "qzxmarker7351"
    with caplog.at_level(logging.DEBUG):
        desktop.type(marker)
        total = collect(counter, len(marker), "key_presses")
    assert total == InputCounts(key_presses=len(marker))   # presses only, not releases
    assert marker not in caplog.text
    assert marker not in repr(vars(counter))  # nothing of the keys is kept in the counter


@pytest.mark.system
def test_clicks_moves_and_scrolls_are_counted_exactly(desktop, counter):
    desktop.move_mouse(100, 100)
    time.sleep(SETTLE)
    counter.take()
    desktop.move_mouse(300, 200)
    desktop.move_mouse(310, 210)
    assert collect(counter, 2, "mouse_moves") == InputCounts(mouse_moves=2)
    desktop.click(1)
    desktop.click(3)
    assert collect(counter, 2, "clicks") == InputCounts(clicks=2)   # presses, not releases
    desktop.click(4)   # wheel up
    desktop.click(5)   # wheel down
    desktop.click(6)   # wheel left
    assert collect(counter, 3, "scrolls") == InputCounts(scrolls=3)


@pytest.mark.system
def test_stop_ends_the_listener_at_once_without_waiting_for_input(desktop, on_display):
    on_display(desktop)
    counter = InputCounter()
    assert counter.start().available
    listener = counter._listener
    counter.stop()       # no input event arrives: the reading thread must still end
    assert not listener.alive() and not counter.running()


@pytest.mark.system
def test_a_display_that_appears_after_start_is_picked_up(fresh_desktop, on_display,
                                                         monkeypatch):
    """The agent may start (at login) before the X server accepts clients."""
    desk = on_display(fresh_desktop)
    monkeypatch.setattr(input_sensor, "FIRST_BACKOFF", 0.2)
    desk.stop()                                   # no X server on this display yet
    counter = InputCounter()
    try:
        status = counter.start()
        assert (status.backend, status.available) == ("x11", False)
        assert status.reason.startswith(f"waiting for X display {desk.display}")
        counter.ensure_running()
        assert counter.take() == InputCounts()
        desk.restart_x()

        def started():
            counter.ensure_running()
            return counter.running()

        wait_for(started, timeout=30, what="input counting on the new display")
        assert counter.status.available
        counter.take()
        desk.type("abcd")
        assert collect(counter, 4, "key_presses") == InputCounts(key_presses=4)
    finally:
        counter.stop()


@pytest.mark.system
def test_listeners_that_die_with_the_display_are_restarted(fresh_desktop, on_display,
                                                           monkeypatch):
    on_display(fresh_desktop)
    monkeypatch.setattr(input_sensor, "FIRST_BACKOFF", 0.2)
    counter = InputCounter()
    counter._backoff = 0.2
    assert counter.start().available
    try:
        fresh_desktop.kill_x()
        wait_for(lambda: not counter.running(), what="the listener to end with the display")
        fresh_desktop.restart_x()

        def restarted():
            counter.ensure_running()
            return counter.running()

        wait_for(restarted, timeout=30, what="the listener back")
        counter.take()
        fresh_desktop.type("abc")
        assert collect(counter, 3, "key_presses") == InputCounts(key_presses=3)
    finally:
        counter.stop()


def test_without_any_display_input_is_unavailable_and_says_why():
    counter = InputCounter(env={}, platform="linux")
    status = counter.start()
    assert (status.backend, status.available) == ("none", False)
    assert "DISPLAY" in status.reason
    counter.ensure_running()
    assert counter.take() == InputCounts()


def test_on_wayland_input_counts_are_unavailable_not_zero_even_with_xwayland():
    """XWayland's RECORD would see only X clients' input: wrong counts, so none."""
    wayland = {"WAYLAND_DISPLAY": "wayland-0"}
    for env in (wayland, {**wayland, "DISPLAY": ":0"}):
        status = InputCounter(env=env, platform="linux").start()
        assert (status.backend, status.available) == ("none", False)
        assert status.reason.startswith("input counts unavailable on Wayland (not zero")
    forced = InputCounter(env={"WAYLAND_DISPLAY": "wayland-0"}, platform="linux",
                          configured="x11")
    assert forced.backend_name == "x11"     # [sensors] input = "x11" still forces it


def test_backend_choice_by_platform_and_override():
    choose = input_sensor.choose_backend
    assert choose({"DISPLAY": ":0"}, "linux") == "x11"
    assert choose({}, "linux") == "none"
    assert choose({}, "win32") == "pynput" and choose({}, "darwin") == "pynput"
    assert choose({"DISPLAY": ":0", "WORKLENS_INPUT_BACKEND": "pynput"}, "linux") == "pynput"
    status = InputCounter(env={"WORKLENS_INPUT_BACKEND": "beos"}).start()
    assert not status.available and "unknown input backend 'beos'" in status.reason
    status = InputCounter(env={"WORKLENS_INPUT_BACKEND": "none", "DISPLAY": ":0"}).start()
    assert (status.backend, status.reason) == ("none", "disabled by configuration")


# --- the RECORD reply stream, byte by byte ------------------------------------------

def reply(category: int, events: list[tuple[int, int]] = ()) -> bytes:
    """A RECORD EnableContext reply carrying core events given as (type, detail)."""
    data = b"".join(bytes([kind, detail]) + bytes(30) for kind, detail in events)
    header = struct.pack("=BBHI", record.REPLY, category, 7, len(data) // 4) + bytes(24)
    return header + data


def event(kind: int) -> bytes:
    return bytes([kind]) + bytes(31)


def test_record_stream_counts_event_types_across_split_reads_and_stray_packets():
    k, b, m = record.KEY_PRESS, record.BUTTON_PRESS, record.MOTION_NOTIFY
    stream = record.RecordStream(sys.byteorder)
    wire = (reply(record.START_OF_DATA)
            + reply(record.FROM_SERVER, [(k, 38), (m, 0), (m, 0), (k, 40)])
            + event(34)                                    # MappingNotify, sent to every client
            + reply(record.FROM_SERVER, [(b, 1), (b, 4), (b, 5), (b, 3), (b, 7), (b, 9)])
            + reply(record.FROM_SERVER, [(k, 0x41)] * 5)
            + bytes([0, 3]) + bytes(30)                    # an X error packet
            + reply(record.END_OF_DATA))
    totals = [0, 0, 0, 0]
    for cut in range(0, len(wire), 13):                    # replies straddle every read
        for i, n in enumerate(stream.feed(wire[cut:cut + 13])):
            totals[i] += n
    assert stream.started and stream.ended
    assert totals == [7, 3, 2, 3]    # keys; clicks (1, 3, 9); moves; scrolls (4, 5, 7)


def test_record_stream_never_reads_the_key_code():
    """A key press is counted from its type byte alone: whatever its other bytes say."""
    stream = record.RecordStream(sys.byteorder)
    stream.feed(reply(record.START_OF_DATA))
    keys = [(record.KEY_PRESS, code) for code in (4, 5, 6, 7, 200)]   # codes like buttons
    assert stream.feed(reply(record.FROM_SERVER, keys)) == (5, 0, 0, 0)
